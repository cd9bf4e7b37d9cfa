"""Import layers: environment building sits below the public API and never imports it."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import trainyard

PACKAGE = Path(trainyard.__file__).resolve().parent
LOWER = [
    *sorted((PACKAGE / "_execution" / "environments").glob("*.py")),
    PACKAGE / "_execution" / "prepare.py",
]
FORBIDDEN = ("trainyard.core", "trainyard.train", "trainyard.cli")


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


@pytest.mark.parametrize("path", LOWER, ids=lambda p: p.name)
def test_no_public_api_imports_even_for_typing(path: Path) -> None:
    bad = sorted(
        m for m in imported_modules(path) if m.startswith(FORBIDDEN) or m == "trainyard.core"
    )
    assert bad == [], f"{path.name} imports the public API: {bad}"


@pytest.mark.parametrize("path", LOWER, ids=lambda p: p.name)
def test_modules_stay_small(path: Path) -> None:
    assert len(path.read_text(encoding="utf-8").splitlines()) <= 600


def test_preparing_a_definition_loads_no_public_module(tmp_path: Path) -> None:
    """Normalising and preparing a definition (curated, user-managed) in a fresh interpreter
    loads nothing from the public API, transitively included."""
    code = textwrap.dedent(
        """
        import json, sys
        from trainyard._execution.environments import curated
        from trainyard._execution.environments.spec import EnvSpec
        from trainyard._execution.prepare import current_interpreter, prepare_environment
        from trainyard.settings import load_settings
        EnvSpec.from_environment_dict(curated.curated_definition("AzureML-Chainer-5.1.0-CPU"))
        current_interpreter({})
        prepare_environment({"python": {"userManagedDependencies": True}}, load_settings(), lambda _l: None)
        print(json.dumps(sorted(m for m in sys.modules if m.startswith(("trainyard.core", "trainyard.train", "trainyard.cli")))))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
