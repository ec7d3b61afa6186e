"""TrainConfig as command-line options: one `--field-name` per field, and `--preset`.

Types, defaults and help come from the dataclass (training/config.py), so `corel-train`
and `corel-sweep` cannot drift from it. Each field takes, lowest first: its default, the
command's own default (`corel-sweep` trains 10 epochs), the preset, the option given.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable, Collection, Mapping
from dataclasses import fields
from typing import Literal, TypeVar, Union, get_args, get_origin

import click
from click.core import ParameterSource

from training.config import TrainConfig, field_help, field_types, load_preset, preset_names

__all__ = ["CONTEXT", "config_options"]

R = TypeVar("R")

# click's context settings for the commands with these options: help as wide as the code
CONTEXT = {"max_content_width": 100, "terminal_width": 100}


def _click_type(hint: object) -> click.ParamType[object]:
    if get_origin(hint) in (Union, types.UnionType):  # X | None: the option is X, unset: None
        (hint,) = [option for option in get_args(hint) if option is not type(None)]
    if get_origin(hint) is Literal:
        return click.Choice([str(choice) for choice in get_args(hint)])
    simple: dict[object, click.ParamType[object]] = {
        int: click.INT,
        float: click.FLOAT,
        str: click.STRING,
    }
    return simple[hint]


def _option(name: str, hint: object, default: object) -> tuple[str, dict[str, object]]:
    """The declaration and settings of a field's option: `--field-name`, or for a bool
    `--field-name/--no-field-name`."""
    flag = "--" + name.replace("_", "-")
    settings: dict[str, object] = {
        "default": default,
        "help": field_help(name),
        "show_default": True,
    }
    if hint is bool:
        return f"{flag}/--no-{flag[2:]}", settings
    return flag, {**settings, "type": _click_type(hint)}


def config_options(
    *, exclude: Collection[str] = (), defaults: Mapping[str, object] | None = None
) -> Callable[[Callable[..., R]], Callable[..., R]]:
    """Give a click command `--preset` and an option per TrainConfig field but `exclude`;
    the command gets the resolved `config: TrainConfig` in their place.

    A config the dataclass refuses (a bad value, an unknown preset key) is a usage error:
    the message, exit status 2.
    """
    hints = field_types()
    chosen = [f for f in fields(TrainConfig) if f.name not in exclude]
    own_defaults = {**{f.name: getattr(TrainConfig, f.name) for f in chosen}, **(defaults or {})}

    def decorate(command: Callable[..., R]) -> Callable[..., R]:
        @functools.wraps(command)
        def with_config(**params: object) -> R:
            ctx = click.get_current_context()
            preset = params.pop("preset")
            try:
                values = {} if preset is None else load_preset(str(preset))
                for f in chosen:
                    value = params.pop(f.name)
                    given = ctx.get_parameter_source(f.name) is not ParameterSource.DEFAULT
                    if given or f.name not in values:
                        values[f.name] = value
                config = TrainConfig.from_dict(values)
            except ValueError as exc:
                raise click.UsageError(str(exc), ctx) from exc
            return command(config=config, **params)

        decorated: Callable[..., R] = with_config
        for f in reversed(chosen):  # click lists options in the reverse order of decoration
            flag, settings = _option(f.name, hints[f.name], own_defaults[f.name])
            decorated = click.option(flag, cls=click.Option, **settings)(decorated)
        return click.option(
            "--preset",
            metavar="NAME_OR_PATH",
            help="Start from a preset: a .toml of config fields, or the name of one in "
            f"training/presets ({', '.join(preset_names())}). Options given here override it.",
        )(decorated)

    return decorate
