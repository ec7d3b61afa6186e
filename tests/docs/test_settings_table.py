"""docs/configuration.md holds the settings table generated from `service.settings.Settings`.

The table is read from the code at test time, so a field added, removed or changed in
`Settings` fails this test until the doc is regenerated:

    .venv/bin/python scripts/settings_table.py --write docs/configuration.md
"""

from __future__ import annotations

import importlib.util
from types import ModuleType

from tests.docs.examples import REPO

DOC = REPO / "docs" / "configuration.md"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "settings_table", REPO / "scripts" / "settings_table.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_configuration_doc_holds_the_generated_settings_table() -> None:
    script = _script()
    text = DOC.read_text()
    assert script.replace(text, script.table()) == text, (
        "docs/configuration.md's settings table differs from service.settings.Settings; run "
        ".venv/bin/python scripts/settings_table.py --write docs/configuration.md"
    )


def test_settings_table_lists_every_field() -> None:
    from service.settings import Settings

    table = _script().table()
    for name in Settings.model_fields:
        assert f"`COREL_{name.upper()}`" in table
