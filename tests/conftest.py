import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from bench.run.devices import CACHE_ENV
from pipelines.dataset import make_synthetic

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# The suite's workers are each other's "other work": a real sweep in a test waits for no quiet
# (--quiet-wait's default; tests/test_load.py checks the wait itself).
os.environ.setdefault("GPUBENCH_QUIET_WAIT_S", "0")


def pytest_configure(config):
    """One empty cache folder (compiled programs, peaks) for the whole suite, its workers and every
    process they start: the suite fills it as a fresh CI machine does, and never writes the user's
    (a GPUBENCH_CACHE_DIR of theirs included)."""
    if not hasattr(config, "workerinput"):  # xdist's controller, or pytest alone: its workers inherit it
        config.suite_cache = (os.environ.get(CACHE_ENV), tempfile.mkdtemp(prefix="gpubench-test-cache-"))
        os.environ[CACHE_ENV] = config.suite_cache[1]


def pytest_unconfigure(config):
    if hasattr(config, "suite_cache"):
        theirs, ours = config.suite_cache
        if theirs is None:
            os.environ.pop(CACHE_ENV, None)
        else:
            os.environ[CACHE_ENV] = theirs
        shutil.rmtree(ours, ignore_errors=True)


@pytest.fixture(scope="session")
def tiny_tree(tmp_path_factory) -> Path:
    """12 training and 4 validation images of 64x48 in 2 classes."""
    return make_synthetic(
        tmp_path_factory.mktemp("data") / "tiny", train=12, val=4, classes=2, image_size=(64, 48), seed=1
    )


# A run timed out at 0.5 s on purpose starts as a plain process: forked, its time would first go to
# the launcher's server importing TensorFlow (bench/run/launcher.py).
SPAWNED = dict(os.environ, GPUBENCH_FORK="0")


def assert_forked_with_startup_parts(runs) -> None:
    """Each run forked from its backend's launcher (bench/run/launcher.py), its start-up in parts."""
    parts = runs[["import_s", "device_s", "model_s", "flops_s"]]
    assert runs.forked.all() and (parts > 0).all().all()
    assert (parts.sum(axis=1) <= runs.startup_s + 1e-6).all() and (runs.startup_s < runs.wall_s).all()


def gpubench(*args, cwd: Path, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    """The CLI as a user runs it, in its own process."""
    return subprocess.run(
        [sys.executable, "-m", "bench", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def sets(*knobs: str) -> list[str]:
    """--set for each of `knobs` ("batch=4,8")."""
    return [arg for knob in knobs for arg in ("--set", knob)]


def smoke_sweep(data, *more) -> list:
    """`gpubench sweep`'s arguments for the smoke preset on `data`, into out/, without its ceilings."""
    return ["sweep", "--preset", "smoke", "--data", data, "--out", "out", "--no-ceilings", *more]


class StandIn:
    """What runner.run_point (and search's processes.run_point) return, at once, where a test
    checks what a sweep decides rather than what a worker measures: no process starts. A run's
    rate is `rate(spec)` (images/s), or it fails where `fails(spec)` gives (status, error);
    `started` lists the runs asked for, in order, and `given` the variables each was given."""

    def __init__(self):
        self.started: list = []
        self.given: list = []
        self.rate = lambda spec: 100.0 + spec.batch
        self.fails = lambda spec: None

    def __call__(self, spec, index_path, store, timeout_s, interval=0.5, mem_limit_mb=None, given=None) -> dict:
        from bench.results.record import RunRecord

        self.started.append(spec)
        self.given.append(given)
        failed = self.fails(spec)
        if failed:
            return RunRecord.for_spec(spec, status=failed[0], error=failed[1], wall_s=1.0).to_dict()
        rate, steps = self.rate(spec), 20
        return RunRecord.for_spec(
            spec,
            status="ok",
            train_img_s=rate,
            window_s=steps * spec.batch / rate,
            window_steps=steps,
            window_images=steps * spec.batch,
            train_steps=steps,
            val_steps=2,
            epochs_timed=spec.epochs,
            train_images_per_epoch=steps * spec.batch,
            total_s=2.0 + steps * spec.batch / rate,
            wall_s=3.0 + steps * spec.batch / rate,
            startup_s=1.0,
            cpu_util_mean=50.0,
            cpu_util_p90=60.0,
        ).to_dict()


def session_of(store, index_path: Path = Path("unused.json"), gpus: int = 0, **env):
    """What runner.sweep takes of a session: `store`, the scanned tree at `index_path`, an env.json
    of `gpus` GPUs (and `env`), no variables given to the workers."""
    from bench.run.settings import Prepared

    return Prepared(store, Path(index_path), {"gpu_count": gpus, **env}, {}, {})


@pytest.fixture
def no_figures(monkeypatch) -> None:
    """A sweep's report its text without figures, where they are not what a test checks:
    test_plots.py and the smoke sweep (test_sweep.py) draw them."""
    from bench.output import report

    monkeypatch.setattr(report, "_figures", lambda *args: [])


@pytest.fixture
def stand_in(monkeypatch, no_figures) -> StandIn:
    """Every run of a sweep (and of `gpubench fit`) a StandIn, the peak probes none, and the report
    its text without figures (no_figures)."""
    from bench.run import peak, processes, runner

    runs = StandIn()
    monkeypatch.setattr(runner, "run_point", runs)
    monkeypatch.setattr(processes, "run_point", runs)
    monkeypatch.setattr(peak, "measure_peaks", lambda *args, **kwargs: {})
    return runs


def in_process(*args, cwd: Path) -> subprocess.CompletedProcess:
    """`gpubench ARGS` run from `cwd` in this process, as `gpubench` runs it (no interpreter to
    start, no import again): its exit status, standard output and error. Without the variable
    naming the test, as a user's environment is: a launcher server (keyed by the environment)
    then serves the real sweeps of every test of this worker, which import their frameworks once."""
    import contextlib
    import io

    from bench import cli as command_line

    argv = [str(a) for a in args]
    out, err = io.StringIO(), io.StringIO()
    before, test = Path.cwd(), os.environ.pop("PYTEST_CURRENT_TEST", None)
    try:
        os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = command_line.main(argv)
    finally:
        os.chdir(before)
        if test is not None:
            os.environ["PYTEST_CURRENT_TEST"] = test
    return subprocess.CompletedProcess(["gpubench", *argv], code, out.getvalue(), err.getvalue())


@pytest.fixture
def cli(tmp_path, monkeypatch):
    """`gpubench ...` in this process (in_process), from `tmp_path`, which is also the test's
    working folder: the folder a user would run it in."""
    monkeypatch.chdir(tmp_path)
    return lambda *args: in_process(*args, cwd=tmp_path)


@pytest.fixture
def without_tensorflow(tmp_path):
    """An environment where TensorFlow looks absent, as on a machine with only jax or torch:
    every process started with it (the CLI, each worker) hides it at start-up."""
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text("from bench.run.devices import hide\nhide({'tensorflow'})\n")
    return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(hide), os.environ.get("PYTHONPATH")])))


CPU_ENV = {"cpu": "Test CPU", "cpu_threads": 2, "gpus": [], "tensorflow": "2.x", "keras": "3.x"}
GPU_ENV = {
    "cpu": "Other CPU",
    "cpu_threads": 32,
    "gpus": [{"name": "NVIDIA H200", "memory_mb": 143000}],
    "tensorflow": "2.x",
    "keras": "3.x",
}


def results(
    folder, rates_by_workers, env=CPU_ENV, label="cpu", preset="t", power=None, window_s=None, plots=False, **figures
):
    """A results folder with one point per workers value, each with its repeats' images/s (and
    `figures`, the same in every row); its report drawn without plots (test_plots.py draws them)."""
    from bench.plan.knobs import RunSpec
    from bench.results.record import RunRecord
    from bench.results.store import ResultStore

    store = ResultStore(folder).create()
    for workers, rates in rates_by_workers.items():
        for repeat, rate in enumerate(rates):
            spec = RunSpec(backbone="tiny", input_size=16, batch=8, workers=workers, repeat=repeat)
            store.append(
                RunRecord.for_spec(
                    spec,
                    status="ok" if rate else "error",
                    train_img_s=rate,
                    total_s=100 / rate if rate else None,
                    epochs_timed=3,
                    train_images_per_epoch=100,
                    gpu_power_w_mean=power,
                    window_s=window_s,
                    error="" if rate else "boom",
                    **figures,
                ).to_dict()
            )
    (folder / "env.json").write_text(json.dumps(env))
    (folder / "sweep.json").write_text(json.dumps({"gpu": label, "preset": preset}))
    from bench.output import report

    report.write(folder, plots=plots)
    return folder


def render_rows(rows: list[dict], env: dict, sweep: dict) -> str:
    """The report of constructed rows, as `gpubench report` writes it of a folder."""
    from bench.analyse import points
    from bench.output import report

    return report.render(points.table(rows, env, sweep), rows, env, sweep)


def killed(args: list, cwd: Path, out: str = "out") -> set:
    """A sweep killed (SIGKILL) once it has written its first row: the runs finished before the kill."""
    import signal
    import time

    from bench.results.store import ResultStore

    sweep = subprocess.Popen(
        [sys.executable, "-m", "bench", *map(str, args)], cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    store = ResultStore(cwd / out)
    deadline = time.time() + 120
    while len(store.records()) < 1 and time.time() < deadline:
        time.sleep(0.2)
    sweep.send_signal(signal.SIGKILL)
    sweep.wait()
    return {r["run_id"] for r in store.records()}


FRAMEWORKS = ("tensorflow", "keras", "jax", "torch")
_imported: set = set()


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item):
    """Under `make test-fast` (-m "not slow") a test that imports a framework fails, once, naming
    it: importing one costs each worker seconds, and the fast set is what gpubench decides."""
    if item.config.getoption("markexpr") != "not slow":
        return
    found = [f for f in FRAMEWORKS if f in sys.modules and f not in _imported]
    _imported.update(found)
    if found:
        pytest.fail(f"{item.nodeid} imported {', '.join(found)}: a test that runs a framework is marked slow")


def pytest_collection_modifyitems(items):
    """The slow tests first (stable, each group's tests in their order): xdist hands tests out in
    this order, so that a sweep of tens of seconds started last does not hold one worker while the
    other has nothing left."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
