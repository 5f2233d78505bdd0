"""Every ``$ colossim ...`` example in the README prints what the README shows.

Only what depends on the machine is masked: search speed (configs/s) and wall-clock seconds.
Whitespace is collapsed, because rich centres a title around such a number."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
EXAMPLE = re.compile(r"^\$ colossim (?P<cmd>[^\n]+)\n(?P<out>.*?)^```", re.M | re.S)
VOLATILE = (re.compile(r"[\d,.]+ configs/s"), re.compile(r"(wall seconds\s*│\s*)[\d,.]+"))


def _examples() -> list[tuple[str, str]]:
    return [(m["cmd"], m["out"]) for m in EXAMPLE.finditer(README.read_text(encoding="utf-8"))]


def _normalised(text: str) -> list[str]:
    lines = []
    for line in text.strip("\n").splitlines():
        line = VOLATILE[0].sub("N configs/s", line)
        line = VOLATILE[1].sub(r"\1N", line)
        lines.append(" ".join(line.split()))
    return lines


def test_the_readme_has_examples_to_check():
    assert len(_examples()) >= 8


@pytest.mark.parametrize("cmd,shown", _examples(), ids=[c for c, _ in _examples()])
def test_a_readme_example_prints_what_the_readme_shows(cli, cmd, shown, monkeypatch):
    monkeypatch.chdir(README.parent)
    code, out, err = cli(*shlex.split(cmd))
    assert code == 0, err
    assert _normalised(out) == _normalised(shown)
