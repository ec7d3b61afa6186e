"""TrainConfig is the one declaration of the training options: the commands' options, the
presets and the manifest's `training.config` all come from it."""

import json
from dataclasses import fields
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from tests.conftest import DEFAULT_BUNDLE
from training.cli import train_app
from training.config import PRESETS_DIR, TrainConfig, load_preset, preset_names
from training.options import config_options
from training.sweep import app as sweep_app


def resolve(*args: str, defaults: dict[str, object] | None = None) -> TrainConfig:
    """The config a command with the generated options resolves from `args`."""
    seen: list[TrainConfig] = []

    @click.command()
    @config_options(defaults=defaults)
    def probe(config: TrainConfig) -> None:
        seen.append(config)

    result = CliRunner().invoke(probe, list(args))
    assert result.exit_code == 0, result.output
    return seen[0]


def write_preset(tmp_path: Path, text: str) -> str:
    path = tmp_path / "preset.toml"
    path.write_text(text)
    return str(path)


# -- the dataclass ----------------------------------------------------------------------------


def test_from_dict_refuses_unknown_keys_and_wrong_types() -> None:
    with pytest.raises(ValueError, match="unknown config keys: colour"):
        TrainConfig.from_dict({"colour": "red"})
    with pytest.raises(ValueError, match="epochs must be int, not '3'"):
        TrainConfig.from_dict({"epochs": "3"})
    with pytest.raises(ValueError, match="augment must be bool"):
        TrainConfig.from_dict({"augment": 1})
    with pytest.raises(ValueError, match="loss must be one of cosine, gaussian, cce"):
        TrainConfig(loss="softmax")  # type: ignore[arg-type]
    assert TrainConfig.from_dict({"lr": 1}).lr == 1.0  # an int where a float is due


def test_a_config_survives_its_dict_and_json() -> None:
    config = TrainConfig(loss="center", lam=3.0, max_train=100, final_activation=False)
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


# -- the generated options --------------------------------------------------------------------


def test_every_field_is_an_option_with_its_help() -> None:
    text = CliRunner().invoke(train_app, ["--help"]).output
    for f in fields(TrainConfig):
        assert f"--{f.name.replace('_', '-')}" in text, f.name
    assert "--no-final-activation" in text and "--no-augment" in text
    assert "Contrastive loss margin" in text  # the help is the field's own


def test_options_resolve_to_a_config() -> None:
    config = resolve(
        *("--dataset", "digits", "--loss", "gaussian", "--lam", "0.5", "--max-train", "64"),
        *("--leaky-slope", "0.2", "--no-final-activation", "--lr-schedule", "cosine"),
    )
    assert config == TrainConfig(
        dataset="digits",
        loss="gaussian",
        lam=0.5,
        max_train=64,
        leaky_slope=0.2,
        final_activation=False,
        lr_schedule="cosine",
    )
    assert resolve() == TrainConfig()


def test_options_given_override_the_preset_which_overrides_the_defaults(tmp_path: Path) -> None:
    preset = write_preset(tmp_path, 'dataset = "digits"\nepochs = 7\nlr = 1\naugment = true\n')
    config = resolve("--preset", preset, "--epochs", "2", "--no-augment")
    assert (config.dataset, config.epochs, config.lr, config.augment) == ("digits", 2, 1.0, False)
    assert config.loss == TrainConfig().loss
    # an option given at its default value still overrides the preset
    assert resolve("--preset", preset, "--epochs", "20").epochs == 20


def test_a_command_default_sits_below_the_preset(tmp_path: Path) -> None:
    assert resolve(defaults={"epochs": 10}).epochs == 10
    preset = write_preset(tmp_path, "epochs = 7\n")
    assert resolve("--preset", preset, defaults={"epochs": 10}).epochs == 7


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("colour = 1\n", "unknown keys in"),
        ('epochs = "30"\n', "epochs must be int"),
        ("epochs = \n", "preset.toml"),
        ('loss = "softmax"\n', "loss must be one of"),
    ],
)
def test_a_bad_preset_is_a_usage_error(tmp_path: Path, text: str, message: str) -> None:
    result = CliRunner().invoke(
        train_app, ["--preset", write_preset(tmp_path, text), "--out", str(tmp_path / "x")]
    )
    assert result.exit_code == 2
    assert message in result.output
    assert not (tmp_path / "x").exists()


def test_an_unknown_preset_name_lists_the_presets() -> None:
    result = CliRunner().invoke(train_app, ["--preset", "nope", "--out", "/tmp/never"])
    assert result.exit_code == 2
    assert "no preset 'nope'" in result.output and "fashion-mnist-cosine" in result.output


def test_sweep_shares_the_options_but_lam_and_seed() -> None:
    text = CliRunner().invoke(sweep_app, ["--help"]).output
    for f in fields(TrainConfig):
        flag = f"--{f.name.replace('_', '-')} "
        assert (flag in text) == (f.name not in ("lam", "seed")), f.name
    assert "--preset" in text and "--lams" in text and "--seeds" in text


# -- the presets ------------------------------------------------------------------------------


def test_every_preset_resolves() -> None:
    assert preset_names() == sorted(p.stem for p in PRESETS_DIR.glob("*.toml"))
    for name in preset_names():
        TrainConfig.from_dict(load_preset(name))


def test_the_default_preset_is_the_recipe_of_the_shipped_bundle() -> None:
    manifest = json.loads((DEFAULT_BUNDLE / "manifest.json").read_text())
    # fields added since (at their defaults, such as aux_loss "none") change no recipe
    shipped = TrainConfig.from_dict(manifest["training"]["config"]).to_dict()
    preset = TrainConfig.from_dict(load_preset("fashion-mnist-cosine")).to_dict()
    # data_dir says where this machine keeps Fashion-MNIST, not how the model was made
    assert {**preset, "data_dir": None} == {**shipped, "data_dir": None}
    assert load_preset(str(PRESETS_DIR / "fashion-mnist-cosine.toml")) == load_preset(
        "fashion-mnist-cosine"
    )
