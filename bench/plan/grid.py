"""The grid: knob lists -> checked RunSpecs (the product, the ceiling probes, the packages each
point needs, the checks made before any run) and the --gpu label check.

Nothing here imports TensorFlow or Keras, so a bad sweep is refused in well under a second.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import itertools
import re

from bench.plan.backends import BACKENDS
from bench.plan.knobs import KNOBS, LOADER_KNOBS, RunSpec, SpecError, below_minimum, parse_override
from models import PIPELINE_ALONE, data_format_problem, input_size_problem, is_pipeline_alone
from models.user import is_user_model
from models.user import problem as model_problem
from pipelines.registry import (
    MODEL_ALONE,
    PIPELINES,
    batches_itself,
    describe,
    is_model_alone,
    is_user_pipeline,
    knob_meaning,
)

# The package a backend imports, and how to install it (a pipeline's is in its descriptor).
BACKEND_NEEDS = {name: (b.package, b.install) for name, b in BACKENDS.items()}
LABEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def normalised(spec: RunSpec) -> RunSpec:
    """Blank the knobs a pipeline does not use (loader knobs it lacks; the batch where a user's
    pipeline makes its own), so equal runs collapse into one point."""
    meaning = knob_meaning(spec.pipeline)
    blank = {k: None for k in LOADER_KNOBS if k not in meaning and "None" in KNOBS[k].type}
    if batches_itself(spec.shaped_by or spec.pipeline):
        blank["batch"] = None
    return dataclasses.replace(spec, **blank)


def expand(knobs: dict, repeat: int = 1) -> list[RunSpec]:
    """The cartesian product of the knob lists, duplicates removed, each point `repeat` times."""
    names = list(knobs)
    points: dict[str, RunSpec] = {}
    for combo in itertools.product(*(knobs[n] for n in names)):
        spec = normalised(RunSpec(**dict(zip(names, combo))))
        points.setdefault(spec.point_id, spec)
    return [dataclasses.replace(p, repeat=r) for p in points.values() for r in range(repeat)]


def pipeline_ceiling(spec: RunSpec) -> RunSpec:
    """The same feed into the null model: fit then runs as fast as the pipeline delivers."""
    return dataclasses.replace(
        spec,
        backbone=PIPELINE_ALONE,
        finetune="full",
        checkpoint=False,
        precision="float32",
        xla="auto",
        gpus=1,
        repeat=0,
        role="ceiling",
    )


def model_ceiling(spec: RunSpec) -> RunSpec:
    """The same model, batch and precision on tensors already in memory: the model alone. A user's
    pipeline shapes them (`shaped_by`): its batches' sizes, image shapes, dtypes and labels are the
    job's, whatever the batch and input_size knobs say."""
    return normalised(
        dataclasses.replace(
            spec,
            pipeline=MODEL_ALONE,
            shaped_by=spec.pipeline if is_user_pipeline(spec.pipeline) else "",
            checkpoint=False,
            cache=None,
            interpolation="nearest",
            repeat=0,
            role="ceiling",
        )
    )


def is_ceiling(spec: RunSpec) -> bool:
    """Whether the run is a ceiling whatever its role: the pipeline alone or the model alone."""
    return is_model_alone(spec.pipeline) or is_pipeline_alone(spec.backbone)


def ceiling_probes(grid: list[RunSpec]) -> list[RunSpec]:
    """The probes that give each point its two ceilings, one per distinct pipeline or model
    setting, leaving out those the grid runs anyway. Each is planned like the points it bounds, as
    many repeats as the most any of them has; a pass leaves out a ceiling whose margin is already
    clear (bench/passes.py)."""
    have = {p.point_id for p in grid}
    repeats: dict[str, int] = {}  # probe point_id -> repeats it needs
    probes: dict[str, RunSpec] = {}
    for point in grid:
        if is_ceiling(point):
            continue
        for probe in (pipeline_ceiling(point), model_ceiling(point)):
            if probe.point_id not in have:
                probes.setdefault(probe.point_id, probe)
                repeats[probe.point_id] = max(repeats.get(probe.point_id, 0), point.repeat + 1)
    return [dataclasses.replace(probe, repeat=r) for pid, probe in probes.items() for r in range(repeats[pid])]


def run_counts(grid: list[RunSpec], probes: list[RunSpec], as_needed: bool, looks: bool = True) -> tuple[int, int]:
    """(the runs a sweep makes at least, at most), as bench/passes.py runs them: the first pass
    every point and ceiling once, every repeat of a point unless repeats are `as_needed`; at most
    every repeat of each, and with `looks` one more of each where a grid has repeats to look at."""
    every = grid + probes
    first = sum(s.repeat == 0 or (s.role == "point" and not as_needed) for s in every)
    more = len({s.point_id for s in every}) if looks and any(s.repeat for s in every) else 0
    return first, len(every) + more


def said_runs(counts: tuple[int, int]) -> str:
    """'26 to 78 runs', or '18 runs' where the planner knows the number: how every command says it."""
    least, most = counts
    return f"{least} runs" if least == most else f"{least} to {most} runs"


def installed(module: str) -> bool:
    """Whether `module` can be imported here, found without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _pipeline_needs(name: str) -> tuple[str, str] | None:
    """(package, how to install) a shipped pipeline imports beyond Keras, None for a user's."""
    described = None if is_user_pipeline(name) else describe(name)
    return described and (BACKEND_NEEDS.get(described.framework) or described.needs)


def installed_pipelines() -> set[str]:
    """The shipped pipelines whose package this machine has."""
    needs = {name: _pipeline_needs(name) for name in PIPELINES}
    return {name for name, need in needs.items() if need is None or installed(need[0])}


def _needs(spec: RunSpec) -> list[tuple[str, str, tuple[str, str]]]:
    """(knob, value, (package, how to install)) for the point's backend and pipeline."""
    needs = [("backend", spec.backend, BACKEND_NEEDS[spec.backend])] if spec.backend in BACKEND_NEEDS else []
    pipeline = _pipeline_needs(spec.pipeline)
    return needs + ([("pipeline", spec.pipeline, pipeline)] if pipeline else [])


def frameworks(spec: RunSpec) -> tuple[str, ...]:
    """The packages the point imports, each once: its backend's and its pipeline's (tfdata on
    tensorflow imports one framework, as keras on it does); a user's pipeline or model may import
    any framework, so none is hidden from it."""
    if is_user_pipeline(spec.pipeline) or is_user_model(spec.backbone):
        return tuple(module for module, _ in BACKEND_NEEDS.values())
    return tuple(dict.fromkeys(module for _, _, (module, _) in _needs(spec)))


def missing(spec: RunSpec) -> str | None:
    """Why this machine lacks a package the point needs (its backend's, its pipeline's), or None."""
    for knob, value, (module, how) in _needs(spec):
        if not installed(module):
            return f"{knob} {value} needs {module}, which is not installed here ({how})"
    return None


def _user_problem(name: str, value) -> str | None:
    """Why a user's model or pipeline named in a knob cannot be used, or None; refs only."""
    if name == "backbone" and is_user_model(value):
        return model_problem(value) or ""
    if name == "pipeline" and is_user_pipeline(value):
        try:
            describe(value)
            return ""
        except ValueError as e:
            return str(e)
    return None


def value_problem(name: str, value) -> str | None:
    """Why `value` cannot be the knob's, whatever the other knobs say (not one it allows, under its
    minimum, a user's model or pipeline that cannot be used), or None."""
    user = _user_problem(name, value)
    if user is not None:
        return user or None
    allowed = KNOBS[name].metadata["allowed"]
    if allowed and value not in allowed:
        return f"unknown {name} {value!r}; expected one of: {', '.join(map(str, allowed))}"
    return below_minimum(name, value)


def check_values(knob_sets: list[dict]) -> None:
    """Refuse, before any point is built or looked up, a knob value no point could run with."""
    for knobs in knob_sets:
        for name, values in knobs.items():
            for value in values:
                problem = None if value is None and "None" in KNOBS[name].type else value_problem(name, value)
                if problem:
                    raise SpecError(problem)


def check_spec(spec: RunSpec) -> None:
    """Refuse a point that cannot run, with a one-line reason."""
    meaning = knob_meaning(spec.pipeline)
    own_batch = batches_itself(spec.shaped_by or spec.pipeline)
    if spec.batch is None and not own_batch:
        raise SpecError(
            f"batch: a number is needed for pipeline {spec.pipeline} (only a pipeline of yours without a "
            "`batch` parameter makes its own)"
        )
    if own_batch and spec.hosts > 1:
        raise SpecError(
            f"hosts={spec.hosts}: pipeline {spec.shaped_by or spec.pipeline} makes its own batches, "
            "which gpubench cannot split over hosts; give its function a `batch` parameter"
        )
    if spec.shaped_by and not (is_model_alone(spec.pipeline) and is_user_pipeline(spec.shaped_by)):
        raise SpecError("shaped_by is set by the plan for a model-alone ceiling of your pipeline, not by hand")
    for name, field in KNOBS.items():
        value = getattr(spec, name)
        if value is None and "None" in field.type and (field.metadata["role"] != "loader" or name not in meaning):
            continue  # a loader knob its pipeline does not use
        problem = value_problem(name, value)
        if problem:
            raise SpecError(problem)
        if name == "input_size" and input_size_problem(spec.backbone, value):
            raise SpecError(input_size_problem(spec.backbone, value))
    if spec.window == "auto" and spec.epochs < 2:
        raise SpecError(
            f"epochs={spec.epochs} leaves the model alone no measured window (its warm-up is the first "
            "epoch) and a pipeline's none that holds an epoch's start; use epochs=2 or more, or "
            "window=epochs to time the epochs as asked"
        )
    problem = data_format_problem(spec.backbone, spec.data_format)
    if problem:
        raise SpecError(problem)
    why = missing(spec)
    if why:
        raise SpecError(why)


def first_installed_backend(gpus: int = 1) -> str:
    """backend=auto where no GPU decides: the first installed of tensorflow, jax, torch."""
    found = [name for name, (module, _) in BACKEND_NEEDS.items() if installed(module)]
    if not found:
        raise SpecError(
            "backend auto: no Keras backend is installed here (pip install 'gpubench[tf]', or [jax] or [torch])"
        )
    return found[0]


def _resolved(sets: list[dict], choose) -> list[dict]:
    """The knob sets with backend "auto" made the backend `choose(gpus)` names, asked once."""
    if not any("auto" in s.get("backend", ()) for s in sets):
        return sets
    chosen = choose(max(max(s.get("gpus", [1])) for s in sets))
    return [
        {**s, "backend": list(dict.fromkeys(chosen if b == "auto" else b for b in s["backend"]))}
        if "backend" in s
        else s
        for s in sets
    ]


def build_grid(
    knob_sets: list[dict],
    overrides: list[str],
    repeat: int = 1,
    installed_only: bool = False,
    choose_backend=first_installed_backend,
) -> tuple[list[RunSpec], list[str]]:
    """(the checked grid: the union of the knob sets' products, each with the --set overrides;
    with `installed_only`, without the points whose backend or pipeline this machine lacks, and
    why they were left out). backend "auto" becomes `choose_backend(gpus)`'s answer (the sweep
    asks the GPU: bench/run/doctor.py `backend_for`)."""
    if repeat < 1:
        raise SpecError(f"--repeat {repeat}: must be at least 1")
    changed = dict(parse_override(text) for text in overrides)
    check_values([{**knobs, **changed} for knobs in knob_sets])
    sets = _resolved([{**knobs, **changed} for knobs in knob_sets], choose_backend)
    runs = {s.run_id: s for knobs in sets for s in expand(knobs, repeat)}
    grid, reasons = list(runs.values()), []
    if installed_only:
        why = {p.run_id: missing(p) for p in grid}
        reasons = sorted(set(why.values()) - {None})
        grid = [p for p in grid if not why[p.run_id]]
        if not grid:
            raise SpecError("no point of the grid can run here: " + "; ".join(reasons))
    for point in grid:
        check_spec(point)
    check_user_knobs(grid, changed)
    return grid, reasons


def check_user_knobs(grid: list[RunSpec], changed: dict) -> None:
    """A loader knob set on the command line that no pipeline of a grid with a user's pipeline
    takes is a mistake: their function has no such parameter."""
    users = sorted({p.pipeline for p in grid if is_user_pipeline(p.pipeline)})
    own = [u for u in users if batches_itself(u)]
    if own and "batch" in changed and all(batches_itself(p.pipeline) for p in grid):
        raise SpecError(
            f"--set batch: pipeline {own[0]} has no batch parameter: it makes batches of its own size, "
            "which its ceilings are measured at"
        )
    for name in LOADER_KNOBS:
        if users and name in changed and not any(name in knob_meaning(p.pipeline) for p in grid):
            takes = ", ".join(knob_meaning(users[0])) or "none"
            raise SpecError(
                f"--set {name}: pipeline {users[0]} has no {name} parameter (the loader knobs it takes: {takes})"
            )


def one_point(knobs: dict) -> RunSpec:
    """The checked RunSpec of these knob values."""
    grid, _ = build_grid([{k: [v] for k, v in knobs.items()}], [])
    return grid[0]


def check_label(label: str) -> str:
    """The --gpu label, if it is a plain name a folder can take; else a one-line SpecError."""
    if not LABEL_RE.match(label):
        raise SpecError(f"--gpu {label!r}: a label is a plain name of letters, digits, '.', '_', '-'")
    return label
