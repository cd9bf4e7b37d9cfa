"""Style gates that CI runs with the tests: module size, ruff (lint and format), strict mypy."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "trainyard"
#: Review anything longer (design brief §5): one purpose per module.
MAX_LINES = 600


def _tool(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def test_no_module_over_the_size_limit() -> None:
    big = {
        str(p.relative_to(ROOT)): n
        for p in SRC.rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not big, f"modules over {MAX_LINES} lines (split them by purpose): {big}"


@pytest.mark.parametrize(
    "args",
    [
        ["check", "src", "tests", "benchmarks", "examples"],
        ["format", "--check", "src", "tests", "benchmarks", "examples"],
    ],
    ids=["ruff-check", "ruff-format"],
)
def test_ruff(args: list[str]) -> None:
    proc = subprocess.run(
        [_tool("ruff"), *args], cwd=ROOT, capture_output=True, text=True, timeout=240
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]


def test_mypy_strict() -> None:
    proc = subprocess.run(
        [_tool("mypy"), "--strict"], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
