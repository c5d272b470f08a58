"""The "do this" paragraph that ends a report on a user's own job (their model or pipeline): the
fastest configuration that ran, written as the code to put in their training script, with the
images/s it reached and what limits it."""

from __future__ import annotations

import pandas as pd

from bench.analyse.points import runnable
from models.user import is_user_model
from pipelines import is_user_pipeline, prefetch_factor


def _loader_code(p) -> str:
    batch, workers, queue = int(p["batch"]), p.get("workers"), p.get("max_queue_size")
    given = {k: p.get(k) for k in ("workers", "use_multiprocessing", "max_queue_size") if pd.notna(p.get(k))}
    if is_user_pipeline(p["pipeline"]):
        args = ", ".join([f"batch={batch}"] + [f"{k}={int(v) if k != 'use_multiprocessing' else bool(v)}"
                                                 for k, v in given.items()])
        return f"data = {p['pipeline'].split(':')[1]}({args})  # your function, with these arguments"
    if p["pipeline"] == "keras":
        return (f"data = YourPyDataset(..., batch_size={batch}, workers={int(workers)}, "
                f"use_multiprocessing={bool(p.get('use_multiprocessing'))}, max_queue_size={int(queue)})")
    if p["pipeline"] == "torch":
        w = int(workers or 0)
        factor = f", prefetch_factor={prefetch_factor(w, queue)}, persistent_workers=True" if w else ""
        return f"data = DataLoader(dataset, batch_size={batch}, num_workers={w}{factor}, pin_memory=True)"
    if p["pipeline"] == "tfdata":
        parallel = int(workers) if workers else "tf.data.AUTOTUNE"
        prefetch = int(queue) if queue else "tf.data.AUTOTUNE"
        return f"data = files.map(load, num_parallel_calls={parallel}).batch({batch}).prefetch({prefetch})"
    return f"# pipeline {p['pipeline']}, batch {batch}"


def do_this(points: pd.DataFrame) -> list[str]:
    """The paragraph's lines, or none when the sweep is not about a user's model or pipeline."""
    ran = runnable(points)
    ran = ran[ran.train_img_s.notna()]
    if ran.empty or not any(is_user_model(b) or is_user_pipeline(p) for b, p in zip(ran.backbone, ran.pipeline)):
        return []
    best = ran.loc[ran.train_img_s.idxmax()]
    code = []
    if best["precision"] != "float32":
        code.append(f'keras.mixed_precision.set_global_policy("{best["precision"]}")  # before building the model')
    code.append(_loader_code(best))
    jit = {"on": "True", "off": "False"}.get(best["xla"], '"auto"')
    code.append(f"model.compile(..., jit_compile={jit})" + ("  # or keep your own compile" if jit == '"auto"' else ""))
    code.append("model.fit(data, epochs=..., shuffle=False)" if best["pipeline"] == "keras" else "model.fit(data, epochs=...)")
    bound, doubt = best.get("bound"), best.get("bound_doubt")
    limit = {"input": "the input pipeline (more workers, a cache or another loader would help)",
             "compute": "the model on this device (a larger batch, mixed precision or XLA are the levers)",
             "overhead": "neither ceiling: the gap is per-step overhead between loader and model"}.get(
        bound if isinstance(bound, str) else "", "not known (run with ceilings for the bound)")
    if isinstance(doubt, str) and doubt:  # the report withholds this bound: so does the advice
        limit = f"not known: {doubt}"
    return ["## Do this", "", f"The fastest setting measured: {best['train_img_s']:.0f} images/s with "
            f"`{best['backbone']}` at batch {int(best['batch'])}; what limits it: {limit}. In your training script:",
            "", "```python", *code, "```", ""]
