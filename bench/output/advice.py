"""The "do this" paragraph that ends a report on a user's own job (their model or pipeline): the
fastest configuration that ran, written as the code to put in their training script, with the
images/s it reached and what limits it."""

from __future__ import annotations

import pandas as pd

from bench.analyse.points import runnable, spec_of
from bench.plan.knobs import plain
from models.user import is_user_model
from pipelines.registry import LOADER_PARAMETERS, describe, is_user_pipeline, other_loaders, returned


def _call(ref: str, offered: dict, kind: str) -> tuple[str, str]:
    """(the import line, the call) of a user's function with the arguments it takes, as gpubench
    called it; where its source cannot be read here, with those the sweep varied."""
    from pipelines.signature import parameters, parse

    module, function = parse(ref)
    try:
        names = parameters(ref, kind)[0]
    except ValueError:
        names = [k for k, v in offered.items() if v is not None]
    args = ", ".join(f"{k}={offered[k]!r}" for k in names if k in offered)
    return f"from {module} import {function}", f"{function}({args})"


def _loader_code(p, sweep: dict) -> list[str]:
    """The loader as the sweep called it: the user's function; a shipped pipeline's runnable example
    (examples/pipelines.py) with the line that builds it as measured; a plain iterable called again."""
    offered = {
        "batch": int(p["batch"]),
        "split": "train",
        "directory": f"{sweep.get('data', 'DATA')}/train",
        "classes": sweep.get("classes"),
        "input_size": int(p["input_size"]),
    }
    offered |= {k: plain(v) for k, v in p.items() if k in LOADER_PARAMETERS and pd.notna(v)}
    if not is_user_pipeline(p["pipeline"]):
        described = describe(p["pipeline"])
        if not described.example:
            return [described.code(spec_of(p)) if described.code else f"# pipeline {p['pipeline']}, batch {p['batch']}"]
        imported, call = _call(described.example, offered, "pipeline")
        return [
            f"{imported}  # gpubench's example of this loader, to run as printed",
            f"data = {call}",
            f"# as measured, in your own code: {described.code(spec_of(p))}",
        ]
    imported, call = _call(p["pipeline"], offered, "pipeline")
    if not serial(p):
        return [imported, f"data = {call}  # your function, with these arguments"]
    function = call.partition("(")[0]
    return [
        imported,
        "",
        "",
        f"def batches():  # {function} again whenever it runs out, as gpubench called it",
        "    while True:",
        f"        yield from {call}",
        "",
        "",
        "data = batches()",
    ]


def _model_code(p, sweep: dict) -> list[str]:
    """The model as the sweep built it: the user's file or function, or gpubench's backbone."""
    name, size = p["backbone"], int(p["input_size"])
    if name.endswith(".keras"):
        return [f"model = keras.saving.load_model({name!r})  # keeps its compile settings"]
    if is_user_model(name):
        imported, call = _call(name, {"input_shape": (size, size, 3), "classes": sweep.get("classes")}, "backbone")
        return [imported, f"model = {call}  # your function"]
    return [
        "import models  # gpubench's backbones",
        f"model = models.build({name!r}, {(size, size, 3)}, {sweep.get('classes')})",
        'model.compile(optimizer="sgd", loss="categorical_crossentropy", metrics=["accuracy"])  # or yours',
    ]


def do_this(points: pd.DataFrame, sweep: dict | None = None) -> list[str]:
    """The paragraph's lines, or none when the sweep is not about a user's model or pipeline. The
    code runs as printed (a test executes it): `sweep` (sweep.json) gives the data folder and
    the class count the user's functions were called with."""
    sweep = sweep or {}
    ran = runnable(points)
    ran = ran[ran.train_img_s.notna()]
    if ran.empty or not any(is_user_model(b) or is_user_pipeline(p) for b, p in zip(ran.backbone, ran.pipeline)):
        return []
    best = ran.loc[ran.train_img_s.idxmax()]
    bound, doubt = best.get("bound"), best.get("bound_doubt")
    others = other_loaders(best["pipeline"], best.get("loader", ""))
    limit = {
        "input": f"the input pipeline (more workers, a cache, or another loader: {others})",
        "compute": f"the model on this device ({_levers(best)} are the levers)",
        "balanced": "the input pipeline and the model alike (their ceilings are within the noise of each other: "
        "speed up both, or neither helps)",
        "overhead": "neither ceiling: the gap is per-step overhead between loader and model",
    }.get(bound if isinstance(bound, str) else "", "not known (run with ceilings for the bound)")
    if serial(best) and bound in ("input", "overhead"):
        limit = (
            f"the loading: your function's batches are made one after another in the training thread, so each "
            f"step waits for its batch; {others} would load them ahead, in workers, while it trains"
        )
    if isinstance(doubt, str) and doubt:  # the report withholds this bound: so does the advice
        limit = f"not known: {doubt}"
    return [
        "## Do this",
        "",
        f"The fastest setting measured: {best['train_img_s']:.0f} images/s with "
        f"`{best['backbone']}` at batch {int(best['batch'])}; what limits it: {limit}. In your training script:",
        "",
        *code_lines(best, sweep),
        "",
    ]


def code_lines(best, sweep: dict) -> list[str]:
    """The setting `best` (a points row) as the code of a training script, fenced: its model,
    precision, XLA, loader and fit call, as measured."""
    code = ["import keras"]
    if best["precision"] != "float32":
        code.append(f'keras.mixed_precision.set_global_policy("{best["precision"]}")  # before building the model')
    code += _model_code(best, sweep)
    jit = {"on": "True", "off": "False"}.get(best["xla"])
    if jit:
        code.append(f"model.jit_compile = {jit}  # after compiling: XLA {best['xla']}, as measured")
    code += _loader_code(best, sweep)
    epochs = int(best["epochs"]) if pd.notna(best.get("epochs")) else 1
    steps = f", steps_per_epoch={int(best['train_steps'])}" if serial(best) else ""
    # gpubench's fit: a PyDataset's batches in its own order; any other loader shuffles itself
    code.append(f"model.fit(data, epochs={epochs}{steps}, shuffle=False)  # the sweep's epochs: use yours")
    return ["```python", *code, "```"]


def serial(p) -> bool:
    """Whether the point's loader was a user's plain iterable: fit pulled its batches one after
    another in the training thread, for as many steps as the sweep asked, calling it again."""
    return is_user_pipeline(p["pipeline"]) and returned(str(p.get("loader", ""))) == ""


def _levers(best) -> str:
    """What may speed up a compute-bound point: a saved .keras model keeps its dtype policy, so
    mixed precision is no lever for it."""
    return (
        "a larger batch or XLA"
        if str(best["backbone"]).endswith(".keras")
        else "a larger batch, mixed precision or XLA"
    )
