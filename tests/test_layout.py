"""The layout as a specification: the stages import one way, no module grows past a screenful or
two, and each package says what it is. Read from the files (ast), importing nothing."""

import ast
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"
MAX_LINES = 260
# What each stage may import: the ones before it in the flow plan -> run -> results -> analyse ->
# output, except that run writes its rows through results (the record schema and the store) and
# results never reaches back into run. The modules on top (cli/, session, search, finetune) may
# import any stage.
MAY_IMPORT = {
    "plan": {"plan"},
    "results": {"plan", "results"},
    "run": {"plan", "results", "run"},
    "analyse": {"plan", "results", "analyse"},
    "output": {"plan", "results", "analyse", "output"},
}


def modules() -> list[Path]:
    return sorted(BENCH.rglob("*.py"))


def bench_imports(path: Path) -> set[str]:
    """The bench modules and packages `path` imports (at the top or inside a function), dotted."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "bench"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "bench":
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


def stage(dotted: str) -> str | None:
    """The stage of `bench.<stage>....`, or None for a module on top."""
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in MAY_IMPORT else None


def test_stages_import_only_the_stages_before_them():
    wrong = []
    for path in modules():
        dotted = ".".join(path.relative_to(BENCH.parent).with_suffix("").parts)
        own = stage(dotted)
        if own is None:
            continue
        for name in bench_imports(path):
            if stage(name) not in MAY_IMPORT[own]:  # a top module (None) or a later stage
                wrong.append(f"{dotted} imports {name}")
    assert wrong == []


def test_the_layout_check_sees_a_backward_import(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from bench.output import report\n    import bench.analyse.points\n")
    assert bench_imports(module) == {"bench.output.report", "bench.analyse.points"}
    assert {stage(n) for n in bench_imports(module)} - MAY_IMPORT["run"] == {"output", "analyse"}


def test_no_module_is_over_the_size_limit():
    sizes = {str(p.relative_to(BENCH.parent)): len(p.read_text().splitlines()) for p in modules()}
    assert {p: n for p, n in sizes.items() if n > MAX_LINES} == {}


def test_each_package_says_its_stage_in_a_docstring():
    packages = [BENCH, *(p.parent for p in BENCH.glob("*/__init__.py"))]
    assert {p.name for p in packages} >= {"bench", "plan", "run", "results", "analyse", "output", "cli"}
    for package in packages:
        doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text())) or ""
        assert 2 <= len(doc.splitlines()) <= 5, package
