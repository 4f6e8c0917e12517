"""The code's style is checked, not hoped for: ruff's rules (pyproject.toml), lines of at most 120 characters."""

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
FOLDERS = ["keras_glr", "apps", "tests", "benchmarks", "docs"]


def test_ruff_finds_nothing():
    done = subprocess.run([sys.executable, "-m", "ruff", "check", *FOLDERS], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_no_line_is_longer_than_120_characters():
    long = [
        f"{path.relative_to(ROOT)}:{n}"
        for folder in FOLDERS
        for path in (ROOT / folder).rglob("*.py")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if len(line) > 120
    ]
    assert not long, f"lines over 120 characters: {long[:10]}"
