"""How far the dali pipeline's images are from the keras pipeline's: the validation images of a
tree (never shuffled) through both, uint8, compared pixel by pixel. Run as
`python -m tests.dali_distance TREE SIZE INTERPOLATION`; prints the figures as JSON. The
tolerance in pipelines/dali.py was measured with it; tests/test_pipelines.py holds it."""

from __future__ import annotations

import json
import sys

import numpy as np


def distance(index, size: int, interpolation: str) -> dict:
    """Levels of 0-255 between the two: mean, 99th percentile, max, the share over 8, and whether
    the labels are the same."""
    import pipelines
    from bench.plan.knobs import RunSpec

    knobs = dict(
        backend="torch",
        backbone="tiny",
        input_size=size,
        batch=4,
        workers=2,
        window="epochs",
        interpolation=interpolation,
        transfer="uint8",
    )
    batches = {}
    for name in ("keras", "dali"):
        feed = pipelines.build(index, RunSpec(pipeline=name, **knobs), "val")
        batches[name] = [tuple(np.asarray(part) for part in feed.data[i]) for i in range(feed.steps)]
    count = index.count("val")  # dali pads its last batch to full
    x, dx = (np.concatenate([b[0] for b in batches[n]])[:count].astype(int) for n in ("keras", "dali"))
    y, dy = (np.concatenate([b[1] for b in batches[n]])[:count] for n in ("keras", "dali"))
    diff = np.abs(x - dx)
    return {
        "mean": float(diff.mean()),
        "p99": float(np.percentile(diff, 99)),
        "max": int(diff.max()),
        "share_over_8": float((diff > 8).mean()),
        "labels_equal": bool(np.array_equal(y, dy)),
    }


if __name__ == "__main__":
    from pipelines.dataset import scan

    print(json.dumps(distance(scan(sys.argv[1]), int(sys.argv[2]), sys.argv[3])))
