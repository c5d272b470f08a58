"""gpubench: make a dataset, sweep or run points, rebuild reports."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from bench import spec as specs
from bench.spec import DataSpec, RunSpec, SpecError
from bench.store import ResultStore, StoreBusy
from pipelines import TFDATA_FORMATS
from pipelines.dataset import DatasetError, DatasetIndex, make_synthetic, scan


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--gpu", default="auto", help="label the results file under (auto: from the GPU's name, or cpu)")
    p.add_argument("--data", help="a flow_from_directory tree (default: a synthetic one under data/)")
    p.add_argument("--out", help="results folder (default: results/<gpu>/<preset>)")
    p.add_argument("--set", action="append", default=[], metavar="KNOB=V1,V2", help="override a knob")
    p.add_argument("--timeout", type=float, help="seconds one run may take (default: the preset's)")
    p.add_argument("--interval", type=float, default=0.5, help="seconds between CPU/GPU samples")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="gpubench", description=__doc__)
    sub = top.add_subparsers(dest="command", required=True)

    d = sub.add_parser("data", help="write a synthetic flow_from_directory tree")
    d.add_argument("dir")
    d.add_argument("--train", type=int, default=148)
    d.add_argument("--val", type=int, default=30)
    d.add_argument("--classes", type=int, default=3)
    d.add_argument("--image-size", default="640x480", help="WIDTHxHEIGHT")
    d.add_argument("--seed", type=int, default=0)

    s = sub.add_parser("sweep", help="run a preset's grid, one subprocess per point")
    s.add_argument("--preset", default="quick", help="a name in bench/presets/ or a .toml path")
    _add_run_options(s)
    s.add_argument("--repeat", type=int, help="runs of each point (default: the preset's)")
    s.add_argument("--force", action="store_true", help="rerun points already in the results")
    s.add_argument("--dry-run", action="store_true", help="print the grid and run nothing")

    r = sub.add_parser("run", help="run one point and print its record")
    _add_run_options(r)

    rep = sub.add_parser("report", help="rebuild report.md from a results folder")
    rep.add_argument("dir")

    t = sub.add_parser("train", help="fine-tune a backbone for real, the seed's way")
    t.add_argument("--data", required=True, help="a flow_from_directory tree with train/ and val/")
    t.add_argument("--out", required=True, help="folder for best.keras, last.keras, log.csv")
    t.add_argument("--backbone", default="vgg16")
    t.add_argument("--input-size", type=int, default=224)
    t.add_argument("--batch", type=int, default=16)
    t.add_argument("--epochs", type=int, default=200)
    t.add_argument("--finetune", default="full", help="head, last_block or full: the seed's three steps")
    t.add_argument("--pipeline", default="keras")
    t.add_argument("--workers", type=int, default=16)
    t.add_argument("--use-multiprocessing", action="store_true")
    t.add_argument("--max-queue-size", type=int, default=10)
    t.add_argument("--gpus", type=int, default=1)
    t.add_argument("--tensorboard", action="store_true")

    res = sub.add_parser("resume", help="go on training a model written by train")
    res.add_argument("model", help="the training folder or a .keras file in it")
    res.add_argument("--epochs", type=int, required=True, help="epochs to add")
    res.add_argument("--data", help="default: the data it was trained on")
    res.add_argument("--tensorboard", action="store_true")

    ev = sub.add_parser("evaluate", help="accuracy per class and confusion matrix, never shuffled")
    ev.add_argument("model", help="a .keras file written by train, or its folder (best.keras)")
    ev.add_argument("data", help="a folder of class folders, e.g. DATA/test")
    ev.add_argument("--batch", type=int, default=16)
    ev.add_argument("--json", help="also write the result here")

    pr = sub.add_parser("predict", help="a CSV of file, predicted class, probabilities")
    pr.add_argument("model")
    pr.add_argument("target", help="an image or a folder of images")
    pr.add_argument("--out", default="predictions.csv")
    pr.add_argument("--batch", type=int, default=16)
    return top


def _grid(preset_knobs: dict, overrides: list[str], repeat: int = 1) -> list[RunSpec]:
    """The checked grid: the preset's knobs with the --set overrides."""
    if repeat < 1:
        raise SpecError(f"--repeat {repeat}: must be at least 1")
    knobs = dict(preset_knobs)
    for text in overrides:
        knob, values = specs.parse_override(text)
        knobs[knob] = values
    grid = specs.expand(knobs, repeat)
    for point in grid:
        specs.check_spec(point)
    return grid


def _dataset(args, data_spec: DataSpec) -> DatasetIndex:
    if args.data:
        return scan(args.data)
    root = Path("data") / data_spec.dirname()
    print(f"making the synthetic dataset {root} (skipped when it already exists)", file=sys.stderr)
    make_synthetic(root, data_spec.train, data_spec.val, data_spec.classes,
                   specs.parse_size(data_spec.image_size), data_spec.seed)
    return scan(root)


def _check_formats(grid: list[RunSpec], index: DatasetIndex) -> None:
    if any(s.pipeline == "tfdata" for s in grid):
        odd = sorted({Path(f).suffix for split in index.files.values() for f in split
                      if Path(f).suffix.lower() not in TFDATA_FORMATS})
        if odd:
            raise SpecError(f"pipeline tfdata cannot decode {', '.join(odd)} images; use keras or convert them")


def _execute(args, grid: list[RunSpec], preset_name: str, data_spec: DataSpec, timeout_s: float,
             force: bool) -> tuple[Path, list[dict]]:
    """Everything after the grid is known: checks, data, environment, then the runs."""
    from bench import env, report, runner

    label = specs.check_label(env.auto_label() if args.gpu == "auto" else args.gpu)
    index = _dataset(args, data_spec)
    _check_formats(grid, index)
    if index.skipped:
        print(f"warning: {len(index.skipped)} unreadable images skipped (first: {index.skipped[0]})", file=sys.stderr)
    store = ResultStore(args.out or Path("results") / label / preset_name).create()
    with store.locked():
        index_path = store.root / ".dataset.json"
        index.save(index_path)
        machine = env.collect()
        (store.root / "env.json").write_text(json.dumps(machine, indent=2))
        sweep_meta = {"preset": preset_name, "gpu": label, "command": shlex.join(["gpubench"] + sys.argv[1:]),
                      "data": index.root, "train_images": index.count("train"),
                      "val_images": index.count("val"), "classes": len(index.classes),
                      "skipped": len(index.skipped)}
        (store.root / "sweep.json").write_text(json.dumps(sweep_meta, indent=2))
        new = runner.sweep(grid, index_path, store, timeout_s, args.interval, force, machine["gpu_count"])
        path = report.write(store.root)
    return path, new


def _dry_run(grid: list[RunSpec]) -> None:
    import pandas as pd

    frame = pd.DataFrame([p.knobs() | {"repeat": p.repeat} for p in grid])
    varying = [c for c in frame.columns if frame[c].nunique(dropna=False) > 1] or list(frame.columns)
    fixed = {c: frame[c].iloc[0] for c in frame.columns if c not in varying}
    print(f"{len(grid)} runs; fixed: " + ", ".join(f"{k}={v}" for k, v in fixed.items()))
    shown = frame[varying].astype(object)
    print(shown.where(shown.notna(), "n/a").to_markdown(index=False))


def _workflow(args) -> int:
    from bench import workflow

    if args.command == "train":
        knobs = dict(backbone=args.backbone, input_size=args.input_size, pipeline=args.pipeline,
                     batch=args.batch, workers=args.workers, use_multiprocessing=args.use_multiprocessing,
                     max_queue_size=args.max_queue_size, gpus=args.gpus, epochs=args.epochs,
                     finetune=args.finetune)
        spec = _grid({k: [v] for k, v in knobs.items()}, [])[0]
        print(json.dumps(workflow.train(spec, args.data, args.out, args.tensorboard), indent=2))
    elif args.command == "resume":
        if args.epochs < 1:
            raise SpecError(f"--epochs {args.epochs}: must be at least 1")
        print(json.dumps(workflow.resume(args.model, args.epochs, args.data, args.tensorboard), indent=2))
    elif args.command == "evaluate":
        result = workflow.evaluate(args.model, args.data, args.batch)
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=2))
        print(workflow.evaluation_markdown(result))
    else:
        print(workflow.predict(args.model, args.target, args.out, args.batch))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "data":
            root = make_synthetic(args.dir, args.train, args.val, args.classes,
                                  specs.parse_size(args.image_size), args.seed)
            print(f"{root}: {args.train} training and {args.val} validation images, {args.classes} classes")
        elif args.command == "report":
            from bench import report

            if not (Path(args.dir) / "runs.jsonl").is_file():
                raise SpecError(f"{args.dir} has no runs.jsonl: not a results folder")
            print(report.write(args.dir))
        elif args.command == "sweep":
            preset = specs.load_preset(args.preset)
            grid = _grid(preset.knobs, args.set, preset.repeat if args.repeat is None else args.repeat)
            if args.dry_run:
                _dry_run(grid)
                return 0
            path, _ = _execute(args, grid, preset.name, preset.data, args.timeout or preset.timeout_s, args.force)
            print(path)
        elif args.command in ("train", "resume", "evaluate", "predict"):
            return _workflow(args)
        else:  # run
            grid = _grid({}, args.set)
            if len(grid) != 1:
                raise SpecError("run takes one value per knob; use sweep for several")
            _, new = _execute(args, grid, "run", DataSpec(), args.timeout or 900.0, force=True)
            print(json.dumps(new[0], indent=2))
    except (SpecError, DatasetError, StoreBusy) as e:
        print(f"gpubench: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
