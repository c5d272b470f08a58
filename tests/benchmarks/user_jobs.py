"""A user's own job, five ways gpubench could measure its ceilings on another job: `python -m
tests.benchmarks.user_jobs OUT` (`make user-jobs`). Each case is a small `mine` sweep of a pipeline and
model defined here, on this machine; the table printed (and OUT/user-jobs.md) gives each configuration's
rows, bound, efficiency, and the model ceiling's shape and batch as its runs recorded them. A benchmark,
not a test: tests/test_job_ceilings.py checks the same decisions in process."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

HERE = "tests.benchmarks.user_jobs"
EPOCHS = ["--set", "epochs=2", "--set", "precision=float32", "--set", "backend=tensorflow"]
# name -> (what the issue saw, the sweep's --set arguments)
CASES = {
    "own 24 images at 80 px, swept at batch 32 and 128": (
        "two rows of one job, two verdicts against ceilings at 64 px",
        [f"pipeline={HERE}:own_80px", f"backbone={HERE}:any_size", "batch=32,128", "input_size=64"],
    ),
    "own 128-image batches, swept at batch 8": (
        "model alone measured at batch 8, 5.2x low; efficiency 3.06, compute-bound",
        [f"pipeline={HERE}:own_128", f"backbone={HERE}:any_size", "batch=8", "input_size=32"],
    ),
    "None-shaped model fed 96 px, input_size 32": (
        "model alone at 32 px, 5.7x high; overhead-bound at 0.09",
        [f"pipeline={HERE}:at_96px", f"backbone={HERE}:any_size", "batch=16", "input_size=32"],
    ),
    "batch swept for a pipeline that ignores it": (
        "3x the runs, advice of a larger batch that cannot be followed",
        [f"pipeline={HERE}:own_80px", f"backbone={HERE}:any_size", "batch=32,128,256", "input_size=64"],
    ),
    "model takes classes, labels of 3, folder of 2": (
        "every point failed with Keras's raw shape error",
        [f"pipeline={HERE}:three_classes", f"backbone={HERE}:any_size", "input_size=32"],
    ),
}


def _images(n: int, size: int, classes: int = 2, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.random((n, size, size, 3), dtype=np.float32), np.eye(classes, dtype="float32")[
        rng.integers(0, classes, n)
    ]


def own_80px(split):
    """A PyDataset of 24 images a batch at 80x80, 12 batches a pass: its own batch and image size."""
    import keras

    class Own(keras.utils.PyDataset):
        def __len__(self):
            return 12

        def __getitem__(self, i):
            return _images(24, 80, seed=i)

    return Own()


def own_128(split):
    """Batches of 128 images at 32 px, 4 a pass, whatever the batch knob says."""
    return [_images(128, 32, seed=i) for i in range(4)]


def at_96px(batch, split):
    """Images of 96 px (the pipeline's own size), `batch` a batch."""
    return [_images(batch, 96, seed=i) for i in range(6)]


def three_classes(batch):
    """Labels of 3 classes from data of its own, while the data folder has 2."""
    return [_images(batch, 32, classes=3, seed=i) for i in range(6)]


def any_size(input_shape, classes):
    """A small CNN of any image size (None, None, 3) when asked so; `input_shape` as given otherwise."""
    import keras

    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(16, 3, strides=2, activation="relu")(inputs)
    x = keras.layers.Conv2D(32, 3, strides=2, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(classes, activation="softmax")(x))
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    return model


def _bound_words(p: dict) -> str:
    """A points row's bound in words where its table has no `bound_says` (code before it)."""
    doubt = p.get("bound_doubt") if isinstance(p.get("bound_doubt"), str) else ""
    return f"{p.get('bound')}" + (f" withheld: {doubt[:90]}" if doubt else "") if pd.notna(p.get("bound")) else ""


def run_case(out: Path, sets: list[str]) -> dict:
    """The case's sweep and what its points say."""
    from bench.analyse.points import spec_of
    from bench.plan.grid import model_ceiling

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path.cwd()), os.environ.get("PYTHONPATH", "")])}
    args = [sys.executable, "-m", "bench", "sweep", "--preset", "mine", "--gpu", "cpu", "--out", str(out), "--force"]
    args += [x for s in sets for x in ("--set", s)] + EPOCHS
    done = subprocess.run(args, env=env, capture_output=True, text=True)
    found = {"exit": done.returncode, "said": (done.stdout.strip().splitlines() or [""])[-1][:200]}
    if not (out / "points.csv").is_file():
        return found | {"error": done.stderr.strip().splitlines()[-1:]}
    points = pd.read_csv(out / "points.csv", keep_default_na=False, na_values=[""])
    rows = [json.loads(line) for line in open(out / "runs.jsonl")]
    shapes = {r["point_id"]: (r.get("input_shape"), r.get("host_batch")) for r in rows if r.get("status") == "ok"}
    found["configurations"] = []
    for p in points[(points.role == "point")].to_dict("records"):
        mid = model_ceiling(spec_of(p)).point_id
        found["configurations"].append(
            {
                "setting": f"{p['setting']} b{p['batch']}",
                "img/s": round(p["train_img_s"], 1) if pd.notna(p["train_img_s"]) else None,
                "model alone": round(p["model_img_s"], 1) if pd.notna(p.get("model_img_s")) else None,
                "efficiency": round(p["efficiency"], 2) if pd.notna(p.get("efficiency")) else None,
                "says": p.get("bound_says") or _bound_words(p),
                "point shape, batch": shapes.get(p["point_id"]),
                "model ceiling shape, batch": shapes.get(mid),
            }
        )
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {HERE}")
    parser.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    lines = []
    for i, (name, (before, sets)) in enumerate(CASES.items()):
        found = run_case(args.out / f"case{i + 1}", sets)
        lines += [f"## {i + 1}. {name}", "", f"The issue saw: {before}.", ""]
        if found["exit"] == 2:  # refused before any run: say why, then the job as the preset sweeps it
            lines += [f"`--set batch` refused (exit 2): {' '.join(found['error'])}", ""]
            found = run_case(args.out / f"case{i + 1}", [s for s in sets if not s.startswith("batch=")])
        lines += [f"exit {found['exit']}: {found['said']}", ""]
        if found.get("configurations"):
            lines += [pd.DataFrame(found["configurations"]).to_markdown(index=False), ""]
        print("\n".join(lines[-8:]), flush=True)
    (args.out / "user-jobs.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
