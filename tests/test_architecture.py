"""The house rules of docs/ARCHITECTURE.md, checked on the import graph (module-level and
function-level imports alike): no circles, the app knows no layers, no library module imports
a command line, and the top of ``seq2seq/`` holds the entry points only."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COMMANDS = {
    "seq2seq.average",
    "seq2seq.bench",
    "seq2seq.chat",
    "seq2seq.evaluate",
    "seq2seq.export",
    "seq2seq.prepare",
    "seq2seq.train",
    "seq2seq.translate",
}


def modules() -> dict[str, Path]:
    found = {}
    for folder in ("seq2seq", "apps"):
        for path in (REPO / folder).rglob("*.py"):
            name = ".".join(path.relative_to(REPO).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def imports() -> set[tuple[str, str]]:
    """(importer, imported) pairs between the project's modules."""
    known = modules()
    arrows = set()
    for name, path in known.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [f"{node.module}.{alias.name}" for alias in node.names]
                targets = [t if t in known else node.module for t in targets]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            for target in targets:
                while target not in known and "." in target:
                    target = target.rsplit(".", 1)[0]
                if target in known and target != name:
                    arrows.add((name, target))
    return arrows


def test_no_import_circles():
    graph: dict[str, set[str]] = {}
    for source, target in imports():
        graph.setdefault(source, set()).add(target)
    done, active = set(), []

    def visit(node: str) -> None:
        active.append(node)
        for nxt in graph.get(node, ()):
            assert nxt not in active, "import circle: " + " -> ".join([*active, nxt])
            if nxt not in done:
                visit(nxt)
        active.pop()
        done.add(node)

    for node in list(graph):
        if node not in done:
            visit(node)


def test_the_app_knows_no_layers_and_no_library_module_imports_a_command():
    for source, target in imports():
        if source.startswith("apps"):
            assert not target.startswith(("seq2seq.model", "seq2seq.training")), (source, target)
        if target in COMMANDS and not source.startswith("apps"):
            assert source in COMMANDS and source == target, f"{source} imports the CLI {target}"


def test_the_top_of_the_package_holds_entry_points_and_shared_settings():
    top = {path.stem for path in (REPO / "seq2seq").glob("*.py")}
    allowed = {name.rsplit(".", 1)[1] for name in COMMANDS}
    allowed |= {"__init__", "config", "constants", "runs", "run_lock", "compat"}
    assert top <= allowed, f"not an entry point or shared setting: {sorted(top - allowed)}"
    assert len(top) <= 14
