"""Keras 3's three backends, the torch DataLoader pipeline, and gpubench without TensorFlow."""

import ast
import importlib.metadata
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import pipelines
from bench.plan import grid
from bench.plan.backends import BACKENDS
from bench.plan.grid import installed
from bench.plan.knobs import RunSpec
from bench.results.store import ResultStore
from bench.run import runner
from bench.run.devices import CACHE_ENV
from bench.run.settings import Options
from pipelines.dataset import scan
from pipelines.registry import describe_loader, prefetch_factor
from tests.conftest import assert_forked_with_startup_parts, gpubench, session_of, sets, smoke_sweep

ROOT = Path(__file__).resolve().parents[1]
needs_jax = pytest.mark.skipif(not installed("jax"), reason="jax is not installed")
needs_torch = pytest.mark.skipif(not installed("torch"), reason="torch is not installed")


@pytest.mark.slow
@needs_jax
def test_the_smoke_preset_runs_on_jax(tiny_tree, cli, no_figures, monkeypatch, tmp_path):
    """The pipelines of other frameworks feed jax, each run forked from a server that imported both.
    The smoke sweep on tensorflow is in test_sweep, on torch below (without TensorFlow); the dali
    pipeline feeds jax in test_data_wait, the synthetic feed in the two tests below it."""
    backend = "jax"
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))  # an empty compilation cache
    pipelines = ["keras", *(["tfdata"] if installed("tensorflow") else []), "torch"]
    result = cli(
        *smoke_sweep(
            tiny_tree, *sets(f"backend={backend}", f"pipeline={','.join(pipelines)}", "batch=8", "window=epochs")
        )
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = pd.read_csv(tmp_path / "out" / "runs.csv")
    assert set(runs.status) == {"ok"}, runs.error.tolist()
    assert set(runs.pipeline) == set(pipelines)
    assert (runs.backend == backend).all()
    assert_forked_with_startup_parts(runs)
    assert (runs.backend_version == importlib.metadata.version(backend).split("+")[0]).all() or (
        runs.backend_version == importlib.metadata.version(backend)
    ).all()
    assert (runs.train_img_s > 0).all() and (runs.data_wait_frac >= 0).all()
    env = json.loads((tmp_path / "out" / "env.json").read_text())
    assert env[backend] == importlib.metadata.version(backend)
    assert f"on {backend}," in (tmp_path / "out" / "report.md").read_text()
    # One model, batch and precision fed by three pipelines compiles once: the first run fills the
    # persistent cache, the others compile from it (they add no entry to it: counted, not timed;
    # the time it saves is in results/reference/cpu/compile-cache).
    by = runs.set_index("pipeline")
    loaders = [p for p in ("keras", "tfdata", "torch") if p in by.index]
    assert list(by.cache_hit[loaders]) == [False] + [True] * (len(loaders) - 1)
    assert "compiled from cache" in (tmp_path / "out" / "report.md").read_text()


@pytest.mark.slow
@needs_torch
def test_without_tensorflow_the_torch_backend_runs_and_tfdata_is_left_out(tmp_path, tiny_tree, without_tensorflow):
    """TensorFlow hidden in the sweep and in every process it starts; what `gpubench run` refuses
    without it, the test below."""
    result = gpubench(
        *smoke_sweep(tiny_tree, *sets("backend=torch", "batch=8", "window=epochs")),
        cwd=tmp_path,
        env=without_tensorflow,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "left out of the grid: pipeline tfdata needs tensorflow, which is not installed here" in result.stderr
    runs = pd.read_csv(tmp_path / "out" / "runs.csv")
    assert set(runs.status) == {"ok"}
    assert set(runs.pipeline) == {"keras", "torch", "synthetic"} | ({"dali"} if installed("nvidia.dali") else set())
    assert (runs.backend == "torch").all() and (runs.train_img_s > 0).all()
    assert_forked_with_startup_parts(runs)
    assert json.loads((tmp_path / "out" / "env.json").read_text())["cuda"] == ""


def test_without_tensorflow_a_run_that_needs_it_is_refused(tiny_tree, cli, monkeypatch, tmp_path):
    """The refusal is decided before any work: here TensorFlow is absent to that decision only."""
    monkeypatch.setattr(grid, "installed", lambda module: module != "tensorflow" and installed(module))
    for knobs, message in (
        (["backend=torch", "pipeline=tfdata"], "pipeline tfdata needs tensorflow"),
        (["pipeline=keras"], "backend tensorflow needs tensorflow"),
    ):
        sets = [a for k in knobs for a in ("--set", k)]
        refused = cli("run", "--data", tiny_tree, "--out", "refused", *sets)
        assert refused.returncode == 2
        assert refused.stderr.strip().splitlines() == [
            f"gpubench: error: {message}, which is not installed here (pip install 'gpubench[tf]')"
        ]
        assert not (tmp_path / "refused").exists()


@pytest.mark.slow
@needs_jax
def test_two_logical_devices_on_jax_train_with_data_parallel(tmp_path, tiny_tree, cli, no_figures):
    knobs = ("backend=jax,torch", "pipeline=synthetic", "batch=4", "gpus=2", "window=epochs")
    result = cli(*smoke_sweep(tiny_tree, *sets(*knobs)))
    assert result.returncode == 0, result.stderr[-3000:]
    runs = pd.read_csv(tmp_path / "out" / "runs.csv").set_index("backend")
    assert runs.loc["jax", "status"] == "ok", runs.loc["jax", "error"]
    assert runs.loc["jax", "devices"] == "2 x CPU (logical)"
    assert pd.isna(runs.loc["jax", "data_wait_frac"])  # tensors in memory are never waited for, nor stamped
    assert runs.loc["torch", "status"] == "skipped" and runs.loc["torch", "error"] == BACKENDS["torch"].one_device


@pytest.mark.slow
@needs_torch
def test_the_torch_pipeline_reads_what_the_keras_pipeline_reads(tiny_tree):
    index = scan(tiny_tree)
    for split in ("val", "train"):
        keras_feed = pipelines.build(index, RunSpec(backbone="tiny", input_size=24, batch=5, workers=1), split)
        torch_feed = pipelines.build(
            index,
            RunSpec(backbone="tiny", input_size=24, batch=5, pipeline="torch", workers=2, max_queue_size=4),
            split,
        )
        assert (torch_feed.steps, torch_feed.images) == (keras_feed.steps, keras_feed.images)
        for _ in range(2):  # the second epoch checks that both reshuffle the same way
            for i, (x, y) in enumerate(torch_feed.data):
                kx, ky = keras_feed.data[i]
                assert x.dtype == np.float32 or str(x.dtype) == "torch.float32"
                assert np.array_equal(np.asarray(x), kx) and np.array_equal(np.asarray(y), ky)
            assert i == keras_feed.steps - 1
            keras_feed.data.on_epoch_end()
        if split == "train":
            assert all(torch_feed.ready.times[i] > 0 for i in range(torch_feed.steps))  # stamped in the workers


@pytest.mark.slow
@needs_torch
def test_torch_loader_knobs(tiny_tree):
    index = scan(tiny_tree)
    loader = pipelines.build(index, RunSpec(pipeline="torch", batch=4, workers=4, max_queue_size=10), "train").data
    assert loader.num_workers == 4 and loader.prefetch_factor == 3 and loader.persistent_workers
    assert not loader.pin_memory  # pinned only for the torch backend on CUDA
    inline = pipelines.build(index, RunSpec(pipeline="torch", batch=4, workers=0), "train").data
    assert inline.num_workers == 0 and not inline.persistent_workers
    assert prefetch_factor(1, 10) == 10 and prefetch_factor(8, 10) == 2 and prefetch_factor(4, 0) == 2
    spec = RunSpec(pipeline="torch", workers=8, max_queue_size=10)
    assert describe_loader(spec).startswith("DataLoader: 8 worker processes, prefetch_factor 2 (16 batches")


def test_a_batch_past_the_first_out_of_memory_batch_is_skipped(tmp_path, monkeypatch):
    """The gpu preset's batch ladders: after batch 64 runs out of memory, 128 and 256 do not
    run, on any loader; another precision or backbone is another ladder."""
    ran = []

    def fake_run(spec, *args, **kwargs):
        ran.append((spec.backbone, spec.precision, spec.pipeline, spec.batch))
        status = "oom" if spec.backbone == "vgg16" and spec.precision == "float32" and spec.batch >= 64 else "ok"
        timed = {"total_s": 1.0, "train_img_s": 1.0} if status == "ok" else {"error": "out of memory"}
        return runner.RunRecord.for_spec(spec, status=status, **timed).to_dict()

    monkeypatch.setattr(runner, "run_point", fake_run)
    grid = [
        RunSpec(backbone=b, precision=p, pipeline=pipe, batch=n, workers=None if pipe == "synthetic" else 4)
        for b in ("vgg16", "resnet50")
        for p in ("float32", "mixed_bfloat16")
        for pipe in ("synthetic", "keras")
        for n in (32, 64, 128, 256)
    ]
    store = ResultStore(tmp_path / "out").create()
    rows = runner.sweep(grid, session_of(store), Options(timeout_s=60))
    stopped = [r for r in rows if r["status"] == "skipped"]
    assert [(r["pipeline"], r["batch"]) for r in stopped] == [
        ("synthetic", 128),
        ("synthetic", 256),
        ("keras", 64),
        ("keras", 128),
        ("keras", 256),
    ]
    assert {(r["backbone"], r["precision"]) for r in stopped} == {("vgg16", "float32")}
    assert len(ran) == len(grid) - 5
    assert stopped[0]["error"] == "batch ladder stopped: batch 64 ran out of memory with this model and precision"
    again = runner.sweep(
        grid + [RunSpec(backbone="vgg16", batch=512, pipeline="tfdata")], session_of(store), Options(timeout_s=60)
    )  # a resumed sweep remembers the stored rows
    assert [r["status"] for r in again] == ["skipped"]


@pytest.mark.slow
def test_channels_first_trains_where_the_backend_can_and_is_a_skipped_row_where_it_cannot(
    tmp_path, tiny_tree, cli, no_figures
):
    backends = [b for b in ("tensorflow", "jax", "torch") if installed(b)]
    knobs = (f"backend={','.join(backends)}", "pipeline=synthetic", "batch=4", "data_format=channels_first")
    result = cli(*smoke_sweep(tiny_tree, *sets(*knobs, "window=epochs")))
    assert result.returncode == 0, result.stderr[-3000:]
    runs = pd.read_csv(tmp_path / "out" / "runs.csv").set_index("backend")
    assert (runs.data_format == "channels_first").all()
    assert (
        runs.loc["tensorflow", "status"] == "skipped"
        and runs.loc["tensorflow", "error"] == BACKENDS["tensorflow"].channels_first_on_cpu
    )
    for backend in set(backends) - {"tensorflow"}:
        assert runs.loc[backend, "status"] == "ok", runs.loc[backend, "error"]
        assert runs.loc[backend, "train_img_s"] > 0
    if "jax" in backends:  # tensors in memory are never waited for, nor stamped (torch's timer stamps them)
        assert pd.isna(runs.loc["jax", "data_wait_frac"])
    if len(backends) == 3:
        assert "| tiny 32px | synthetic channels_first b4 |" in (tmp_path / "out" / "report.md").read_text()


BACKEND_MODULES = ROOT / "bench" / "run" / "backends"
# Where a backend's name is still compared outside its module, each on purpose. (The pipelines ask
# pipelines.feed.trains_on whether the backend that trains is their own framework, tf.data's TensorFlow
# or the DataLoader's torch: a question of the pipeline's, which a new backend leaves unchanged.)
NAMED_ON_PURPOSE: dict[str, str] = {}


def _backend_names(node) -> set[str]:
    """The backends' names a literal (or a tuple, list or set of literals) holds."""
    items = node.elts if isinstance(node, (ast.Tuple, ast.List, ast.Set)) else [node]
    return {i.value for i in items if isinstance(i, ast.Constant) and i.value in BACKENDS}


def switches_on_a_backend(source: str) -> list[int]:
    """Lines that compare something named backend with a backend's name (==, !=, in), or pick from a
    dict keyed by backends' names with it: a backend's behaviour written outside its module."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(_backend_names(s) for s in sides) and any("backend" in ast.unparse(s) for s in sides):
                lines.append(node.lineno)
        elif (
            isinstance(node, ast.Subscript)
            and isinstance(node.value, ast.Dict)
            and "backend" in ast.unparse(node.slice)
            and _backend_names(ast.Tuple(node.value.keys))
        ):
            lines.append(node.lineno)
    return lines


def test_a_backends_behaviour_is_written_in_its_module_only():
    assert switches_on_a_backend(
        'if spec.backend == "jax":\n    pass\nx = keras.backend.backend() != "torch"\n'
        'y = backend in ("tensorflow", "jax")\nz = {"jax": 1, "torch": 2}[backend]\n'
        'w = p["pipeline"] == "torch"\n'
    ) == [1, 3, 4, 5]
    found = {}
    for path in sorted(p for package in ("bench", "models", "pipelines") for p in (ROOT / package).rglob("*.py")):
        lines = switches_on_a_backend(path.read_text())
        if lines and BACKEND_MODULES not in path.parents:
            found[str(path.relative_to(ROOT))] = lines
    assert set(found) <= set(NAMED_ON_PURPOSE), found
    assert all(len(lines) == 1 for lines in found.values()), found


def test_every_backend_has_a_module_with_the_same_names():
    """As Keras keeps keras/src/backend/<name>/: one module per descriptor, each with the same public
    functions and facts (read from the files, importing no framework)."""

    def public(path):
        tree = ast.parse(path.read_text())
        names = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
        names |= {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
        return {n for n in names if not n.startswith("_")}

    modules = {p.stem: p for p in BACKEND_MODULES.glob("*.py") if p.stem != "__init__"}
    assert set(modules) == set(BACKENDS)
    names = {name: public(path) for name, path in modules.items()}
    assert len({frozenset(n) for n in names.values()}) == 1, names
    assert {"setup", "where", "start_profiler", "stop_profiler", "use_compile_cache"} <= names["jax"]


def test_the_device_a_variable_pins_a_backend_to_decides_the_gpus_it_uses_and_samples(monkeypatch):
    from bench.results import nvml
    from bench.run import devices, gate

    gpus = [{"index": i, "uuid": f"GPU-{i}", "name": "NVIDIA H100"} for i in range(3)]
    monkeypatch.setenv("KERAS_TORCH_DEVICE", "cuda:2")
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert devices.sampled("torch", 1) == [2] and devices.sampled("jax", 2) == [0, 1]
    assert [g["index"] for g in nvml.used(gpus, 1, gate.device_asked("torch"))] == [2]
    assert nvml.used(gpus, 2, gate.device_asked("jax")) == []  # kept on the CPU
    assert [g["index"] for g in nvml.used(gpus, 2, gate.device_asked("tensorflow"))] == [0, 1]
    assert gate.fix("jax", "12.4") == "unset JAX_PLATFORMS=cpu, which keeps jax off the GPU"
