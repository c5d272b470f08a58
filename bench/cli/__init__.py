"""gpubench: make a dataset, sweep or run points, rebuild reports.

A user's mistake is one line and exit status 2, before any work starts; Ctrl-C is one line
saying what was kept, and exit status 130. Wherever a file is written, `-` is standard output.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from bench.plan.knobs import SAMPLE_INTERVAL_S
from bench.plan.presets import TIMEOUT_S, load_preset, parse_size
from bench.plan.grid import build_grid, ceiling_probes, frameworks, installed, one_point
from bench.run.executors import EXECUTORS, Slurm
from bench.plan.knobs import RunSpec, SpecError
from bench.plan.presets import DataSpec
from bench.run.runner import Interrupted
from bench.results.store import ResultStore, StoreBusy, StoreError, foreign_files, read_json
from pipelines.dataset import DatasetError, make_synthetic

TRAIN_EPOCHS = 20  # a first try; `resume` adds epochs (the seed trained 200)
TRAIN_WORKERS = min(16, os.cpu_count() or 1)  # loader threads: the seed's 16 where there are that many cores
INTERRUPTED = 130  # the shell's status for a command ended by Ctrl-C (128 + SIGINT)
BROKEN_PIPE = 141  # and for one whose reader went away (128 + SIGPIPE)


class Parser(argparse.ArgumentParser):
    """argparse's error as one line (its usage is a --help away)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def positive(kind: type):
    """An argparse type: a number of `kind` above 0."""
    def convert(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not value > 0:  # also refuses nan
            raise argparse.ArgumentTypeError(f"{text}: must be more than 0")
        return value

    convert.__name__ = kind.__name__
    return convert


def version() -> str:
    from importlib.metadata import PackageNotFoundError, version as installed_version

    try:
        return installed_version("gpubench")
    except PackageNotFoundError:
        return "unknown (not installed: run from a checkout)"


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--gpu", default="auto", help="label the results file under (auto: from the GPU's name, or cpu)")
    p.add_argument("--data", help="a flow_from_directory tree (default: a synthetic one under data/)")
    p.add_argument("--out", help="results folder (default: results/<gpu>/<host>/<preset>); "
                                 "a folder holding files gpubench did not write is refused")
    p.add_argument("--set", action="append", default=[], metavar="KNOB=V1,V2",
                   help="override a knob (gpubench knobs lists them)")
    p.add_argument("--timeout", type=positive(float), help="seconds one run may take (default: the preset's)")
    p.add_argument("--interval", type=positive(float), default=SAMPLE_INTERVAL_S,
                   help="seconds between CPU/GPU samples")


def parser() -> argparse.ArgumentParser:
    top = Parser(prog="gpubench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    top.add_argument("--version", action="version", version=f"gpubench {version()}")
    sub = top.add_subparsers(dest="command", required=True)

    d = sub.add_parser("data", help="write a synthetic flow_from_directory tree")
    d.add_argument("dir")
    d.add_argument("--train", type=positive(int), default=148)
    d.add_argument("--val", type=positive(int), default=30)
    d.add_argument("--classes", type=positive(int), default=3)
    d.add_argument("--image-size", default="640x480", help="WIDTHxHEIGHT")
    d.add_argument("--seed", type=int, default=0)

    s = sub.add_parser("sweep", help="run a preset's grid, one subprocess per point")
    s.add_argument("--preset", default="quick", help="a name (gpubench presets lists them) or a .toml path")
    _add_run_options(s)
    s.add_argument("--repeat", type=int, help="runs of each point (default: the preset's)")
    s.add_argument("--force", action="store_true",
                   help="rerun points already in the results; write into a folder holding files gpubench did not write")
    s.add_argument("--dry-run", action="store_true", help="print the grid and run nothing")
    s.add_argument("--no-ceilings", action="store_true",
                   help="skip the pipeline-alone and model-alone runs that give the bound verdict")
    s.add_argument("--executor", choices=EXECUTORS, default="local",
                   help="where the runs happen: here, one after another; as Slurm jobs; as submitit's local jobs")
    s.add_argument("--max-parallel", type=positive(int), default=1, help="jobs running at once (slurm, submitit-local)")
    s.add_argument("--slurm-partition")
    s.add_argument("--slurm-gpus-per-node", type=int)
    s.add_argument("--slurm-time", type=positive(int), default=60, help="minutes a job may take (at least the run's timeout)")
    s.add_argument("--slurm-exclusive", action=argparse.BooleanOptionalAction, default=True,
                   help="ask for the node to itself (default: yes; a benchmark shares nothing)")

    r = sub.add_parser("run", help="run one point and print its record")
    _add_run_options(r)

    f = sub.add_parser("fit", help="the largest batch (or input size) that trains without running out of memory")
    f.add_argument("--backbone", required=True)
    what = f.add_mutually_exclusive_group()
    what.add_argument("--input-size", type=int, help="search the batch at this input size (default 224)")
    what.add_argument("--batch", type=int, help="search the input size at this batch")
    f.add_argument("--start", type=positive(int), help="first value tried (default: batch 1, input size 32)")
    f.add_argument("--limit", type=positive(int), default=4096, help="largest value tried")
    f.add_argument("--precision", default="float32")
    f.add_argument("--mem-limit-mb", type=positive(int), help="cap each try's memory (makes the search testable on a CPU)")
    f.add_argument("--gpu", default="auto")
    f.add_argument("--data", help="default: a small synthetic tree (the tries use in-memory tensors)")
    f.add_argument("--out", help="default: results/<gpu>/<host>/fit-<backbone>")
    f.add_argument("--timeout", type=positive(float))
    f.add_argument("--interval", type=positive(float), default=SAMPLE_INTERVAL_S)

    c = sub.add_parser("compare", help="compare two results configuration by configuration; exit 1 on a regression, 3 when the figures cannot tell (too short or too noisy)")
    c.add_argument("baseline", help="a results folder, or a baseline .csv saved by `gpubench baseline save`")
    c.add_argument("current", help="a results folder")
    c.add_argument("--metric", help="default train_img_s, or the preset's gate")
    c.add_argument("--factor", type=positive(float), help="how much worse counts (default 1.10, or the preset's gate)")
    c.add_argument("--preset", help="use this preset's [gate]: metric, factor, ratios within the run")
    c.add_argument("--strict", action="store_true", help="refuse to compare results of different machines")

    b = sub.add_parser("baseline", help="save a results folder as the baseline of its GPU label and preset")
    b.add_argument("action", choices=["save"])
    b.add_argument("dir")
    b.add_argument("--out", help="the baseline .csv (default: results/baselines/<gpu>/<preset>.csv in gpubench's "
                                 "checkout, where make regress reads it)")
    b.add_argument("--force", action="store_true", help="replace an existing baseline")

    rep = sub.add_parser("report", help="rebuild report.md from a results folder, or compare machines")
    rep.add_argument("dirs", nargs="+", metavar="DIR",
                     help="one results folder; several (e.g. results/*/quick) for the machines side by side")
    rep.add_argument("--out", help="with several folders: the report to write "
                                   "(default: machines-<preset>.md in the folders' common parent)")
    rep.add_argument("--run", help="the run whose CPU/GPU utilisation to plot (default: the fastest configuration's)")

    ex = sub.add_parser("export", help="a results folder as one JSON document, for other tools")
    ex.add_argument("dir")
    ex.add_argument("--out", help="default: DIR/results.json; - for standard output")

    sub.add_parser("doctor", help="the GPUs NVML sees, where each backend would train, and what fixes a mismatch")

    defaults = argparse.ArgumentDefaultsHelpFormatter
    t = sub.add_parser("train", help="fine-tune a backbone for real, the seed's way", formatter_class=defaults)
    t.add_argument("--data", required=True, help="a flow_from_directory tree with train/ and val/")
    t.add_argument("--out", required=True, help="folder for best.keras, last.keras, log.csv")
    t.add_argument("--backbone", default="vgg16", help="the seed's model; gpubench knobs lists the others")
    t.add_argument("--input-size", type=positive(int), default=224, help="the backbones' ImageNet size")
    t.add_argument("--batch", type=positive(int), default=16)
    t.add_argument("--epochs", type=positive(int), default=TRAIN_EPOCHS, help="a first try; resume adds more")
    t.add_argument("--finetune", default="full", help="head, last_block or full: the seed's three steps")
    t.add_argument("--pipeline", default="keras")
    t.add_argument("--workers", type=int, default=TRAIN_WORKERS, help="loader threads: this machine's cores, 16 at most")
    t.add_argument("--use-multiprocessing", action="store_true")
    t.add_argument("--max-queue-size", type=int, default=10)
    t.add_argument("--gpus", type=positive(int), default=1)
    t.add_argument("--backend", default=os.environ.get("KERAS_BACKEND", "tensorflow"),
                   help="Keras backend: tensorflow, jax or torch ($KERAS_BACKEND when set)")
    t.add_argument("--tensorboard", action="store_true")
    t.add_argument("--verbose", action="store_true", help="also show the frameworks' own log lines")

    res = sub.add_parser("resume", help="go on training a model written by train", formatter_class=defaults)
    res.add_argument("model", help="the training folder or a .keras file in it")
    res.add_argument("--epochs", type=positive(int), required=True, help="epochs to add")
    res.add_argument("--data", help="default: the data it was trained on")
    res.add_argument("--tensorboard", action="store_true")
    res.add_argument("--verbose", action="store_true", help="also show the frameworks' own log lines")

    ev = sub.add_parser("evaluate", help="accuracy per class and confusion matrix, never shuffled")
    ev.add_argument("model", help="a .keras file written by train, or its folder (best.keras)")
    ev.add_argument("data", help="a folder of class folders, e.g. DATA/test")
    ev.add_argument("--batch", type=positive(int), default=16)
    ev.add_argument("--json", help="also write the result here (- : only the JSON, on standard output)")
    ev.add_argument("--verbose", action="store_true", help="also show the frameworks' own log lines")

    pr = sub.add_parser("predict", help="a CSV of file, predicted class, probabilities")
    pr.add_argument("model")
    pr.add_argument("target", help="an image or a folder of images")
    pr.add_argument("--out", default="-", help="the CSV to write (default: standard output)")
    pr.add_argument("--batch", type=positive(int), default=16)
    pr.add_argument("--verbose", action="store_true", help="also show the frameworks' own log lines")

    sub.add_parser("presets", help="the presets: runs, time on this host where recorded, description")
    sub.add_parser("knobs", help="the knobs: default, allowed values, meaning")
    return top


def _grid(knob_sets: list[dict], overrides: list[str], repeat: int = 1, installed_only: bool = False) -> list[RunSpec]:
    grid, left_out = build_grid(knob_sets, overrides, repeat, installed_only)
    for reason in left_out:
        print(f"left out of the grid: {reason}", file=sys.stderr)
    return grid


def _results_folder(path: str) -> Path:
    folder = Path(path)
    if not (folder / "runs.jsonl").is_file():
        raise SpecError(f"{folder} has no runs.jsonl: not a results folder")
    return folder


def _write(out: str | Path, text: str) -> str:
    """Write `text` to the file `out`, or to standard output when `out` is `-`; say where."""
    if str(out) == "-":
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return "standard output"
    Path(out).write_text(text)
    return str(out)


def _check_out(out: str | None, force: bool | None) -> None:
    """--out must be a folder that is gpubench's or new: never a file, never the user's own
    files, unless `force` (the user's --force; None for a command that has none)."""
    if out is None:
        return
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise SpecError(f"--out {out} is a file: give a folder for the results")
    theirs = foreign_files(folder)
    if theirs and not force:
        shown = ", ".join(theirs[:3]) + (", ..." if len(theirs) > 3 else "")
        raise SpecError(f"--out {out} holds files gpubench did not write ({shown}): choose another folder"
                        + (", or --force to write there anyway" if force is not None else ""))


def _report(args) -> Path:
    from bench.output import machines, report

    folders = [_results_folder(d) for d in args.dirs]
    if len(folders) == 1:
        if args.run and args.run not in ResultStore(folders[0]).done():
            raise SpecError(f"--run {args.run}: no such run in {folders[0]} (see the run_id column of runs.csv)")
        return report.write(folders[0], args.run)
    for folder in folders:
        report.write(folder)  # points.csv up to date
    preset = read_json(folders[0] / "sweep.json").get("preset", "sweep")
    beside = Path(os.path.commonpath([f.resolve() for f in folders]))
    out = Path(args.out or beside / f"machines-{preset}.md")
    out.parent.mkdir(parents=True, exist_ok=True)
    machines.render(folders, out)
    return out


def _sweep(args) -> int:
    from bench import session

    preset = load_preset(args.preset)
    grid = _grid(preset.knob_sets(), args.set, preset.repeat if args.repeat is None else args.repeat,
                 preset.installed_only)
    with_ceilings = preset.ceilings and not args.no_ceilings
    if args.dry_run:
        print(session.plan(grid, preset.data, ceiling_probes(grid) if with_ceilings else []))
        return 0
    _check_out(args.out, args.force)
    if args.executor != "local" and not installed("submitit"):
        raise SpecError(f"--executor {args.executor} needs submitit, which is not installed here "
                        "(pip install 'gpubench[fleet]')")
    slurm = Slurm(args.slurm_partition, args.slurm_gpus_per_node, args.slurm_time, args.slurm_exclusive)
    start = time.monotonic()
    path, new = session.run(grid, preset.name, preset.data, gpu=args.gpu, data=args.data, out=args.out,
                            timeout_s=args.timeout or preset.timeout_s, interval=args.interval, force=args.force,
                            ceilings=with_ceilings, executor=args.executor, max_parallel=args.max_parallel,
                            slurm=slurm)
    print(closing_line(new, time.monotonic() - start, path))
    return 0


def closing_line(rows: list[dict], wall_s: float, report: Path) -> str:
    """The sweep in one line: its runs by outcome, its wall time, the report and the first
    sentence of the report's verdict."""
    from bench.run.runner import clock

    ok = sum(r["status"] == "ok" for r in rows)
    skipped = sum(r["status"] == "skipped" for r in rows)
    counts = f"{ok} ok, {skipped} skipped, {len(rows) - ok - skipped} failed"
    line = f"{len(rows)} runs ({counts}) in {clock(wall_s)}; report: {report}"
    verdict = next((l for l in report.read_text().splitlines() if l.startswith("**Verdict.** ")), "")
    sentence = verdict.removeprefix("**Verdict.** ").split(". ")[0].rstrip(".")
    return line + (f"; verdict: {sentence}." if sentence else "")


def _run(args) -> int:
    from bench import session

    _check_out(args.out, force=None)
    grid = _grid([{}], args.set)
    if len(grid) != 1:
        raise SpecError("run takes one value per knob; use sweep for several")
    _, new = session.run(grid, "run", DataSpec(), gpu=args.gpu, data=args.data, out=args.out,
                         timeout_s=args.timeout or TIMEOUT_S, interval=args.interval, force=True)
    print(json.dumps(new[0], indent=2))
    return 0


def _compare(args) -> int:
    from bench.output import compare

    preset_gate = load_preset(args.preset).gate if args.preset else {}
    try:
        text, status = compare.gate(args.baseline, args.current, preset_gate, args.metric, args.factor, args.strict)
    except compare.CompareError as e:
        raise SpecError(str(e)) from None
    print(text)
    return status


@contextmanager
def _quiet_start(verbose: bool):
    """The frameworks' C++ log lines hidden (unless --verbose): TF_CPP_MIN_LOG_LEVEL for those
    after start-up (among them "failed call to cuInit", which reads as an error on a CPU
    machine), and standard error set aside while Keras loads, since absl writes some lines
    before that setting applies; they are shown if loading fails."""
    if verbose:
        yield
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as aside:
        os.dup2(aside.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            aside.seek(0)
            sys.stderr.write(aside.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _workflow(args) -> int:
    from bench.run import devices
    from bench import finetune as workflow

    if args.command == "train":
        spec = one_point(dict(
            backbone=args.backbone, input_size=args.input_size, pipeline=args.pipeline, batch=args.batch,
            workers=args.workers, use_multiprocessing=args.use_multiprocessing, max_queue_size=args.max_queue_size,
            gpus=args.gpus, epochs=args.epochs, finetune=args.finetune, backend=args.backend, window="epochs"))
        devices.prepare(spec.backend, spec.gpus, frameworks(spec))
    else:
        workflow.prepare(args.model)
    with _quiet_start(args.verbose):
        import keras  # noqa: F401  (loaded here, quietly)
        import models  # noqa: F401

    if args.command == "train":
        print(json.dumps(workflow.train(spec, args.data, args.out, args.tensorboard), indent=2))
    elif args.command == "resume":
        print(json.dumps(workflow.resume(args.model, args.epochs, args.data, args.tensorboard), indent=2))
    elif args.command == "evaluate":
        result = workflow.evaluate(args.model, args.data, args.batch)
        if args.json:
            _write(args.json, json.dumps(result, indent=2))
        if args.json != "-":
            print(workflow.evaluation_markdown(result))
    else:
        text, skipped = workflow.predict(args.model, args.target, args.batch)
        if skipped:
            print(f"warning: {len(skipped)} unreadable files skipped (first: {skipped[0]})", file=sys.stderr)
        where = _write(args.out, text)
        if args.out != "-":
            print(where)
    return 0


def _data(args) -> int:
    root = make_synthetic(args.dir, args.train, args.val, args.classes, parse_size(args.image_size), args.seed)
    print(f"{root}: {args.train} training and {args.val} validation images, {args.classes} classes")
    return 0


def _fit(args) -> int:
    from bench import search as fit

    _check_out(args.out, force=None)
    print(fit.run_search(args.backbone, args.input_size, args.batch, args.start, args.limit, args.precision,
                         args.mem_limit_mb, args.gpu, args.data, args.out, args.timeout, args.interval))
    return 0


def _export(args) -> int:
    from bench.output import export

    folder = _results_folder(args.dir)
    where = _write(args.out or folder / "results.json", export.document(folder))
    if args.out != "-":
        print(where)
    return 0


def _baseline(args) -> int:
    from bench.output import compare

    try:
        print(compare.save_baseline(Path(args.dir), args.force, args.out))
    except compare.CompareError as e:
        raise SpecError(str(e)) from None
    return 0


def _doctor(args) -> int:
    from bench.run import doctor

    print(doctor.render(doctor.facts()))
    return 0


def _presets(args) -> int:
    from bench.cli import catalogue

    print(catalogue.presets())
    return 0


def _knobs(args) -> int:
    from bench.cli import catalogue

    print(catalogue.knobs())
    return 0


COMMANDS = {"doctor": _doctor, "presets": _presets, "knobs": _knobs, "data": _data, "sweep": _sweep, "run": _run, "fit": _fit, "compare": _compare, "baseline": _baseline,
            "report": lambda args: print(_report(args)) or 0, "export": _export, "train": _workflow,
            "resume": _workflow, "evaluate": _workflow, "predict": _workflow}


def main(argv: list[str] | None = None) -> int:
    try:
        args = parser().parse_args(argv)
    except SystemExit as e:  # --help, --version, or a usage error already printed
        return e.code or 0
    try:
        return COMMANDS[args.command](args)
    except (SpecError, DatasetError, StoreBusy, StoreError) as e:
        print(f"gpubench: error: {e}", file=sys.stderr)
        return 2
    except Interrupted as e:
        print(f"gpubench: {e}", file=sys.stderr)
        return INTERRUPTED
    except BrokenPipeError:  # the reader stopped reading (`gpubench knobs | head`): nothing to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return BROKEN_PIPE
    except KeyboardInterrupt:
        resume = "the epochs finished are kept (last.keras, log.csv): `gpubench resume` goes on from them"
        kept = {"train": resume, "resume": resume}.get(args.command, "nothing was left running")
        print(f"gpubench: interrupted; {kept}", file=sys.stderr)
        return INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
