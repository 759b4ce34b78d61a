"""The allowed import graph of docs/architecture.md, enforced: an AST walk over every module of
the product's packages (imports inside functions and under ``TYPE_CHECKING`` count too)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = (
    "storage",
    "httpdigest",
    "camera_registry",
    "acl",
    "streams",
    "snapshot",
    "gb28181",
    "recording",
    "ptz",
    "gateway",
    "web",
)

# Which of our packages each package may import (itself always). Lower packages never import
# `gateway`; only the composition root and the command line see every package.
ALLOWED: dict[str, frozenset[str]] = {
    "storage": frozenset(),
    "httpdigest": frozenset(),
    "camera_registry": frozenset({"storage"}),
    "acl": frozenset({"storage", "camera_registry", "httpdigest"}),
    "streams": frozenset({"storage"}),
    "snapshot": frozenset({"streams", "camera_registry", "storage"}),
    "gb28181": frozenset({"streams", "camera_registry", "storage", "httpdigest"}),
    "recording": frozenset({"streams", "storage"}),
    "ptz": frozenset(),
    "gateway": frozenset(
        {"acl", "camera_registry", "streams", "snapshot", "gb28181", "recording", "ptz", "storage", "httpdigest"}
    ),
    "web": frozenset({"gateway", "acl", "camera_registry", "storage"}),
}
# The composition root builds everything (the consoles' routers included); the CLI starts it.
ROOTS = frozenset({"gateway.wiring", "gateway.cli"})
# Protocol servers never import each other (each reads the stream core).
SIBLINGS = (frozenset({"gateway.webrtc", "gateway.hls", "gateway.rtsp"}),)
OURS = frozenset({*PACKAGES, "fixtures", "bench", "tests", "transcoder"})


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> list[str]:
    """Absolute module names imported by a file (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    me = module_name(path).split(".")
    package = me if path.name == "__init__.py" else me[:-1]
    out: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                out.append(".".join([*base, *([node.module] if node.module else [])]))
            elif node.module:
                out.append(node.module)
    return out


def violations() -> list[str]:
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "node_modules" in path.parts:
                continue
            me = module_name(path)
            if me in ROOTS:
                continue
            for target in imports_of(path):
                top = target.split(".")[0]
                if top not in OURS or top == package:
                    if top == package:
                        found.extend(_sibling(me, target))
                    continue
                if top not in ALLOWED[package]:
                    found.append(f"{me} imports {target} ({package} may import {sorted(ALLOWED[package]) or 'none'})")
    return found


def _sibling(me: str, target: str) -> list[str]:
    for group in SIBLINGS:
        mine = next((g for g in group if me == g or me.startswith(g + ".")), None)
        theirs = next((g for g in group if target == g or target.startswith(g + ".")), None)
        if mine and theirs and mine != theirs:
            return [f"{me} imports {target} (protocol servers never import each other)"]
    return []


def test_the_import_graph_is_the_documented_one() -> None:
    problems = violations()
    assert not problems, "imports against docs/architecture.md:\n" + "\n".join(problems)


def test_the_walk_sees_imports_inside_functions_and_relative_ones(tmp_path: Path) -> None:
    f = ROOT / "acl" / "_probe_for_test.py"
    f.write_text("def f():\n    from gateway.settings import Settings\n    from .models import User\n")
    try:
        assert "gateway.settings" in imports_of(f) and "acl.models" in imports_of(f)
        assert any(v.startswith("acl._probe_for_test imports gateway.settings") for v in violations())
    finally:
        f.unlink()
