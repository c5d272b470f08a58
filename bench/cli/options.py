"""gpubench: make a dataset, sweep or run points, rebuild reports.

A user's mistake is one line and exit status 2, before any work starts; Ctrl-C is one line
saying what was kept, and exit status 130. Wherever a file is written, `-` is standard output.
"""

from __future__ import annotations

import argparse
import dataclasses
import os

from bench.plan.knobs import BUSY_PCT, KINDS, KNOBS, QUIET_WAIT_S, SAMPLE_INTERVAL_S, SpecError, below_minimum, coerce
from bench.plan.presets import DATA_TYPES, DataSpec
from bench.run.executors import EXECUTORS

# The knobs `train` takes; where its first try differs from a sweep's: (default, why[, its meaning to train]).
TRAIN_KNOBS = {
    "backend": (os.environ.get("KERAS_BACKEND") or KNOBS["backend"].default, "$KERAS_BACKEND when set"),
    **dict.fromkeys(("backbone", "input_size", "batch")),
    "epochs": (20, "a first try; resume adds more (the seed trained 200)", "epochs trained, every one kept"),
    **dict.fromkeys(("finetune", "pipeline")),
    "workers": (min(16, os.cpu_count() or 1), "this machine's cores, 16 at most (the seed's 16)"),
    **dict.fromkeys(("use_multiprocessing", "max_queue_size", "gpus")),
}


class Parser(argparse.ArgumentParser):
    """argparse's error as one line (its usage is a --help away)."""

    def error(self, message):
        """Exit 2 with one line."""
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


def knob_type(name: str):
    """An argparse type: the knob's value from text (coerce) at or above its minimum, a SpecError's
    line as argparse's error. Its allowed values are checked with the rest of the point (check_spec)."""

    def convert(text: str):
        try:
            value = coerce(name, text)
        except SpecError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
        if below_minimum(name, value):
            raise argparse.ArgumentTypeError(below_minimum(name, value))
        return value

    convert.__name__ = name
    return convert


def add_knob_option(p: argparse.ArgumentParser, name: str, own: tuple | None = None) -> None:
    """--NAME for a knob: its type, meaning and allowed values from its metadata; `own` (default,
    why[, meaning]) where the command's first try (or what the knob means to it) differs."""
    field, flag = KNOBS[name], "--" + name.replace("_", "-")
    default, why, *meaning = own or (field.default, "")
    meta = field.metadata
    allowed = f": {', '.join(map(str, meta['allowed']))}" if meta["allowed"] and bool not in KINDS[name] else ""
    text = (meaning[0] if meaning else meta["help"]) + allowed + (f"; {why}" if why else "")
    if bool in KINDS[name]:
        p.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=text)
    else:
        p.add_argument(flag, type=knob_type(name), default=default, help=text)


def version() -> str:
    """The installed gpubench's version, or why there is none."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed_version

    try:
        return installed_version("gpubench")
    except PackageNotFoundError:
        return "unknown (not installed: run from a checkout)"


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--gpu", default="auto", help="label the results file under (auto: from the GPU's name, or cpu)")
    p.add_argument("--data", help="a flow_from_directory tree (default: a synthetic one under data/)")
    p.add_argument("--out", help="results folder (default: results/<gpu>/<host>/<preset>); not one of your files")
    p.add_argument(
        "--set", action="append", default=[], metavar="KNOB=V1,V2", help="override a knob (gpubench knobs lists them)"
    )
    p.add_argument("--timeout", type=positive(float), help="seconds one run may take (default: the preset's)")
    p.add_argument(
        "--interval", type=positive(float), default=SAMPLE_INTERVAL_S, help="seconds between CPU/GPU samples"
    )
    wait = float(os.environ.get("GPUBENCH_QUIET_WAIT_S", QUIET_WAIT_S))  # the test suite's workers load each other
    p.add_argument(
        "--quiet-wait",
        type=float,
        default=wait,
        help="seconds at most to wait for quiet after a run "
        f"other work slowed (over {BUSY_PCT:.0f}%% of the CPU; default {wait:g}; 0: never wait)",
    )


def run_options(args: argparse.Namespace, timeout_s: float, **more):
    """The options every measuring command shares (_add_run_options), as the one object a sweep
    takes; `timeout_s` where --timeout is not given, `more` for the command's own."""
    from bench.run.settings import Options

    shared = dict(gpu=args.gpu, data=args.data, out=args.out, interval=args.interval, command=args.typed)
    shared["quiet_wait_s"] = getattr(args, "quiet_wait", 0.0)  # fit tries for memory, not rates: no wait
    return Options(**shared, timeout_s=args.timeout or timeout_s, **more)


def parser() -> argparse.ArgumentParser:
    """Every command's options."""
    top = Parser(prog="gpubench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    top.add_argument("--version", action="version", version=f"gpubench {version()}")
    sub = top.add_subparsers(dest="command", required=True)

    d = sub.add_parser("data", help="write a synthetic flow_from_directory tree")
    d.add_argument("dir")
    for field in dataclasses.fields(DataSpec):  # the synthetic tree a preset asks for, at its defaults
        kind = DATA_TYPES[field.name]
        d.add_argument(
            "--" + field.name.replace("_", "-"),
            default=field.default,
            help=field.metadata.get("help"),
            type=positive(kind) if field.metadata.get("positive") else kind,
        )

    s = sub.add_parser("sweep", help="run a preset's grid, one subprocess per point")
    s.add_argument("--preset", default="quick", help="a name (gpubench presets lists them) or a .toml path")
    _add_run_options(s)
    s.add_argument("--repeat", type=int, help="runs of each point (default: the preset's)")
    s.add_argument(
        "--force",
        action="store_true",
        help="rerun points already in the results; write into a folder holding files gpubench did not write",
    )
    s.add_argument("--dry-run", action="store_true", help="print the grid and run nothing")
    s.add_argument(
        "--profile",
        nargs="?",
        const="fastest",
        metavar="POINT_ID",
        help="after the grid, one more run of a point with the backend's profiler tracing a few steps of "
        "its measured window (profiles/<run_id>/ in the results; the report lists the operations "
        "that took most of the time); alone: the point with the highest images/s; its rates are "
        "left out of the tables",
    )
    s.add_argument(
        "--no-ceilings",
        action="store_true",
        help="skip the pipeline-alone and model-alone runs that give the bound verdict",
    )
    s.add_argument(
        "--executor",
        choices=EXECUTORS,
        default="local",
        help="where the runs happen: here, one after another; as Slurm jobs; as submitit's local jobs",
    )
    s.add_argument("--max-parallel", type=positive(int), default=1, help="jobs running at once (slurm, submitit-local)")
    s.add_argument("--slurm-partition")
    s.add_argument("--slurm-gpus-per-node", type=int)
    s.add_argument(
        "--slurm-time", type=positive(int), default=60, help="minutes a job may take (at least the run's timeout)"
    )
    s.add_argument(
        "--slurm-exclusive",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="ask for the node to itself (default: yes; a benchmark shares nothing)",
    )

    tu = sub.add_parser(
        "tune",
        help="from one setting, measure what limits it, change that knob, keep what helps "
        "beyond the noise; ends with the code of the best setting",
    )
    tu.add_argument(
        "--preset",
        default="mine",
        help="where the setting starts: each knob's first value in the "
        "preset, then --set (default: mine, your own job)",
    )
    _add_run_options(tu)
    tu.add_argument(
        "--repeat",
        type=positive(int),
        default=2,
        help="runs of your setting (they give the noise); each change runs once, and again where the noise cannot tell",
    )
    tu.add_argument("--max-runs", type=positive(int), default=12, help="settings tried at most")

    r = sub.add_parser("run", help="run one point and print its record")
    _add_run_options(r)
    r.add_argument(
        "--profile",
        action="store_true",
        help="trace a few steps of the measured window with the backend's profiler (profiles/<run_id>/); "
        "the run's rates are then marked profiled",
    )

    f = sub.add_parser("fit", help="the largest batch (or input size) that trains without running out of memory")
    f.add_argument("--backbone", required=True)
    what = f.add_mutually_exclusive_group()
    what.add_argument("--input-size", type=int, help="search the batch at this input size (default 224)")
    what.add_argument("--batch", type=int, help="search the input size at this batch")
    f.add_argument("--start", type=positive(int), help="first value tried (default: batch 1, input size 32)")
    f.add_argument("--limit", type=positive(int), default=4096, help="largest value tried")
    f.add_argument("--precision", default="float32")
    f.add_argument("--set", action="append", default=[], metavar="KNOB=V", help="another knob's value: backend=jax")
    f.add_argument(
        "--mem-limit-mb", type=positive(int), help="cap each try's memory: the GPU's, or the address space on a CPU"
    )
    f.add_argument("--gpu", default="auto")
    f.add_argument("--data", help="default: a small synthetic tree (the tries use in-memory tensors)")
    f.add_argument("--out", help="default: results/<gpu>/<host>/fit-<backbone>")
    f.add_argument("--timeout", type=positive(float))
    f.add_argument("--interval", type=positive(float), default=SAMPLE_INTERVAL_S)

    c = sub.add_parser(
        "compare",
        help="compare two results configuration by configuration; exit 1 on a regression, "
        "3 when the figures cannot decide (too noisy, or measured under load)",
    )
    c.add_argument("baseline", help="a results folder, or a baseline .csv saved by `gpubench baseline save`")
    c.add_argument("current", help="a results folder")
    c.add_argument("--metric", help="default train_img_s, or the preset's gate")
    c.add_argument("--factor", type=positive(float), help="how much worse counts (default 1.10, or the preset's gate)")
    c.add_argument("--preset", help="use this preset's [gate]: metric, factor, drop, max_repeats")
    c.add_argument("--strict", action="store_true", help="refuse to compare results of other hardware")
    c.add_argument("--across-hardware", action="store_true", help="on other hardware, gate the absolute figures too")
    c.add_argument(
        "--remeasure", action="store_true", help="measure again in CURRENT what noise or load left undecided"
    )

    b = sub.add_parser("baseline", help="save a results folder as the baseline of its GPU label and preset")
    b.add_argument("action", choices=["save"])
    b.add_argument("dir")
    b.add_argument(
        "--out",
        help="the baseline .csv (default: results/baselines/<gpu>/<preset>.csv in gpubench's "
        "checkout, where make regress reads it)",
    )
    b.add_argument("--force", action="store_true", help="replace an existing baseline")

    rep = sub.add_parser("report", help="rebuild report.md from a results folder, or compare machines")
    rep.add_argument(
        "dirs",
        nargs="+",
        metavar="DIR",
        help="one results folder; several (e.g. results/*/quick) for the machines side by side",
    )
    rep.add_argument(
        "--out",
        help="with several folders: the report to write (default: machines-<preset>.md in the folders' common parent)",
    )
    rep.add_argument("--run", help="the run whose CPU/GPU utilisation to plot (default: the fastest configuration's)")
    rep.add_argument(
        "--plot", action="store_true", help="with several folders: also draw the bar chart (a .png beside the report)"
    )
    rep.add_argument(
        "--price",
        action="append",
        default=[],
        metavar="MACHINE=USD_PER_HOUR",
        help="with several folders: what an hour of a machine costs (its name as the report's tables "
        "give it, e.g. cpu-hostA=0.40), for images per dollar",
    )
    rep.add_argument("--force", action="store_true", help="replace an existing --out file that gpubench did not write")

    ex = sub.add_parser("export", help="a results folder as one JSON document, for other tools")
    ex.add_argument("dir")
    ex.add_argument("--out", help="default: DIR/results.json; - for standard output")
    ex.add_argument("--force", action="store_true", help="replace an existing --out file")

    sub.add_parser("doctor", help="the GPUs NVML sees, where each backend would train, and what fixes a mismatch")

    defaults = argparse.ArgumentDefaultsHelpFormatter
    t = sub.add_parser("train", help="fine-tune a backbone for real, the seed's way", formatter_class=defaults)
    t.add_argument("--data", required=True, help="a flow_from_directory tree with train/ and val/")
    t.add_argument("--out", required=True, help="folder for best.keras, last.keras, log.csv")
    for name, own in TRAIN_KNOBS.items():
        add_knob_option(t, name, own)
    t.add_argument("--tensorboard", action="store_true")
    t.add_argument(
        "--gpu", default="auto", help="the GPU it must train on (auto: the one NVML and CUDA give it; cpu: on purpose)"
    )
    t.add_argument("--verbose", action="store_true", help="also show the frameworks' own log lines")

    res = sub.add_parser("resume", help="go on training a model written by train", formatter_class=defaults)
    res.add_argument("model", help="the training folder or a .keras file in it")
    res.add_argument("--epochs", type=positive(int), required=True, help="epochs to add")
    res.add_argument("--data", help="default: the data it was trained on")
    res.add_argument("--tensorboard", action="store_true")
    res.add_argument("--gpu", default="auto", help="the GPU it must train on (auto: the one NVML and CUDA give it)")
    res.add_argument("--verbose", action="store_true", help="also show the frameworks' own log lines")

    ev = sub.add_parser("evaluate", help="accuracy per class and confusion matrix, never shuffled")
    ev.add_argument("model", help="a .keras file written by train, or its folder (best.keras)")
    ev.add_argument("data", help="a folder of class folders, e.g. DATA/test")
    ev.add_argument("--batch", type=positive(int), default=16)
    ev.add_argument("--json", help="also write the result here (- : only the JSON, on standard output)")
    ev.add_argument("--force", action="store_true", help="replace an existing --json file")
    ev.add_argument("--gpu", default="auto", help="the GPU it must run on (auto: the one NVML and CUDA give it)")
    ev.add_argument("--verbose", action="store_true", help="also show the frameworks' own log lines")

    pr = sub.add_parser("predict", help="a CSV of file, predicted class, probabilities")
    pr.add_argument("model")
    pr.add_argument("target", help="an image or a folder of images")
    pr.add_argument("--out", default="-", help="the CSV to write (default: standard output)")
    pr.add_argument("--force", action="store_true", help="replace an existing --out file")
    pr.add_argument("--batch", type=positive(int), default=16)
    pr.add_argument("--verbose", action="store_true", help="also show the frameworks' own log lines")

    sub.add_parser("presets", help="the presets: runs, time on this host where recorded, description")
    sub.add_parser("knobs", help="the knobs: default, allowed values, meaning")
    return top
