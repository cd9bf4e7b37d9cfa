"""A private attribute is private to its module: no ``obj._name`` reads of names another module defines.

The rule (design brief §8): code below the public API is handed a context instead of reading a
``Workspace``'s, ``Run``'s or ``Experiment``'s private fields, and no module reaches into another
object's internals. A ``_name`` accessed on anything but ``self``/``cls`` is allowed only when the
same module defines that name (a method, a class attribute or a ``self._name = …`` assignment),
e.g. ``other._key == self._key`` in an ``__eq__``.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "trainyard"
#: Names under which a module's own code creates its objects (``obj = cls.__new__(cls)`` then
#: ``obj._x = …``): a private attribute assigned through them is defined by that module. Writing
#: ``other._x = …`` on any other object is reaching into it as much as reading it.
_OWNERS = ("self", "cls", "obj", "exp", "run", "ws", "sub")


def _defined_private_names(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            if node.name.startswith("_"):
                names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            owner = node.value
            if node.attr.startswith("_") and isinstance(owner, ast.Name) and owner.id in _OWNERS:
                names.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            if node.id.startswith("_"):
                names.add(node.id)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif (isinstance(node, ast.arg) and node.arg.startswith("_")) or (
            isinstance(node, ast.keyword) and node.arg and node.arg.startswith("_")
        ):
            names.add(node.arg)
        elif isinstance(node, ast.alias):
            local = node.asname or node.name.split(".")[0]
            if local.startswith("_"):
                names.add(local)
    return names


def _violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    allowed = _defined_private_names(tree)
    out: list[str] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        attr = node.attr
        if not attr.startswith("_") or attr.startswith("__") or attr in allowed:
            continue
        value = node.value
        if isinstance(value, ast.Name) and value.id in ("self", "cls"):
            continue
        if (
            isinstance(value, ast.Call)
            and isinstance(value.func, ast.Name)
            and value.func.id == "super"
        ):
            continue
        # Standard-library and third-party "private" API that is documented (sys._getframe,
        # os._exit, namedtuple._asdict / _replace, SQLAlchemy Row._mapping) is not a trainyard field.
        if attr in {"_exit", "_getframe", "_asdict", "_replace", "_fields", "_mapping"}:
            continue
        rel = path.relative_to(SRC.parent)
        out.append(f"{rel}:{node.lineno}: .{attr} ({ast.unparse(node)[:80]})")
    return out


def test_no_private_reads_across_modules() -> None:
    found: list[str] = []
    for path in sorted(SRC.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        found.extend(_violations(path))
    assert not found, "private attributes read across modules:\n" + "\n".join(found)
