"""What a failed run means for the rest of a sweep and for the next one: which runs are finished
for good (a rerun leaves them), which other runs it makes pointless (skipped with the reason, and
tried again by a rerun), and what its error row should add so that a user can act on it."""

from __future__ import annotations

import re

from bench.plan.grid import is_ceiling, model_ceiling, pipeline_ceiling
from bench.plan.knobs import RunSpec
from pipelines.registry import is_model_alone, is_user_pipeline
from pipelines.user import UserCodeError

FAILED = ("error", "timeout")
AFTER_FAILURE = "not run after a failure: "  # starts a skip that another run's failure caused
DECODE_RE = re.compile(r"decode|image file format|cannot identify image|not a jpeg|truncated|corrupt", re.I)


def finished(row: dict) -> bool:
    """Whether a row ends its run for good: ok, out of memory, or skipped for a reason of its own.
    A failed run, and one skipped only because another failed, run again on the next sweep."""
    return row["status"] in ("ok", "oom") or (
        row["status"] == "skipped" and not row.get("error", "").startswith(AFTER_FAILURE)
    )


def failed(row: dict) -> bool:
    """An error, a timeout, or a skip that another run's failure caused."""
    return row["status"] in FAILED or (row["status"] == "skipped" and row.get("error", "").startswith(AFTER_FAILURE))


def culprit(row: dict) -> str | None:
    """The user's function (model or pipeline) whose failure would repeat in every run that uses it:
    one that raised when called (UserCodeError), or a user pipeline that could not decode the data."""
    marker = f"{UserCodeError.__name__}: "
    for ref in (row["backbone"], row["pipeline"], row.get("shaped_by") or "-"):
        if row["error"].startswith(marker + ref + " "):
            return ref
    if is_user_pipeline(row["pipeline"]) and DECODE_RE.search(row["error"]):
        return row["pipeline"]
    return None


def explained(row: dict, index) -> dict:
    """The row with a hint added where its error is a user pipeline failing to decode: the
    unreadable images the scan listed at the start (the pipeline reads its folder itself, and
    a framework such as tf.data names no file)."""
    if (
        row["status"] == "error"
        and index is not None
        and index.skipped
        and is_user_pipeline(row["pipeline"])
        and DECODE_RE.search(row["error"])
    ):
        first = index.skipped[0].split(": ")[0]
        row["error"] = (
            f"{row['error'][:200]} ... gpubench found {len(index.skipped)} unreadable image(s) when it "
            f"scanned the data (first: {first}); your pipeline reads its folder itself: remove or fix them"
        )
    return row


class AfterFailures:
    """The runs of a sweep that a failure in it made pointless: the others of a user's function that
    failed (it would fail again), and the ceilings of points whose runs all failed (no bound to give:
    a model ceiling runs after the points it bounds, see `in_order`)."""

    def __init__(self, specs: list[RunSpec]):
        self.runs: dict[str, set[str]] = {}  # grid point_id -> its run ids
        self.bounds: dict[str, set[str]] = {}  # ceiling point_id -> the grid points it bounds
        for spec in specs:
            if spec.role == "point" and not is_ceiling(spec):
                self.runs.setdefault(spec.point_id, set()).add(spec.run_id)
                for probe in (pipeline_ceiling(spec), model_ceiling(spec)):
                    self.bounds.setdefault(probe.point_id, set()).add(spec.point_id)
        self.failed: dict[str, str] = {}  # run_id -> the failed run that is its cause, in this sweep
        self.culprits: dict[str, str] = {}  # user function -> why the runs that need it are not run

    def note(self, row: dict) -> None:
        """Remember a row of this sweep."""
        if not failed(row):
            self.failed.pop(row["run_id"], None)
            return
        cited = re.search(r"(?:in run|first: run) (\S+?)[ )]", row["error"]) if row["status"] == "skipped" else None
        self.failed[row["run_id"]] = cited.group(1) if cited else row["run_id"]
        if row["status"] == "error" and (ref := culprit(row)):
            self.culprits.setdefault(ref, f"{AFTER_FAILURE}{ref} failed in run {row['run_id']} ({row['error'][:160]})")

    def stopped(self, spec: RunSpec) -> str | None:
        """Why this run is not worth running now, or None."""
        for ref in (spec.backbone, spec.pipeline, spec.shaped_by):
            if ref in self.culprits:
                return self.culprits[ref]
        bounded = self.bounds.get(spec.point_id) if spec.role == "ceiling" else None
        runs = sorted(r for p in bounded or () for r in self.runs[p])
        if runs and all(r in self.failed for r in runs):
            first = self.failed[min(runs, key=lambda r: list(self.failed).index(r))]
            return f"{AFTER_FAILURE}every run of the points this ceiling bounds failed (first: run {first})"
        return None


def in_order(probes: list[RunSpec], grid: list[RunSpec]) -> list[RunSpec]:
    """The runs interleaved, so that load that comes and goes falls on points and their ceilings
    alike and a point's repeats are spread over the sweep: pass r runs every configuration's repeat
    r, each pipeline ceiling just before the first point it feeds in that pass and each model ceiling
    right after the last point it bounds (left out when they all failed)."""
    ordered = []
    for r in sorted({s.repeat for s in [*probes, *grid]}):
        points = [s for s in grid if s.repeat == r]
        ceilings = {p.point_id: p for p in probes if p.repeat == r}
        last = {model_ceiling(s).point_id: i for i, s in enumerate(points)}
        for i, spec in enumerate(points):
            feed = ceilings.pop(pipeline_ceiling(spec).point_id, None)
            ordered += [feed] if feed and not is_model_alone(spec.pipeline) else []
            ordered.append(spec)
            ordered += [ceilings.pop(pid) for pid, at in last.items() if at == i and pid in ceilings]
        ordered += list(ceilings.values())  # ceilings of no point in this pass
    return ordered


def first_error(rows: list[dict]) -> str | None:
    """The closing line's account of a sweep's failures: its first error, and how many runs it took
    (those that failed with the same error, and those not run after it); None without one."""
    errors = [r for r in rows if r["status"] in FAILED]
    if not errors:
        return None
    first = errors[0]
    same = sum(r["error"][:80] == first["error"][:80] for r in errors)
    cites = re.compile(rf"run {re.escape(first['run_id'])}\b")
    after = sum(
        r["status"] == "skipped" and r["error"].startswith(AFTER_FAILURE) and bool(cites.search(r["error"]))
        for r in rows
    )
    others = len(errors) - same
    took = (
        f"{same} failed"
        + (f", {after} not run after it" if after else "")
        + (f"; {others} other failure{'s' if others > 1 else ''}" if others else "")
    )
    return (
        f"first error ({took}; see runs.csv): {first['status']} in run {first['run_id']}: "
        f"{first['error'][:600]}. Fix it and run the same command again: the failed runs run again."
    )
