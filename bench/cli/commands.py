"""One function per command of the command line (COMMANDS: name -> function of the parsed
arguments, returning the exit status)."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from bench.cli.checks import check_file, check_out, check_profile, checked_grid, results_folder
from bench.cli.options import TRAIN_KNOBS, run_options
from bench.plan.grid import ceiling_probes, frameworks, installed, one_point
from bench.plan.knobs import RunSpec, SpecError
from bench.plan.presets import TIMEOUT_S, DataSpec, load_preset, parse_size
from bench.results.store import ResultStore, read_json
from bench.run.executors import Slurm
from bench.run.failures import first_error
from pipelines.dataset import make_synthetic


def _write(out: str | Path, text: str) -> str:
    """Write `text` to the file `out`, or to standard output when `out` is `-`; say where."""
    if str(out) == "-":
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return "standard output"
    Path(out).write_text(text)
    return str(out)


def _report(args) -> Path:
    from bench.output import machines, report

    folders = [results_folder(d) for d in args.dirs]
    if len(folders) == 1:
        if args.run and args.run not in ResultStore(folders[0]).done():
            raise SpecError(f"--run {args.run}: no such run in {folders[0]} (see the run_id column of runs.csv)")
        return report.write(folders[0], args.run)
    unfinished = [str(f) for f in folders if not (f / "points.csv").is_file()]
    if unfinished:  # read as their own reports give them, never rewritten here
        raise SpecError(f"{unfinished[0]} has no points.csv yet: `gpubench report {unfinished[0]}` writes it")
    preset = read_json(folders[0] / "sweep.json").get("preset", "sweep")
    beside = Path(os.path.commonpath([f.resolve() for f in folders]))
    out = Path(args.out or beside / f"machines-{preset}.md")
    check_file(out, args.force, ours=machines.written_by_gpubench)
    if args.plot:
        check_file(out.with_suffix(".png"), args.force or not args.out)
    prices = machines.parse_prices(args.price)
    out.parent.mkdir(parents=True, exist_ok=True)
    machines.render(folders, out, plot=args.plot, prices=prices)
    return out


def _sweep(args) -> int:
    from bench import session

    preset = load_preset(args.preset)
    grid = checked_grid(
        preset.knob_sets(),
        args.set,
        preset.repeat if args.repeat is None else args.repeat,
        preset.installed_only,
        args.gpu,
    )
    with_ceilings = preset.ceilings and not args.no_ceilings
    as_needed = preset.repeat_as_needed and args.repeat is None
    check_profile(args.profile, grid + (ceiling_probes(grid) if with_ceilings else []))
    if args.dry_run:  # the label and the backends checked as a sweep checks them, nothing run
        session.checked_label(args.gpu, grid, args.executor != "slurm")
        print(session.plan(grid, preset.data, ceiling_probes(grid) if with_ceilings else [], as_needed))
        return 0
    check_out(args.out, args.force)
    if args.executor != "local" and not installed("submitit"):
        raise SpecError(
            f"--executor {args.executor} needs submitit, which is not installed here (pip install 'gpubench[fleet]')"
        )
    slurm = Slurm(args.slurm_partition, args.slurm_gpus_per_node, args.slurm_time, args.slurm_exclusive)
    start = time.monotonic()
    options = run_options(
        args,
        preset.timeout_s,
        force=args.force,
        ceilings=with_ceilings,
        executor=args.executor,
        max_parallel=args.max_parallel,
        slurm=slurm,
        profile=args.profile,
        as_needed=as_needed,
        whole_sweep=True,
    )
    path, new = session.run(grid, preset.name, preset.data, options)
    from bench.analyse.verdicts import folder_headline

    print(closing_line(new, time.monotonic() - start, path, folder_headline(path.parent)))
    return 1 if first_error(new) else 0


def closing_line(rows: list[dict], wall_s: float, report: Path, verdict: str) -> str:
    """The sweep in one line: its runs by outcome, its wall time, the report and the first
    sentence of its verdict ('' where it gives none); where runs failed, a last line with the first error."""
    from bench.run.runner import clock

    ok = sum(r["status"] == "ok" for r in rows)
    skipped = sum(r["status"] == "skipped" for r in rows)
    counts = f"{ok} ok, {skipped} skipped, {len(rows) - ok - skipped} failed"
    line = f"{len(rows)} runs ({counts}) in {clock(wall_s)}; report: {report}"
    line += f"; verdict: {verdict.rstrip('.')}." if verdict else ""
    failures = first_error(rows)
    return line + ("\n" + failures if failures else "")


def _tune(args) -> int:
    """`gpubench tune`: the start from the preset's first value of each knob and --set, the walk, its last lines."""
    from bench import tune

    preset = load_preset(args.preset)
    first = {k: v[0] if isinstance(v, list) else v for k, v in preset.knob_sets()[0].items()}
    start = checked_grid([{k: [v] for k, v in first.items()}], args.set, gpu=args.gpu)
    if len(start) != 1:
        raise SpecError("tune starts from one setting: give one value per knob in --set")
    check_out(args.out, force=None)
    root, path, best, reason = tune.tune(
        start[0], preset.data, run_options(args, preset.timeout_s), args.repeat, args.max_runs
    )
    print("\n".join(tune.closing(root, path, best, reason)))
    return 0 if best.rates else 1


def _run(args) -> int:
    from bench import session

    check_out(args.out, force=None)
    grid = checked_grid([{}], args.set, gpu=args.gpu)
    if len(grid) != 1:
        raise SpecError("run takes one value per knob; use sweep for several")
    if args.profile:
        grid = [dataclasses.replace(grid[0], profile=True)]
    _, new = session.run(grid, "run", DataSpec(), run_options(args, TIMEOUT_S, force=True))
    print(json.dumps(new[0], indent=2))
    return 1 if first_error(new) else 0


def _compare(args) -> int:
    from bench import regress
    from bench.analyse import regressions
    from bench.output import compare

    preset = load_preset(args.preset) if args.preset else None
    gate = preset.gate if preset else {}
    judging = dict(metric=args.metric, factor=args.factor, strict=args.strict, across=args.across_hardware)
    try:
        if args.remeasure:
            if preset is None:
                raise compare.CompareError("--remeasure needs --preset: its [gate] states the runs it may take")
            judged, measured = regress.decided(args.baseline, args.current, preset, **judging)
        else:
            judged, measured = regressions.judge(args.baseline, args.current, gate, **judging), []
    except compare.CompareError as e:
        raise SpecError(str(e)) from None
    text, status = compare.render(judged, measured)
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


def _finetune(args) -> int:
    from bench import finetune
    from bench.run import devices

    check_file(
        {"evaluate": args.__dict__.get("json"), "predict": args.__dict__.get("out")}.get(args.command),
        args.__dict__.get("force", False),
    )
    if args.command == "train":
        spec = one_point({**{name: getattr(args, name) for name in TRAIN_KNOBS}, "window": "epochs"})
        devices.prepare(spec.backend, spec.gpus, frameworks(spec))
    else:
        spec = RunSpec(**finetune.prepare(args.model)[1]["spec"])
    if args.command != "predict":  # what trains or measures says where, checked as a sweep is
        finetune.check_device(spec, args.gpu)
    with _quiet_start(args.verbose):
        import keras  # noqa: F401  (loaded here, quietly)

        import models  # noqa: F401

    if args.command == "train":
        print(json.dumps(finetune.train(spec, args.data, args.out, args.tensorboard), indent=2))
    elif args.command == "resume":
        print(json.dumps(finetune.resume(args.model, args.epochs, args.data, args.tensorboard), indent=2))
    elif args.command == "evaluate":
        result = finetune.evaluate(args.model, args.data, args.batch)
        if args.json:
            _write(args.json, json.dumps(result, indent=2))
        if args.json != "-":
            print(finetune.evaluation_markdown(result))
    else:
        text, skipped = finetune.predict(args.model, args.target, args.batch)
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
    from bench import search

    check_out(args.out, force=None)
    knob = "input_size" if args.batch else "batch"
    if any(item.partition("=")[0].strip() == knob for item in args.set):
        raise SpecError(f"--set {knob}: fit searches it (--start, --limit)")
    fixed = {"backbone": args.backbone, "precision": args.precision, "backend": "auto"}
    fixed |= {"input_size": args.input_size or 224, "batch": args.batch or 1}
    grid = checked_grid([{k: [v] for k, v in fixed.items()}], args.set, gpu=args.gpu)
    if len(grid) != 1:
        raise SpecError("fit takes one value per knob (--set backend=jax)")
    options = run_options(args, TIMEOUT_S, force=True, mem_limit_mb=args.mem_limit_mb)
    print(search.run_search(grid[0], knob, args.start, args.limit, options))
    return 0


def _export(args) -> int:
    from bench.output import export

    folder = results_folder(args.dir)
    check_file(args.out, args.force)
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


COMMANDS = {
    "doctor": _doctor,
    "presets": _presets,
    "knobs": _knobs,
    "data": _data,
    "sweep": _sweep,
    "tune": _tune,
    "run": _run,
    "fit": _fit,
    "compare": _compare,
    "baseline": _baseline,
    "report": lambda args: print(_report(args)) or 0,
    "export": _export,
    "train": _finetune,
    "resume": _finetune,
    "evaluate": _finetune,
    "predict": _finetune,
}
