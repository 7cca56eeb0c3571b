"""The layering docs/architecture.md describes, checked on the code's own imports."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "rql_lightning"
MATH = ("rql_lightning.modules", "rql_lightning.losses", "rql_lightning.flow", "rql_lightning.nets")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every ``rql_lightning`` module a file imports, at any depth (lazy imports count too)."""
    found = set()
    package = module_name(path).rsplit(".", 0 if path.name == "__init__.py" else 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("rql_lightning")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            if base.startswith("rql_lightning"):
                found.add(base)
                found |= {f"{base}.{a.name}" for a in node.names}
    return found


def graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py") if "conf" not in p.relative_to(PACKAGE).parts}
    return {name: {m for m in imports_of(path) if m in files and m != name} for name, path in files.items()}


def test_no_import_cycle_between_files():
    edges = graph()
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*trail[trail.index(nxt) :], nxt]))
            if nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for start in sorted(edges):
        if start not in state:
            visit(start, [start])


def test_data_and_callbacks_never_import_the_math():
    bad = {
        (name, target)
        for name, targets in graph().items()
        if name.startswith(("rql_lightning.data", "rql_lightning.callbacks", "rql_lightning.envs"))
        for target in targets
        if target.startswith(MATH)
    }
    assert not bad, sorted(bad)


def test_the_vocabulary_imports_nothing_of_ours():
    edges = graph()
    for leaf in ("rql_lightning.batch", "rql_lightning.naming", "rql_lightning.errors"):
        assert edges[leaf] == set(), (leaf, edges[leaf])


def test_the_math_never_imports_data_callbacks_envs_or_the_face():
    outer = ("rql_lightning.data", "rql_lightning.callbacks", "rql_lightning.envs", "rql_lightning.cli")
    bad = {
        (name, target)
        for name, targets in graph().items()
        if name.startswith((*MATH, "rql_lightning.batch"))
        for target in targets
        if target.startswith(outer)
    }
    assert not bad, sorted(bad)


def test_nothing_imports_the_face():
    bad = {
        (n, t)
        for n, ts in graph().items()
        if not n.startswith("rql_lightning.cli")
        for t in ts
        if t.startswith("rql_lightning.cli")
    }
    assert not bad, sorted(bad)


def test_no_two_modules_share_a_file_name():
    """A name says what a file holds, once in the package (not three ``diagnostics.py``)."""
    names = [p.name for p in PACKAGE.rglob("*.py") if p.name != "__init__.py"]
    assert not {n for n in names if names.count(n) > 1}
