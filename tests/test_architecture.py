"""The layout of docs/architecture.md, checked: imports go one way, no cycle, the core stays free of Flask and
of the environment, and functions stay short enough to read."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "recommender"

# Layer of each top-level part of the package: a module may import from its own layer and those below.
LAYERS = {
    "config": 0, "progress": 0, "jsonsafe": 0, "stages": 0, "db": 0, "pg": 0, "state": 0,
    "ingest": 1, "embed": 2, "index": 3, "rank": 4, "feedback": 4,
    "engine": 5, "payloads": 5,
    "serve": 6, "jobs": 6,
    "cli": 7, "__main__": 7,
}
# Side by side on one layer, and neither may use the other: the server never runs a job and a job never
# starts a server; only the command line on top knows both.
SIBLINGS_APART = {("serve", "jobs"), ("jobs", "serve")}
CORE = {name for name, layer in LAYERS.items() if layer <= 5}
MAX_FUNCTION_LINES = 80


def modules() -> dict[str, Path]:
    """Dotted name -> file of every module in the package."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def imported(name: str, path: Path) -> list[tuple[str, int]]:
    """The package modules a module imports (at any depth in its code), with the line of each import."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    result = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] == "recommender":
                result.append((target, node.lineno))
                result.extend((f"{target}.{alias.name}", node.lineno) for alias in node.names)
        elif isinstance(node, ast.Import):
            result.extend((alias.name, node.lineno) for alias in node.names if alias.name.startswith("recommender"))
    known = modules()
    return [(target, line) for target, line in result if target in known and target != name]


def part(name: str) -> str:
    """The top-level part of the package a dotted module name belongs to."""
    return name.split(".")[1] if "." in name else ""


def test_every_part_of_the_package_has_a_layer():
    unplaced = {part(name) for name in modules()} - set(LAYERS) - {""}
    assert not unplaced, f"give these a layer in docs/architecture.md and here: {sorted(unplaced)}"


def test_imports_only_go_down():
    wrong = []
    for name, path in modules().items():
        if name == "recommender":
            continue  # the package's __init__ re-exports the public names of every layer
        for target, line in imported(name, path):
            if target == "recommender":
                if not name.endswith(("openapi", "cli")):  # __version__ only
                    wrong.append(f"{name}:{line} imports the package root")
                continue
            source, dest = part(name), part(target)
            if LAYERS[dest] > LAYERS[source] or (source, dest) in SIBLINGS_APART:
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {source} may not import {target}")
    assert not wrong, "\n".join(wrong)


def test_no_import_cycle_between_modules():
    graph = {name: {t for t, _ in imported(name, path) if t != "recommender"} for name, path in modules().items()
             if name != "recommender"}
    # A subpackage's __init__ imports its own modules; that edge is structure, not a dependency.
    for name in graph:
        graph[name] = {t for t in graph[name] if not name.startswith(t + ".") and t != name}
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                pytest.fail("import cycle: " + " -> ".join(path[path.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


@pytest.mark.parametrize("forbidden", ["flask", "werkzeug", "gunicorn"])
def test_the_core_does_not_import_the_web_stack(forbidden):
    offenders = []
    for name, path in modules().items():
        if part(name) not in CORE:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            offenders += [f"{name}:{node.lineno}" for n in names if n.split(".")[0] == forbidden]
    assert not offenders


def test_only_the_edges_read_the_environment():
    # Configuration enters in config.py (and the server's own process set-up); the core gets plain arguments.
    allowed = {"recommender.config", "recommender.serve.server", "recommender.serve.metrics",
               "recommender.embed.encoders.sbert"}  # sbert: forces the hub libraries offline, reads nothing
    readers = [name for name, path in modules().items()
               if "os.environ" in path.read_text(encoding="utf-8") or "getenv" in path.read_text(encoding="utf-8")]
    assert set(readers) <= allowed, sorted(set(readers) - allowed)


def test_functions_are_short_or_say_why_not():
    long = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                doc = ast.get_docstring(node) or ""
                if lines > MAX_FUNCTION_LINES and "long because" not in doc.lower():
                    long.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, "split these, or say in the docstring why each is long because ...:\n" + "\n".join(long)


def test_the_package_imports_without_flask_and_reexports_its_public_names():
    import subprocess
    import sys

    code = ("import sys, recommender; assert 'flask' not in sys.modules, 'flask imported'; "
            "missing = [n for n in recommender.__all__ if not hasattr(recommender, n)]; assert not missing, missing")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
