"""The layering rule, enforced: import-linter's contracts in ``pyproject.toml`` must all hold.

Layers, top to bottom (a module may import from its own layer's package and any layer below):
testing → cli → widgets | opendatasets → train → core → _execution → _context →
_tracking | _serving | _data → _store → _lifecycle → settings | telemetry | _compat → exceptions | _version.
The scoring server (``_serving``) imports no trainyard internals at all.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _tool(name: str) -> str:
    found = Path(sys.executable).with_name(name)
    return str(found) if found.exists() else (shutil.which(name) or name)


def test_import_contracts_hold() -> None:
    proc = subprocess.run(
        [_tool("lint-imports"), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
