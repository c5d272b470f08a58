"""A sweep session: what every run needs before the first starts, then the runs.

Before: the GPU label, the data (a synthetic tree made when none is given), the results folder,
locked, and checked against this machine and code (a folder holds the runs of one machine and
commit, so that resuming never skips a point that another measured), env.json and sweep.json.
Then: the peak probe for MFU, the runs, the report rebuilt at most every REPORT_EVERY_S as rows
come, and at the end.
"""

from __future__ import annotations

import json
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from bench.passes import one_more_look, passes, profiled_spec
from bench.plan.grid import ceiling_probes, check_label, run_counts, said_runs
from bench.plan.knobs import RunSpec, SpecError
from bench.plan.presets import DataSpec, parse_size
from bench.results.store import ResultStore, read_json
from bench.run import executors
from bench.run.settings import Options, Prepared
from pipelines.dataset import DatasetIndex, make_synthetic, scan
from pipelines.registry import describe

REPORT_EVERY_S = 30.0  # a sweep's report is rebuilt at most this often while rows come, and at its end


class Every:
    """Calls `action` at most once per `seconds` of `clock`, the first call always: rebuilding a
    report reads every row, so rebuilding it after each of a long sweep's rows would be quadratic."""

    def __init__(self, seconds: float, action, clock=time.monotonic):
        self.seconds, self.action, self.clock = seconds, action, clock
        self.last: float | None = None

    def __call__(self, *args) -> None:
        now = self.clock()
        if self.last is None or now - self.last >= self.seconds:
            self.last = now
            self.action(*args)


def dataset(data: str | None, data_spec: DataSpec, data_root: Path = Path("data")) -> DatasetIndex:
    """The tree at `data`, or the preset's synthetic one under `data_root`, made when missing."""
    if data:
        return scan(data)
    root = Path(data_root) / data_spec.dirname()
    print(f"making the synthetic dataset {root} (skipped when it already exists)", file=sys.stderr)
    make_synthetic(
        root, data_spec.train, data_spec.val, data_spec.classes, parse_size(data_spec.image_size), data_spec.seed
    )
    return scan(root)


def check_formats(grid: list[RunSpec], index: DatasetIndex) -> None:
    """Refuses, before any run, images that a tfdata point in the grid cannot decode."""
    for name in sorted({s.pipeline for s in grid}):
        formats = describe(name).formats
        odd = sorted(
            {
                Path(f).suffix
                for split in index.files.values()
                for f in split
                if formats and Path(f).suffix.lower() not in formats
            }
        )
        if odd:
            raise SpecError(f"pipeline {name} cannot decode {', '.join(odd)} images; use keras or convert them")


def _warn_about(index: DatasetIndex) -> None:
    if index.skipped:
        print(f"warning: {len(index.skipped)} unreadable images skipped (first: {index.skipped[0]})", file=sys.stderr)
    if index.ignored:
        names = sorted({Path(p).name for p in index.ignored})
        shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
        print(
            f"warning: {len(index.ignored)} hidden or system files and folders passed over, neither classes nor "
            f"images: {shown}",
            file=sys.stderr,
        )


def data_fingerprint(index: DatasetIndex) -> str:
    """A short hash of the scanned tree (its classes, files and the unreadable ones): another
    value means other data, so a results folder's runs are measured anew."""
    import hashlib

    seen = {"classes": index.classes, "files": index.files, "labels": index.labels, "skipped": index.skipped}
    return hashlib.sha1(json.dumps(seen, sort_keys=True).encode()).hexdigest()[:10]


def data_changed(store: ResultStore, meta: dict) -> bool:
    """Whether the folder's runs were measured on other data than this sweep's (said in one line)."""
    before = (
        read_json(store.root / "sweep.json").get("data_fingerprint") if (store.root / "sweep.json").is_file() else None
    )
    if not before or before == meta["data_fingerprint"] or not store.records():
        return False
    print(
        f"the data changed since the runs in {store.root} (index fingerprint {before} -> "
        f"{meta['data_fingerprint']}): every point is measured anew on {meta['data']}",
        file=sys.stderr,
    )
    return True


def default_folder(label: str, host: str, preset: str, results_root: Path = Path("results")) -> Path:
    """results/<gpu>/<host>/<preset>: two hosts with the same GPU keep their runs apart."""
    return Path(results_root) / label / (host or "host") / preset


def checked_label(gpu: str, grid: list[RunSpec], local: bool = True, on_node=None) -> tuple[str, dict, dict]:
    """(the label, env.json's 'doctor' facts, the variables each worker is given): --gpu auto named
    from the GPUs the grid's runs will use, here or, for jobs on other machines, by `on_node(gpus)`
    (a job on a node that trains; a dry run names none: `auto`), and the label and backends held
    against them (bench/run/doctor.py), refused in one line."""
    from bench.run import doctor, gate

    gpus, hosts = max(p.gpus for p in grid), max(p.hosts for p in grid)
    if gpu == "auto":
        gpu = gate.auto_label(doctor.nvml(), gpus) if local else on_node(gpus) if on_node else "auto"
    label = check_label(gpu)
    return label, *doctor.check(label, {p.backend for p in grid}, local, gpus, hosts)


@contextmanager
def prepared(options: Options, preset_name: str, data_spec: DataSpec, grid: list[RunSpec]):
    """Label, data, results folder (locked, checked), env.json, the peaks for MFU (with the ceilings)
    and sweep.json: what every run needs. Yields them as a Prepared. Refuses a label NVML
    contradicts, and a backend that would train on the CPU while NVML sees a GPU (bench/run/doctor.py)."""
    from bench.results import machine
    from bench.run import peak

    def on_node(gpus: int) -> str:  # under Slurm a job decides --gpu auto on a node that trains
        jobs = executors.Submitit(
            "slurm", Path(options.out or options.results_root) / ".label-job", 1, 120, options.slurm
        )
        return executors.node_label(jobs, gpus)

    label, checked, given = checked_label(options.gpu, grid, options.executor != "slurm", on_node)
    index = dataset(options.data, data_spec, options.data_root)
    check_formats(grid, index)
    _warn_about(index)
    env = {**machine.collect(), "doctor": checked}
    store = ResultStore(options.out or default_folder(label, env["host"], preset_name, options.results_root)).create()
    with store.locked():
        previous = read_json(store.root / "env.json")
        other = machine.differs(previous, env) if previous and store.records() else None
        if other and not options.force:
            raise SpecError(
                f"{store.root} holds the runs of {other}: use another --out, or --force to measure "
                f"every point here anew (their runs are kept in runs.jsonl)"
            )
        index_path = store.root / ".dataset.json"
        fingerprint = data_fingerprint(index)
        index.save(index_path)
        (store.root / "env.json").write_text(json.dumps(env, indent=2))
        meta = {
            "preset": preset_name,
            "gpu": label,
            "command": options.command,
            "data": index.root,
            "train_images": index.count("train"),
            "val_images": index.count("val"),
            "classes": len(index.classes),
            "skipped": len(index.skipped),
            "ignored": len(index.ignored),
            "gpu_used": checked["gpu_used"],
            "data_fingerprint": fingerprint,
        }
        force = data_changed(store, meta) or options.force
        if options.ceilings:  # MFU is part of the ceilings' analysis
            settings = {(p.backend, p.precision) for p in grid}
            machine_id = machine.identity(env)["machine"]
            meta.update(
                peak.measure_peaks(settings, machine_id, label=label, given=given, cache_dir=options.peak_cache)
            )
        meta.update(executors.describe(options.executor, options.max_parallel, options.slurm))
        meta["repeat_as_needed"] = options.as_needed
        if options.whole_sweep:  # the sweep command's plan, said once and kept (the report leaves out stale points)
            probes = ceiling_probes(grid) if options.ceilings else []
            meta["planned"] = sorted({s.point_id for s in grid + probes})
            said = planned(grid, probes, options.as_needed) + ("; then one traced run" if options.profile else "")
            print(said, file=sys.stderr)
        (store.root / "sweep.json").write_text(json.dumps(meta, indent=2))
        yield Prepared(store, index_path, env, meta, given, force)


def run(grid: list[RunSpec], preset_name: str, data_spec: DataSpec, options: Options) -> tuple[Path, list[dict]]:
    """Everything after the grid is known: checks, data, environment, then the runs (here, or as
    submitit jobs), the report rebuilt every REPORT_EVERY_S at most and at the end (an interrupted
    sweep's too); with a `profile` option, one more run of that point, traced (bench/run/profile.py).
    Returns (the report, the new rows)."""
    from bench.output import report
    from bench.run import runner

    o = options
    with prepared(o, preset_name, data_spec, grid) as ready:
        store = ready.store
        probes = ceiling_probes(grid) if o.ceilings else []
        jobs = (
            None
            if o.executor == "local"
            else executors.Submitit(
                "local" if o.executor == "submitit-local" else "slurm",
                store.root / "jobs",
                o.max_parallel,
                o.timeout_s,
                o.slurm,
            )
        )

        def quick_report(row: dict | None = None) -> None:
            """The report without its plots: quick enough to rebuild while the sweep runs."""
            report.write(store.root, plots=False)

        every = Every(REPORT_EVERY_S, quick_report)

        new: list[dict] = []

        def measure(specs: list[RunSpec]) -> list[dict]:
            """One pass's runs, numbered on from the passes before it."""
            return runner.sweep(specs, ready, o, on_row=every, jobs=jobs, before=len(new))

        try:
            for specs in passes(probes, grid, store.root, o.as_needed):
                new += measure(specs)
            again = one_more_look(probes + grid, store.root) if o.looks else []
            if again:
                print(
                    f"{len(again)} runs more, where a verdict depends on them (the noise could not settle it)",
                    file=sys.stderr,
                )
                new += measure(again)
            traced = profiled_spec(o.profile, probes + grid, store.records()) if o.profile else None
            new += measure([traced]) if traced else []
        except runner.Interrupted:  # the report holds every row finished, as a whole sweep's does
            quick_report()
            raise
        path = report.write(store.root)
    return path, new


def plan(grid: list[RunSpec], data: DataSpec, ceilings: list[RunSpec], as_needed: bool = False) -> str:
    """The grid for --dry-run: the knobs that vary, each run's training steps as planned on the
    preset's data, and the ceilings; as many as a sweep may run (bench/passes.py runs fewer)."""
    import pandas as pd

    from pipelines.epochs import split_plan

    counts = {"train": data.train, "val": data.val}
    frame = pd.DataFrame([p.knobs() | {"repeat": p.repeat} for p in grid], dtype=object)
    varying = [c for c in frame.columns if frame[c].nunique(dropna=False) > 1] or list(frame.columns)
    fixed = {
        c: frame[c].iloc[0] for c in frame.columns if c not in varying and c != "repeat" and frame[c].iloc[0] != ""
    }
    shown = frame[varying].copy()
    shown["train steps"] = [p.epochs * split_plan(counts["train"], p, "train")[0] for p in grid]
    lines = [
        f"{planned(grid, ceilings, as_needed)}; fixed: "
        + ", ".join(f"{k}={'n/a' if v is None else v}" for k, v in fixed.items()),
        f"the grid's {len(grid)} runs:",
        shown.where(shown.notna(), "n/a").to_markdown(index=False),
    ]
    if ceilings:
        steps = sum(p.epochs * split_plan(counts["train"], p, "train")[0] for p in ceilings)
        lines.append(f"and {len(ceilings)} ceiling runs, {steps} training steps in all (--no-ceilings leaves them out)")
    return "\n".join(lines)


def planned(grid: list[RunSpec], ceilings: list[RunSpec], as_needed: bool) -> str:
    """How many runs a sweep makes, the planner's count (bench/plan/grid.py), in the words every
    command says it: '26 to 78 runs: 26 in the first pass, then ...'."""
    least, most = run_counts(grid, ceilings, as_needed)
    if least == most:
        return said_runs((least, most))
    return (
        f"{said_runs((least, most))}: {least} in the first pass, then only where the noise asks (a repeat where a "
        "verdict depends on it, a ceiling again while its margin over the other is unclear, one more look where "
        "a verdict is unsettled)"
    )
