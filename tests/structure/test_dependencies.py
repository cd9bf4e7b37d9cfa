"""Dependencies match their use: every core dependency in pyproject.toml is imported by trainyard."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "trainyard"
#: Distribution name → the module it provides, where they differ.
MODULE_OF = {"pyyaml": "yaml", "psycopg": "psycopg"}


def imported_top_level_modules() -> set[str]:
    found: set[str] = set()
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.add(node.module.split(".")[0])
    return found


def test_every_core_dependency_is_imported() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    names = [
        re.split(r"[<>=!~;\[ ]", dep, maxsplit=1)[0].lower() for dep in project["dependencies"]
    ]
    imported = imported_top_level_modules()
    unused = [n for n in names if MODULE_OF.get(n, n.replace("-", "_")) not in imported]
    assert not unused, f"core dependencies nothing in src/trainyard imports: {unused}"
