"""The README's Quick start runs as written: its code block, saved and run in an empty folder."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def quick_start_code() -> str:
    """The first ```python block under the README's ``## Quick start`` heading."""
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Quick start\n", 1)[1].split("\n## ", 1)[0]
    found = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert found, "the Quick start section has no ```python block"
    return found.group(1)


def test_quick_start_runs_as_written(tmp_path: Path) -> None:
    code = quick_start_code()
    assert "pip_packages" not in code, "keep the Quick start fast: no package builds"
    (tmp_path / "quickstart.py").write_text(code, encoding="utf-8")
    env = {**os.environ, "TRAINYARD_HOME": str(tmp_path / "home")}
    env.pop("TRAINYARD_WORKSPACE", None)
    proc = subprocess.run(
        [sys.executable, "quickstart.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "{'alpha': 0.1, 'Accuracy': 0.99}" in proc.stdout
    assert "my-model 1" in proc.stdout
    assert (tmp_path / ".trainyard" / "config.json").is_file()
    assert (tmp_path / "my-ws" / "workspace.json").is_file()
