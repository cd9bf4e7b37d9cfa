"""Portability: what differs between operating systems lives in one module, chosen by capability.

Outside ``trainyard/_compat/platform.py`` no module imports ``fcntl`` or ``msvcrt``, reads
``/proc``, or guesses from the system's name (``sys.platform``, ``os.name``, ``platform.system()``
…); POSIX-only modules
(``resource``) are imported where they are used, never at a module's top level, so that a system
without them fails only the feature that needs them.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "trainyard"
PLATFORM_MODULE = SRC / "_compat" / "platform.py"
#: Modules only the platform module may import.
OS_MODULES = {"fcntl", "msvcrt"}
#: Guesses from the name of the system (``platform.machine()`` / ``python_version()`` are facts).
OS_GUESSES = {("sys", "platform"), ("os", "name")} | {
    ("platform", n) for n in ("system", "platform", "mac_ver", "win32_ver", "libc_ver")
}
#: POSIX-only modules that may be imported inside the function that uses them.
NOT_AT_TOP = {"resource", "termios", "pwd", "grp"}


def _imported(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name.split(".")[0] for alias in node.names]
    if isinstance(node, ast.ImportFrom) and node.module and not node.level:
        return [node.module.split(".")[0]]
    return []


def _top_level(tree: ast.Module) -> list[ast.stmt]:
    """Statements that run at import: the module body and the bodies of its ifs and trys."""
    out: list[ast.stmt] = []
    todo = list(tree.body)
    while todo:
        stmt = todo.pop()
        out.append(stmt)
        if isinstance(stmt, ast.If | ast.Try):
            todo.extend(stmt.body + stmt.orelse)
            if isinstance(stmt, ast.Try):
                todo.extend(stmt.finalbody)
                for handler in stmt.handlers:
                    todo.extend(handler.body)
    return out


def _starts_with_proc(node: ast.AST) -> bool:
    # An f-string's literal parts are constants of their own: f"/proc/{pid}" is seen here too.
    return (
        isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and node.value.startswith("/proc")
    )


def violations(path: Path, root: Path = SRC.parent) -> list[str]:
    """What ``path`` does that only the platform module may do."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    where = path.relative_to(root)
    found: list[str] = []
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        for name in _imported(node):
            if name in OS_MODULES:
                found.append(f"{where}:{line}: imports {name}")
        if isinstance(node, ast.ImportFrom) and node.module in ("sys", "os", "platform"):
            names = {(node.module, alias.name) for alias in node.names}
            found.extend(f"{where}:{line}: imports {m}.{n}" for m, n in names & OS_GUESSES)
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and (node.value.id, node.attr) in OS_GUESSES
        ):
            found.append(
                f"{where}:{line}: reads {node.value.id}.{node.attr} (check the capability instead)"
            )
        if _starts_with_proc(node):
            found.append(f"{where}:{line}: reads /proc")
    for stmt in _top_level(tree):
        for name in _imported(stmt):
            if name in NOT_AT_TOP:
                found.append(f"{where}:{stmt.lineno}: imports {name} at the top level")
    return found


def test_operating_system_specifics_live_in_the_platform_module() -> None:
    assert PLATFORM_MODULE.is_file()
    found = [v for p in sorted(SRC.rglob("*.py")) if p != PLATFORM_MODULE for v in violations(p)]
    assert not found, "use trainyard._compat.platform instead:\n" + "\n".join(found)


def test_the_rule_sees_what_it_forbids(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import fcntl, sys\nimport resource\n"
        "def f(pid):\n    import resource\n"
        "    return sys.platform, open(f'/proc/{pid}/stat'), open('/proc/self/stat')\n",
        encoding="utf-8",
    )
    found = violations(sample, root=tmp_path)
    assert [v.split(": ", 1)[1] for v in found] == [
        "imports fcntl",
        "reads sys.platform (check the capability instead)",
        "reads /proc",
        "reads /proc",
        "imports resource at the top level",
    ]
