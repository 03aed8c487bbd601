"""The README's settings table is the list of settings, no more, no less."""

from __future__ import annotations

import re
from pathlib import Path

from app.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_setting_is_documented_in_the_readme_and_nothing_else() -> None:
    text = README.read_text(encoding="utf-8")
    table = text[text.index("## Settings"):]
    table = table[:table.index("\n## ", 5)]
    documented = set(re.findall(r"^\| `([A-Z0-9_]+)` \|", table, flags=re.MULTILINE))

    assert documented == {name.upper() for name in Settings.model_fields}
