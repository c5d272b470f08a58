"""`gpubench tune`: from one setting, measure the three rates, change the knob the bound points to,
keep a change only where the noise rule says it helped, and end with the code of the best setting.

Each setting is measured as a sweep measures it (bench/session.py: its own processes, its ceilings,
its repeats) into one results folder, so the path is ordinary rows and the report a sweep's report;
the walk itself is bench/analyse/moves.py. tune.csv holds the path, one line a setting."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd

from bench.analyse import moves, noise
from bench.analyse.points import read, runnable
from bench.plan.grid import installed_pipelines, one_point
from bench.plan.knobs import KNOBS, RunSpec, SpecError, display
from bench.plan.presets import DataSpec
from bench.results.store import ResultStore


def measure_with(run_sweep, root_of, repeat: int):
    """A `measure(knobs, why)` for moves.walk that sweeps one setting with `run_sweep(grid, ceilings)`
    and reads its step back from the folder `root_of()`. The first setting runs `repeat` times with
    its ceilings; each change once without them (pyperf's way): the noise is pooled over the folder,
    so the first setting's repeats give it, a change inside it gets its further looks from the walk,
    and only end to end decides a change: its ceilings are measured if it is kept (`bounded`)."""
    count = iter(range(1, 10_000))

    def measure(knobs: dict, why: str) -> moves.Step:
        try:
            spec = one_point(knobs)
        except SpecError as e:  # a move this backend or pipeline cannot take: said, never measured
            print(f"[-] skipped {why}: {e}", flush=True)
            return moves.Step(knobs, [], None, None, None, why)
        n = next(count)
        grid = [dataclasses.replace(spec, repeat=r) for r in range(repeat if n == 1 else 1)]
        run_sweep(grid, n == 1)
        step = step_of(root_of(), grid[0], why)
        print(f"[{n}] {display(knobs, tuple(KNOBS))}: {_rate(step)} ({why})", flush=True)
        return step

    return measure


def bounded_with(run_sweep, root_of):
    """A `bounded(step)` for moves.walk: the kept step's ceilings (its runs are already in the
    folder, so only the ceilings run), and the bound they give."""

    def bounded(step: moves.Step) -> moves.Step:
        spec = one_point(step.knobs)
        run_sweep([spec], True)
        found = step_of(root_of(), spec, step.why)
        print(f"    its bound: {_rate(found)}", flush=True)
        return found

    return bounded


def step_of(root: Path, spec: RunSpec, why: str) -> moves.Step:
    """The setting's step: its repeats' end-to-end rates (ok runs), its ceilings and bound from
    points.csv. A setting whose runs all failed has no rates: it never beats one that ran."""
    rows = ResultStore(root).records()
    rates = [
        r["train_img_s"]
        for r in rows
        if r["point_id"] == spec.point_id and r["status"] == "ok" and r.get("train_img_s")
    ]
    points = read(root)
    point = points[points.point_id == spec.point_id]
    if point.empty or not rates:
        return moves.Step(spec.knobs(), [], None, None, None, why)
    p = point.iloc[0]
    known = lambda v: None if pd.isna(v) else float(v)  # noqa: E731
    bound = p["bound"] if isinstance(p["bound"], str) and not p.get("bound_doubt") else None
    says = p.get("bound_says") if isinstance(p.get("bound_says"), str) else ""
    return moves.Step(spec.knobs(), rates, known(p["pipeline_img_s"]), known(p["model_img_s"]), bound, why, says)


def _rate(step: moves.Step) -> str:
    if not step.rates:
        return "failed (see runs.csv)"
    ceilings = ", ".join(
        f"{name} alone {v:.0f}" for name, v in (("pipeline", step.pipeline), ("model", step.model)) if v
    )
    if step.says:  # the report's words for it, load and doubt included (bench/analyse/bounds.py judge)
        return f"{moves.median(step.rates):.0f} images/s, {step.says}"
    limit = f"{step.bound}-bound" if step.bound else "bound not known"
    return f"{moves.median(step.rates):.0f} images/s, {limit}" + (f" ({ceilings})" if ceilings else "")


def write_path(root: Path, path: list[moves.Step], best: moves.Step, reason: str) -> Path:
    """tune.csv: one line a setting, in the order tried, the kept ones marked."""
    frame = pd.DataFrame(
        [
            {
                **s.knobs,
                "why": s.why,
                "img_s": moves.median(s.rates) if s.rates else None,
                "repeats": len(s.rates),
                "pipeline_img_s": s.pipeline,
                "model_img_s": s.model,
                "bound": s.bound,
                "best": s is best,
            }
            for s in path
        ]
    )
    out = root / "tune.csv"
    frame.to_csv(out, index=False)
    (root / "tune.txt").write_text(f"stopped: {reason}\n")
    return out


def tune(
    start: RunSpec, data_spec: DataSpec, options, repeat: int, max_runs: int
) -> tuple[Path, list[moves.Step], moves.Step, str]:
    """Walks from `start`; returns (the results folder, the path, the best step, why it stopped)."""
    import json

    from bench import session
    from bench.output import report

    folder: dict = {"root": options.out}

    def run_sweep(grid: list[RunSpec], ceilings: bool) -> None:
        """One setting, swept as a sweep would (the walk takes the second looks itself)."""
        path, _ = session.run(
            grid, "tune", data_spec, dataclasses.replace(options, out=folder["root"], ceilings=ceilings, looks=False)
        )
        folder["root"] = path.parent

    measure = measure_with(run_sweep, lambda: Path(folder["root"]), repeat)
    first = measure(start.knobs(), "your setting")
    root = Path(folder["root"])

    def better(new: list[float], old: list[float]) -> bool:
        """The change helped: its rates beat the kept setting's by the noise rule, the noise pooled
        over every setting and ceiling measured in this folder, each change one claim of the walk's
        family (moves.judged)."""
        return noise.faster(new, old, moves.judged(noise.pooled(pd.DataFrame(ResultStore(root).records())), max_runs))

    def more(step: moves.Step) -> moves.Step:
        """One more repeat of a setting: the second look at a change inside the noise."""
        spec = dataclasses.replace(one_point(step.knobs), repeat=len(step.rates))
        run_sweep([spec], False)
        kept = {"pipeline": step.pipeline, "model": step.model, "bound": step.bound, "says": step.says}
        return step_of(root, spec, step.why)._replace(**kept)

    on_gpu = bool(json.loads((root / "sweep.json").read_text()).get("gpu_used"))
    path, best, reason = moves.walk(
        first,
        measure,
        better,
        installed_pipelines(),
        max_runs=max_runs,
        gpu=on_gpu,
        more=more,
        bounded=bounded_with(run_sweep, lambda: root),
    )
    write_path(root, path, best, reason)
    report.write(root)
    return root, path, best, reason


def closing(root: Path, path: list[moves.Step], best: moves.Step, reason: str) -> list[str]:
    """The last lines: how the walk ended, the best setting, and its code (bench/output/advice.py)."""
    import json

    from bench.output.advice import code_lines

    lines = [f"stopped after {len(path)} settings: {reason}"]
    if not best.rates:
        return lines + [f"see {root / 'runs.csv'} for the error"]
    points = runnable(read(root))
    row = points[points.point_id == RunSpec(**best.knobs).point_id].iloc[0]
    sweep = json.loads((root / "sweep.json").read_text())
    return lines + [
        f"best: {display(best.knobs, tuple(KNOBS))}: {_rate(best)}; the path: {root / 'tune.csv'}",
        "",
        *code_lines(row, sweep),
    ]
