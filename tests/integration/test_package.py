"""The built wheel ships the chat page's files and declares the `aiapi` console script."""

from __future__ import annotations

import configparser
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.support.aiapi import REPO_ROOT

STATIC = "app/entrypoints/http/web/static"


def test_wheel_ships_the_page_and_the_aiapi_script(tmp_path: Path) -> None:
    source = tmp_path / "src"
    # A clean copy: only what git tracks (no .venv, caches or key files), as a fresh clone has.
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO_ROOT,
                           capture_output=True, text=True, check=True).stdout.splitlines()
    for name in files:
        if (REPO_ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            (source / name).write_bytes((REPO_ROOT / name).read_bytes())

    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
                    "-w", str(tmp_path / "dist"), str(source)], check=True, timeout=300)

    (wheel,) = (tmp_path / "dist").glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        scripts = configparser.ConfigParser()
        scripts.read_string(archive.read(entry_points).decode())
    for page_file in ("index.html", "app.js", "markdown.js", "style.css", "favicon.svg"):
        assert f"{STATIC}/{page_file}" in names
    assert scripts["console_scripts"]["aiapi"] == "app.entrypoints.cli.main:main"
