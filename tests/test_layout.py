"""The layout as a specification: the stages import one way and no two modules import each other,
no module grows past a screenful or two, and each package says what it is. Read from the files
(ast), importing nothing."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
PACKAGES = ("bench", "models", "pipelines")
# A screenful or two, as `ruff format` writes a module (a long call's arguments one to a line): the
# 260 lines of the compact style this limit held before the code was formatted came to 260-326.
MAX_LINES = 330
# What each stage may import. The ground floor, pipelines/ then models/ (a user's model is read
# through pipelines/user.py), imports nothing of bench. Above it the flow plan -> run -> results
# -> analyse -> output, except that run writes its rows through results (the record schema and the
# store) and results never reaches back into run. The modules on top (cli/, session, search,
# finetune) may import any stage.
GROUND = {"pipelines", "models"}
MAY_IMPORT = {
    "pipelines": {"pipelines"},
    "models": {"pipelines", "models"},
    "plan": GROUND | {"plan"},
    "results": GROUND | {"plan", "results"},
    "run": GROUND | {"plan", "results", "run"},
    "analyse": GROUND | {"plan", "results", "analyse"},
    "output": GROUND | {"plan", "results", "analyse", "output"},
}
# Imports left in a circle, each named so that no new one slips in (none now).
KNOWN_CIRCLES: set[tuple[str, str]] = set()


def modules(*packages: str) -> list[Path]:
    return sorted(p for package in packages for p in (ROOT / package).rglob("*.py"))


def dotted(path: Path) -> str:
    """`pipelines/user.py` -> pipelines.user; a package's __init__.py is the package."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_imports(path: Path) -> set[str]:
    """The project's modules and names `path` imports (at the top or inside a function), dotted."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] in PACKAGES}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in PACKAGES:
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


def stage(name: str) -> str | None:
    """The stage of `bench.<stage>....`, `models...` or `pipelines...`, or None for a module on top."""
    parts = name.split(".")
    if parts[0] != "bench":
        return parts[0]
    return parts[1] if len(parts) > 1 and parts[1] in MAY_IMPORT else None


def import_graph() -> dict[str, set[str]]:
    """Each module -> the project's modules it imports (a name imported from a module is that module)."""
    known = {dotted(p): p for p in modules(*PACKAGES)}

    def module_of(name: str) -> str:
        while name not in known:
            name = name.rpartition(".")[0]
        return name

    return {m: {module_of(n) for n in project_imports(p)} - {m} for m, p in known.items()}


def circles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The modules that reach each other through imports, each group of two or more (Tarjan's)."""
    order, low, stack, found = {}, {}, [], []

    def visit(v):
        order[v] = low[v] = len(order)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in order:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], order[w])
        if low[v] == order[v]:
            group = set()
            while not group or w != v:
                w = stack.pop()
                group.add(w)
            if len(group) > 1:
                found.append(group)

    for v in graph:
        if v not in order:
            visit(v)
    return found


def test_stages_import_only_the_stages_before_them():
    wrong = []
    for path in modules(*PACKAGES):
        own = stage(dotted(path))
        if own is None:
            continue
        for name in project_imports(path):
            if stage(name) not in MAY_IMPORT[own]:  # a top module (None) or a later stage
                wrong.append(f"{dotted(path)} imports {name}")
    assert wrong == []


def test_no_modules_import_each_other():
    graph = import_graph()
    assert all(b in graph[a] and a in graph[b] for a, b in KNOWN_CIRCLES)  # still there: else strike it off
    for a, b in KNOWN_CIRCLES:
        graph[a] = graph[a] - {b}
    assert circles(graph) == []


def test_the_layout_check_sees_a_backward_import_and_a_circle(tmp_path):
    module = tmp_path / "m.py"
    module.write_text(
        "def f():\n    from bench.output import report\n    import bench.analyse.points\n"
        "    from bench.run.doctor import where\n"
    )
    assert project_imports(module) == {"bench.output.report", "bench.analyse.points", "bench.run.doctor.where"}
    assert {stage(n) for n in project_imports(module)} - MAY_IMPORT["run"] == {"output", "analyse"}
    assert {stage(n) for n in project_imports(module)} - MAY_IMPORT["pipelines"] == {"output", "analyse", "run"}
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_no_module_is_over_the_size_limit():
    sizes = {str(p.relative_to(ROOT)): len(p.read_text().splitlines()) for p in modules("bench")}
    assert {p: n for p, n in sizes.items() if n > MAX_LINES} == {}


def test_each_package_says_its_stage_in_a_docstring():
    packages = [BENCH, *(p.parent for p in BENCH.glob("*/__init__.py"))]
    assert {p.name for p in packages} >= {"bench", "plan", "run", "results", "analyse", "output", "cli"}
    for package in packages:
        doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text())) or ""
        assert 2 <= len(doc.splitlines()) <= 5, package
