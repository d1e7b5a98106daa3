"""The quick start in docs/guard.md runs as written and prints what it says it prints."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parent.parent / "docs" / "guard.md"


def test_quick_start_runs_and_matches_its_comments(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("cosa_guard.backends.factory")
    code = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)[0]
    exec(compile(code, str(DOC), "exec"), {"__name__": "__main__"})
    printed = capsys.readouterr().out.splitlines()
    expected = [
        line.strip()[2:]
        for line in code.splitlines()
        if line.strip().startswith("# ") and "print" not in line
    ]
    assert printed[:2] == expected[:2]
    assert printed[2:] == ["TextDelta", "FinalEvent"]


def test_the_instructions_header_shown_is_the_one_rendered() -> None:
    from cosa_guard.prompts import INSTRUCTIONS_HEADER

    assert INSTRUCTIONS_HEADER in " ".join(DOC.read_text(encoding="utf-8").split())
