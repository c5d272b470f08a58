"""gpubench: make a dataset, sweep or run points, rebuild reports."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import sys
from contextlib import contextmanager
from pathlib import Path

from bench import spec as specs
from bench.spec import DataSpec, RunSpec, SpecError
from bench.store import ResultStore, StoreBusy, read_json
from pipelines import TFDATA_FORMATS
from pipelines.dataset import DatasetError, DatasetIndex, make_synthetic, scan


FIT_DATA = DataSpec(train=12, val=6, classes=3, image_size="64x48")  # the fit search's tries use synthetic tensors


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
    s.add_argument("--no-ceilings", action="store_true",
                   help="skip the pipeline-alone and model-alone runs that give the bound verdict")

    r = sub.add_parser("run", help="run one point and print its record")
    _add_run_options(r)

    f = sub.add_parser("fit", help="the largest batch (or input size) that trains without running out of memory")
    f.add_argument("--backbone", required=True)
    what = f.add_mutually_exclusive_group()
    what.add_argument("--input-size", type=int, help="search the batch at this input size (default 224)")
    what.add_argument("--batch", type=int, help="search the input size at this batch")
    f.add_argument("--start", type=int, help="first value tried (default: batch 1, input size 32)")
    f.add_argument("--limit", type=int, default=4096, help="largest value tried")
    f.add_argument("--precision", default="float32")
    f.add_argument("--mem-limit-mb", type=int, help="cap each try's memory (makes the search testable on a CPU)")
    f.add_argument("--gpu", default="auto")
    f.add_argument("--data", help="default: a small synthetic tree (the tries use in-memory tensors)")
    f.add_argument("--out", help="default: results/<gpu>/fit-<backbone>")
    f.add_argument("--timeout", type=float)
    f.add_argument("--interval", type=float, default=0.5)

    c = sub.add_parser("compare", help="compare two results configuration by configuration; exit 1 on a regression")
    c.add_argument("baseline", help="a results folder, or a baseline .csv saved by `gpubench baseline save`")
    c.add_argument("current", help="a results folder")
    c.add_argument("--metric", help="default train_img_s, or the preset's gate")
    c.add_argument("--factor", type=float, help="how much worse counts (default 1.10, or the preset's gate)")
    c.add_argument("--preset", help="use this preset's [gate]: metric, factor, ratios within the run")
    c.add_argument("--strict", action="store_true", help="refuse to compare results of different machines")

    b = sub.add_parser("baseline", help="save a results folder as the baseline of its GPU label and preset")
    b.add_argument("action", choices=["save"])
    b.add_argument("dir")

    rep = sub.add_parser("report", help="rebuild report.md from a results folder, or compare machines")
    rep.add_argument("dirs", nargs="+", metavar="DIR",
                     help="one results folder; several (e.g. results/*/quick) for the machines side by side")
    rep.add_argument("--out", help="with several folders: the report to write (default results/machines-<preset>.md)")
    rep.add_argument("--run", help="the run whose CPU/GPU utilisation to plot (default: the fastest configuration's)")

    ex = sub.add_parser("export", help="a results folder as one JSON document, for other tools")
    ex.add_argument("dir")
    ex.add_argument("--out", help="default: DIR/results.json")

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
    t.add_argument("--backend", default=os.environ.get("KERAS_BACKEND", "tensorflow"),
                   help="Keras backend: tensorflow, jax or torch (default: $KERAS_BACKEND or tensorflow)")
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


def _grid(knob_sets: list[dict], overrides: list[str], repeat: int = 1, installed_only: bool = False) -> list[RunSpec]:
    """The checked grid: the union of the knob sets' products, each with the --set overrides;
    with `installed_only`, without the points whose backend or pipeline this machine lacks."""
    if repeat < 1:
        raise SpecError(f"--repeat {repeat}: must be at least 1")
    changed = dict(specs.parse_override(text) for text in overrides)
    runs = {s.run_id: s for knobs in knob_sets for s in specs.expand({**knobs, **changed}, repeat)}
    grid = list(runs.values())
    if installed_only:
        why = {p.run_id: specs.missing(p) for p in grid}
        reasons = sorted(set(why.values()) - {None})
        grid = [p for p in grid if not why[p.run_id]]
        for reason in reasons:
            print(f"left out of the grid: {reason}", file=sys.stderr)
        if not grid:
            raise SpecError("no point of the grid can run here: " + "; ".join(reasons))
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


@contextmanager
def _prepared(args, preset_name: str, data_spec: DataSpec, grid: list[RunSpec]):
    """Label, data, results folder (locked), env.json and sweep.json: what every run needs.
    Yields (store, index path, machine, sweep metadata)."""
    from bench import env

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
        meta = {"preset": preset_name, "gpu": label, "command": shlex.join(["gpubench"] + sys.argv[1:]),
                "data": index.root, "train_images": index.count("train"), "val_images": index.count("val"),
                "classes": len(index.classes), "skipped": len(index.skipped)}
        yield store, index_path, machine, meta


def _execute(args, grid: list[RunSpec], preset_name: str, data_spec: DataSpec, timeout_s: float,
             force: bool, with_ceilings: bool = False) -> tuple[Path, list[dict]]:
    """Everything after the grid is known: checks, data, environment, then the runs."""
    from bench import report, runner

    with _prepared(args, preset_name, data_spec, grid) as (store, index_path, machine, meta):
        if with_ceilings:  # MFU is part of the ceilings' analysis
            meta["peak_tflops"], meta["peak_matmul_precision"] = runner.measure_peaks(
                {(p.backend, p.precision) for p in grid})
        (store.root / "sweep.json").write_text(json.dumps(meta, indent=2))
        probes = specs.ceilings(grid) if with_ceilings else []
        new = runner.sweep(probes + grid, index_path, store, timeout_s, args.interval, force, machine["gpu_count"])
        path = report.write(store.root)
    return path, new


def _fit(args) -> None:
    from bench import fit, runner

    knob = "input_size" if args.batch else "batch"
    base = RunSpec(backbone=args.backbone, input_size=args.input_size or 224, batch=args.batch or 1,
                   precision=args.precision)
    low = 32 if knob == "input_size" else 1
    start = args.start or low
    grid = _grid([{k: [v] for k, v in dataclasses.replace(base, **{knob: start}).knobs().items()}], [])
    step = 32 if knob == "input_size" else 1
    with _prepared(args, f"fit-{args.backbone}", FIT_DATA, grid) as (store, index_path, _, meta):
        (store.root / "sweep.json").write_text(json.dumps(meta, indent=2))

        def run(spec: RunSpec) -> dict:
            record = runner.run_point(spec, index_path, store, args.timeout or 900.0, args.interval, args.mem_limit_mb)
            store.append(record)
            print(f"{knob}={getattr(spec, knob)}: {record['status']}", file=sys.stderr)
            return record

        try:
            found, tries = fit.search(base, knob, start, args.limit, run, step)
        except fit.SearchError as e:
            raise SpecError(f"the search stopped: {e}") from None
        text = fit.summary(knob, found, tries, args.limit)
        (store.root / "fit.md").write_text(f"# {args.backbone}: the largest {knob} that trains\n\n"
                                           f"Command: `{meta['command']}`\n\n{text}\n")
    print(text)


BASELINES = Path("results") / "baselines"


def _results_folder(path: str) -> Path:
    folder = Path(path)
    if not (folder / "runs.jsonl").is_file():
        raise SpecError(f"{folder} has no runs.jsonl: not a results folder")
    return folder


def _report(args) -> None:
    from bench import machines, report

    folders = [_results_folder(d) for d in args.dirs]
    if len(folders) == 1:
        runs = {r["run_id"] for r in ResultStore(folders[0]).records()}
        if args.run and args.run not in runs:
            raise SpecError(f"--run {args.run}: no such run in {folders[0]} (see the run_id column of runs.csv)")
        print(report.write(folders[0], args.run))
        return
    for folder in folders:
        report.write(folder)  # points.csv up to date
    preset = read_json(folders[0] / "sweep.json").get("preset", "sweep")
    out = Path(args.out or Path("results") / f"machines-{preset}.md")
    out.parent.mkdir(parents=True, exist_ok=True)
    machines.render(folders, out)
    print(out)


def _export(folder: Path, out: str | None) -> Path:
    """env, sweep, points and runs of a folder in one JSON document."""
    import pandas as pd

    from bench import report

    _results_folder(folder)
    report.write(folder)
    document = {name: read_json(folder / f"{name}.json") for name in ("env", "sweep")}
    document["points"] = json.loads(pd.read_csv(folder / "points.csv").to_json(orient="records"))
    document["runs"] = ResultStore(folder).latest()
    path = Path(out or folder / "results.json")
    path.write_text(json.dumps(document, indent=1))
    return path


def _save_baseline(folder: Path) -> Path:
    """results/baselines/<gpu>/<preset>.csv (its points) and .env.json (its machine)."""
    meta_file = folder / "sweep.json"
    if not (folder / "points.csv").is_file() or not meta_file.is_file():
        raise SpecError(f"{folder} has no points.csv and sweep.json: not a finished results folder")
    meta = json.loads(meta_file.read_text())
    target = BASELINES / meta["gpu"] / f"{meta['preset']}.csv"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text((folder / "points.csv").read_text())
    if (folder / "env.json").is_file():
        target.with_suffix(".env.json").write_text((folder / "env.json").read_text())
    return target


def _compare(args) -> int:
    from bench import compare

    gate = specs.load_preset(args.preset).gate if args.preset else {}
    metric = args.metric or gate.get("metric", "train_img_s")
    factor = args.factor or gate.get("factor", 1.10)
    try:
        (base, base_env), (cur, cur_env) = compare.load(args.baseline), compare.load(args.current)
        if args.strict and compare.fingerprint(base_env) != compare.fingerprint(cur_env):
            raise compare.CompareError("--strict: the two results come from different machines "
                                       f"({compare.fingerprint(base_env)} vs {compare.fingerprint(cur_env)})")
        label = read_json(Path(args.current) / "sweep.json").get("gpu", "")
        absolute = compare.compare(base, cur, metric, factor, base_env, cur_env)
        gated_absolute = not (gate.get("relative") and label == "cpu")
        print("## Absolute" + ("" if gated_absolute else " (shown, not gated: CPU figures drift)"), "")
        print(compare.markdown(absolute, metric, factor), "\n")
        regressions = absolute.regressions if gated_absolute else 0
        if gate.get("relative"):
            ratios = compare.compare(compare.relative_all(base, metric, gate["relative"]),
                                     compare.relative_all(cur, metric, gate["relative"]), metric, factor,
                                     base_env, cur_env)
            print("## Ratios within each run (gated)", "")
            print(compare.markdown(ratios, metric, factor))
            regressions += ratios.regressions
    except compare.CompareError as e:
        raise SpecError(str(e)) from None
    print(f"\ngate: {'FAIL' if regressions else 'pass'} ({regressions} regression(s))")
    return 1 if regressions else 0


class _Counts:
    """Image counts standing in for a dataset index, to plan epochs without making the data."""

    def __init__(self, data: DataSpec):
        self.counts = {"train": data.train, "val": data.val}

    def count(self, split: str) -> int:
        return self.counts[split]


def _dry_run(grid: list[RunSpec], data: DataSpec, ceilings: list[RunSpec]) -> None:
    """The grid, each run's training steps as planned on the preset's data, and the ceilings."""
    import pandas as pd

    from pipelines import split_plan

    counts = _Counts(data)
    frame = pd.DataFrame([p.knobs() | {"repeat": p.repeat} for p in grid], dtype=object)
    varying = [c for c in frame.columns if frame[c].nunique(dropna=False) > 1] or list(frame.columns)
    fixed = {c: frame[c].iloc[0] for c in frame.columns if c not in varying}
    print(f"{len(grid)} runs; fixed: " + ", ".join(f"{k}={v}" for k, v in fixed.items()))
    shown = frame[varying].copy()
    shown["train steps"] = [p.epochs * split_plan(counts, p, "train")[0] for p in grid]
    print(shown.where(shown.notna(), "n/a").to_markdown(index=False))
    if ceilings:
        steps = sum(p.epochs * split_plan(counts, p, "train")[0] for p in ceilings)
        print(f"and {len(ceilings)} ceiling runs, {steps} training steps in all (--no-ceilings leaves them out)")


def _workflow(args) -> int:
    from bench import devices, workflow

    if args.command == "train":
        knobs = dict(backbone=args.backbone, input_size=args.input_size, pipeline=args.pipeline,
                     batch=args.batch, workers=args.workers, use_multiprocessing=args.use_multiprocessing,
                     max_queue_size=args.max_queue_size, gpus=args.gpus, epochs=args.epochs,
                     finetune=args.finetune, backend=args.backend)
        spec = _grid([{k: [v] for k, v in knobs.items()}], [])[0]
        devices.prepare(spec.backend, spec.gpus, specs.frameworks(spec))
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
            _report(args)
        elif args.command == "export":
            print(_export(Path(args.dir), args.out))
        elif args.command == "sweep":
            preset = specs.load_preset(args.preset)
            grid = _grid(preset.knob_sets(), args.set, preset.repeat if args.repeat is None else args.repeat,
                         preset.installed_only)
            if args.dry_run:
                _dry_run(grid, preset.data, specs.ceilings(grid) if preset.ceilings and not args.no_ceilings else [])
                return 0
            path, _ = _execute(args, grid, preset.name, preset.data, args.timeout or preset.timeout_s, args.force,
                               preset.ceilings and not args.no_ceilings)
            print(path)
        elif args.command == "compare":
            return _compare(args)
        elif args.command == "baseline":
            print(_save_baseline(Path(args.dir)))
        elif args.command == "fit":
            _fit(args)
        elif args.command in ("train", "resume", "evaluate", "predict"):
            return _workflow(args)
        else:  # run
            grid = _grid([{}], args.set)
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
