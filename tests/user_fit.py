"""A user's pipeline as gpubench measures it against a plain `fit` of the same pipeline: `python -m
tests.user_fit check BACKEND TREE RECORD` (`make honesty-user`), a benchmark, not a test.

For each setting (examples.pipelines:pydataset_images at workers 1, 2 and 4, threads and processes,
and examples.pipelines:tfdata_images), the user's function is called twice: once through
gpubench's handover into its measured fit (timer, samplers, stamps: bench.run.worker.measure), once
straight into a plain `model.fit` timed by epoch hooks; the same null model (the pipeline alone,
where any cost of the handover shows most), taken in turns ROUNDS times so that a slower spell of the
machine falls on both. The best of each is compared (noise on shared cores only slows); each result
is appended to RECORD as a JSON line; exit status 1 when one strays past 10%.
"""

from __future__ import annotations

import json
import platform
import sys
import tempfile
import time
from pathlib import Path

from tests.plain_fit import TOLERANCE, suite_fit

ROUNDS = 5
SETTINGS = {
    f"pydataset w{w} {'processes' if p else 'threads'}": ("pydataset_images", dict(workers=w, use_multiprocessing=p))
    for p in (False, True)
    for w in (1, 2, 4)
}
SETTINGS["tfdata"] = ("tfdata_images", dict(workers=0))


def compare(backend: str, tree: str, name: str) -> dict:
    """(gpubench's best images/s, the plain fit's) for one setting."""
    import pipelines
    from bench.plan.grid import one_point
    from bench.run.timing import EpochTimer
    from bench.run.training import compile_model
    from models.user import null_like
    from pipelines.dataset import scan
    from pipelines.user import call

    function, knobs = SETTINGS[name]
    index = scan(tree)
    spec = one_point(
        {
            "pipeline": f"examples.pipelines:{function}",
            "backbone": "null",
            "batch": 16,
            "input_size": 64,
            "epochs": 4,
            "window": "epochs",
            "max_queue_size": 10,
            "backend": backend,
            **knobs,
        }
    )
    found = {"suite": [], "plain": []}
    model = None
    with tempfile.TemporaryDirectory() as scratch:
        for _ in range(ROUNDS):
            train, val = pipelines.build(index, spec, "train"), pipelines.build(index, spec, "val")
            model = model or compile_model(null_like(train.first))
            found["suite"].append(suite_fit(model, train, val, spec, Path(scratch)))
            plain, plain_val = call(spec.pipeline, index, spec, "train"), call(spec.pipeline, index, spec, "val")
            timer = EpochTimer()
            model.fit(plain, validation_data=plain_val, epochs=spec.epochs, callbacks=[timer], verbose=0, shuffle=False)
            images = index.count("train")  # one pass of every image, the last batch short
            found["plain"].append(timer.summary(train.steps, images)["train_img_s"])
    return {k: max(v) for k, v in found.items()}


def check(backend: str, tree: str, record: str) -> int:
    """Every setting's best rates and their ratio, appended to `record`; 1 when one strays past TOLERANCE."""
    found, failed = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "host": platform.node(), "backend": backend}, False
    for name in SETTINGS:
        best = compare(backend, tree, name)
        ratio = best["suite"] / best["plain"]
        failed |= abs(ratio - 1) > TOLERANCE
        found[name] = {**{k: round(v, 1) for k, v in best.items()}, "suite_over_plain": round(ratio, 3)}
        print(
            f"{name} on {backend}: gpubench {best['suite']:.0f} vs plain fit {best['plain']:.0f} images/s "
            f"({ratio:.3f})",
            flush=True,
        )
    with open(record, "a") as f:
        f.write(json.dumps(found) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(check(*sys.argv[2:5]) if sys.argv[1] == "check" else 2)
