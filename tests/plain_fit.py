"""The suite's measured fit against a plain `model.fit` of the same compiled model on the same
data, timed by epoch-level callbacks only. Run as `python -m tests.plain_fit MODE KINDS BACKEND
TREE` (KINDS: comma-separated); prints JSON, each kind's by its name.

KIND `model`: the model alone: the synthetic feed against a plain fit on the same feed
(`plain`), and (rates only) on the same tensors as NumPy arrays, which Keras slices every step
(`numpy`). KIND `loader`: the keras pipeline alone (the null model): its stamped PyDataset
against a plain PyDataset of the same reads (`plain`). Every fit validates after each epoch, as
the suite's does.

MODE `rates`: each one's images/s, alternately in one process so that both see the same machine.
MODE `counts`: what each fit does on the training thread, counted rather than timed, so that load
cannot change it: the device reads (each one a wait for the device) and the calls into
gpubench's own code (tests/test_plain_fit.py). `python -m tests.plain_fit check BACKEND TREE
RECORD` is the benchmark `make honesty` runs: the best rates of both kinds, appended to RECORD
(JSON lines), exit status 1 when the suite is more than 10% from the plain fit.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import sys
import tempfile
import threading
from pathlib import Path

ROUNDS = 4
TOLERANCE = 0.10
# A count does not depend on the work a step does: the model's counted fits take smaller steps (as
# many: its bound is half the steps), the loader's fewer (its bounds are per step and per epoch).
COUNTED = {"model": {"input_size": 32, "batch": 4}, "loader": {"steps_per_epoch": 20, "window": "epochs"}}
PROJECT = tuple(str(Path(__file__).resolve().parent.parent / name) for name in ("bench", "pipelines", "models"))


def setup(kind: str, backend: str, tree: str, smaller: dict | None = None) -> tuple:
    """(the spec, its feeds, the compiled model, the plain fits by name: each takes a timer);
    `smaller`: settings that replace the rated spec's (counts: COUNTED)."""
    import numpy as np

    import models
    from bench.plan.knobs import RunSpec
    from bench.run import training
    from pipelines.batches import BatchOrder, onehot
    from pipelines.dataset import scan
    from pipelines.pydataset import ImageFolderBatches
    from pipelines.reader import ImageReader

    index = scan(tree)
    if kind == "model":
        spec = RunSpec(
            backend=backend,
            backbone="tiny",
            input_size=96,
            pipeline="synthetic",
            batch=32,
            epochs=2,
            steps_per_epoch=60,
        )
    else:
        spec = RunSpec(
            backend=backend,
            backbone="null",
            input_size=32,
            pipeline="keras",
            batch=8,
            workers=2,
            max_queue_size=4,
            epochs=2,
            steps_per_epoch=100,
        )
    spec = dataclasses.replace(spec, **(smaller or {}))
    train_feed, val_feed = training.feeds(index, spec)
    model = training.compile_model(models.build(spec.backbone, (spec.input_size,) * 2 + (3,), len(index.classes)))
    val = val_feed.data  # validation after each epoch, as in the suite's fit: both time the steps without it
    plains = {
        "plain": lambda timer: model.fit(
            train_feed.data, validation_data=val, epochs=spec.epochs, callbacks=[timer], verbose=0, shuffle=False
        )
    }
    if kind == "model":
        rng = np.random.default_rng(0)
        x = np.tile(
            rng.random((spec.batch, spec.input_size, spec.input_size, 3), dtype=np.float32), (train_feed.steps, 1, 1, 1)
        )
        y = onehot(rng.integers(0, len(index.classes), len(x)), len(index.classes))
        plains["numpy"] = lambda timer: model.fit(
            x,
            y,
            batch_size=spec.batch,
            epochs=spec.epochs,
            shuffle=False,
            validation_data=val,
            callbacks=[timer],
            verbose=0,
        )
    else:
        order = BatchOrder(index.count("train"), spec.batch, train_feed.images, shuffle=True)
        read = ImageReader(index.files["train"], spec.input_size, spec.interpolation, spec.transfer, cache=False)
        reads = ImageFolderBatches(
            read,
            index.labels["train"],
            len(index.classes),
            order,
            train_feed.steps,
            workers=spec.workers,
            use_multiprocessing=spec.use_multiprocessing,
            max_queue_size=spec.max_queue_size,
        )
        plains["plain"] = lambda timer: model.fit(
            reads, validation_data=val, epochs=spec.epochs, callbacks=[timer], verbose=0, shuffle=False
        )
    return spec, train_feed, val_feed, model, plains


def suite_fit(model, train_feed, val_feed, spec, scratch: Path) -> float:
    """The suite's measured fit (timer, samplers, stamps): its images/s."""
    from bench.results.record import RunRecord
    from bench.run import worker

    record = RunRecord()
    worker.measure(model, train_feed, val_feed, spec, record, scratch / "samples.csv", 0.5)
    return record.train_img_s


def rates(kind: str, backend: str, tree: str) -> dict:
    """Images/s of the suite's fit and of each plain fit of the same work, ROUNDS each, taken in turns
    so that a slower spell of the machine falls on both alike."""
    from bench.run.timing import EpochTimer

    spec, train_feed, val_feed, model, plains = setup(kind, backend, tree)
    found = {name: [] for name in ["suite", *plains]}
    with tempfile.TemporaryDirectory() as scratch:
        for _ in range(ROUNDS):
            found["suite"].append(suite_fit(model, train_feed, val_feed, spec, Path(scratch)))
            for name, plain in plains.items():
                timer = EpochTimer()
                plain(timer)
                found[name].append(timer.summary(train_feed.steps, train_feed.images)["train_img_s"])
    return found


class TrainingThreadCounts:
    """Counts, inside `model.fit` on the thread that calls it, the device reads (Keras turns a
    tensor into a Python value through backend.convert_to_numpy: each one waits for the device)
    and the calls into gpubench's own code. Only fit itself: what the suite does before and after
    it (starting the samplers, summarising their samples) is not the training's cost."""

    def __init__(self, model):
        import keras.src.backend as backend

        self.backend, self.convert = backend, backend.convert_to_numpy
        self.model, self.fit = model, model.fit
        self.reads = 0
        self.calls = collections.Counter()  # per thread: the training thread's, and those fit starts
        self.thread = threading.get_ident()

    def _counted_fit(self, *args, **kwargs):
        """Threads that fit starts (loaders, Keras's prefetch) are counted too; the samplers' thread,
        started before fit, is not."""
        threading.setprofile(self._profile)
        sys.setprofile(self._profile)
        try:
            return self.fit(*args, **kwargs)
        finally:
            sys.setprofile(None)
            threading.setprofile(None)

    def _read(self, x):
        if threading.get_ident() == self.thread and sys.getprofile() is not None:
            self.reads += 1
        return self.convert(x)

    def _profile(self, frame, event, arg):
        if event == "call" and frame.f_code.co_filename.startswith(PROJECT):
            self.calls["training" if threading.get_ident() == self.thread else "other"] += 1

    def __enter__(self):
        self.backend.convert_to_numpy = self._read
        self.model.fit = self._counted_fit
        return self

    def __exit__(self, *exc):
        del self.model.fit
        self.backend.convert_to_numpy = self.convert


def counts(kind: str, backend: str, tree: str) -> dict:
    """Each fit's device reads and project calls on the training thread, once compiled, and the
    steps and epochs they ran."""
    from bench.run.timing import EpochTimer

    spec, train_feed, val_feed, model, plains = setup(kind, backend, tree, COUNTED[kind])
    found = {"steps": train_feed.steps * spec.epochs, "epochs": spec.epochs}
    with tempfile.TemporaryDirectory() as scratch:
        suite_fit(model, train_feed, val_feed, spec, Path(scratch))  # compiles
        with TrainingThreadCounts(model) as suite:
            suite_fit(model, train_feed, val_feed, spec, Path(scratch))
        with TrainingThreadCounts(model) as plain:
            plains["plain"](EpochTimer())
    found.update(
        {
            name: {"reads": c.reads, "calls": c.calls["training"], "other_calls": c.calls["other"]}
            for name, c in (("suite", suite), ("plain", plain))
        }
    )
    return found


def check(backend: str, tree: str, record: str) -> int:
    """Both kinds' best rates (noise on shared cores only slows, so the best of each is compared),
    appended to `record` with the time and machine; 1 when the suite strays past TOLERANCE."""
    import platform
    import time

    found, failed = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "host": platform.node(), "backend": backend}, False
    for kind in ("model", "loader"):
        best = {name: max(values) for name, values in rates(kind, backend, tree).items()}
        ratio = best["suite"] / best["plain"]
        failed |= abs(ratio - 1) > TOLERANCE or best["suite"] < (1 - TOLERANCE) * best.get("numpy", 0)
        found[kind] = {**{name: round(value, 1) for name, value in best.items()}, "suite_over_plain": round(ratio, 3)}
        print(
            f"{kind} alone on {backend}: suite {best['suite']:.0f} vs plain fit {best['plain']:.0f} images/s "
            f"({ratio:.3f})" + (f", NumPy arrays {best['numpy']:.0f}" if "numpy" in best else "")
        )
    with open(record, "a") as f:
        f.write(json.dumps(found) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    from bench.run import devices

    # before anything imports Keras (bench.run.timing does): it takes its backend when first imported
    devices.prepare(sys.argv[2] if sys.argv[1] == "check" else sys.argv[3], 1)
    if sys.argv[1] == "check":
        sys.exit(check(*sys.argv[2:5]))
    mode, kinds, backend, tree = sys.argv[1:5]
    print(
        json.dumps({kind: {"rates": rates, "counts": counts}[mode](kind, backend, tree) for kind in kinds.split(",")})
    )
