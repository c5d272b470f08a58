"""A pipeline the user wrote: `--set pipeline=package.module:function`, called for each split with
the knobs it names among its parameters, returning a tf.data.Dataset, a PyDataset, a torch
DataLoader or any iterable of (x, y) batches. Its descriptor (pipelines/registry.py) is read from
the function's signature with ast, importing nothing, so that a sweep is checked before any
framework loads."""

from __future__ import annotations

import dataclasses
import importlib

from pipelines.epochs import MIN_WINDOW_STEPS, split_plan
from pipelines.feed import Feed, ReadyClock
from pipelines.registry import LOADER_PARAMETERS
from pipelines.signature import parameters, parse


class UserCodeError(Exception):
    """The user's function raised when called, or gave what gpubench cannot use: it would in every
    run that calls it, so the sweep tries it once (bench/run/failures.py reads the message)."""

    def __init__(self, ref: str, error: BaseException | str):
        why = error if isinstance(error, str) else f"raised {type(error).__name__}: {error}"
        super().__init__(f"{ref} {why}")


def call(ref: str, index, spec, split: str):
    """What the function returns for `split`, called with the arguments it names."""
    module, function = parse(ref)
    fn = getattr(importlib.import_module(module), function)
    names, _ = parameters(ref)
    offered = {
        "batch": spec.batch,
        "split": split,
        "directory": f"{index.root}/{split}",
        "classes": len(index.classes),
        "input_size": spec.input_size,
    }
    offered |= {k: getattr(spec, k) for k in LOADER_PARAMETERS}
    try:
        return fn(**{k: offered[k] for k in names if k in offered})
    except Exception as e:
        raise UserCodeError(ref, e) from e


def build(index, spec, split: str) -> Feed:
    """The user's object handed to fit as the kind it is (pipelines/handover.py), its training
    batches stamped and their images counted as they are handed over; an epoch is `steps` of them,
    wrapping round the source's pass (its function called again, for a one-shot generator). A
    pipeline that makes its own batches (no `batch` parameter) is planned at the size of its first.
    The feed's `images` is the plan's guess; the timer counts the images the batches held."""
    from pipelines.handover import hand_over, images_in, length, opened

    again = lambda: call(spec.pipeline, index, spec, split)  # noqa: E731
    source = again()
    data, first = opened(source, again)
    per_pass, steps, images = pass_plan(spec, split, length(source), images_in(first))
    ready = ReadyClock(steps) if split == "train" else None
    return Feed(hand_over(data, steps, ready), steps, images, ready, first)


def pass_plan(spec, split: str, batches: int | None, first_images: int) -> tuple[int, int, int]:
    """(batches in a pass of the user's source, steps and images an epoch): a source that does not say
    its length is taken as long as the steps asked for (or the shortest window); a pipeline that makes
    its own batches is planned at the size of its first."""
    planned = dataclasses.replace(spec, batch=spec.batch or first_images)
    per_pass = batches or (spec.steps_per_epoch if split == "train" else spec.validation_steps) or MIN_WINDOW_STEPS
    steps, images = split_plan(per_pass * planned.batch, planned, split)  # as many images as the passes hold
    return per_pass, steps, images


def like_the_job(index, spec, split: str) -> tuple[list, int]:
    """(the first batch of the user's pipeline `spec.shaped_by`, and its short last batch where the
    source is indexed; the batches in one pass), as numpy: what a model-alone ceiling of that job
    copies into memory, so that it runs at the job's batch sizes, shapes, dtypes and labels. The
    loader knobs the ceiling blanks are offered at their defaults: they change how batches arrive,
    not what they hold."""
    from pipelines.handover import images_in, length, opened, to_numpy

    blank = {f.name: f.default for f in dataclasses.fields(spec) if f.name in LOADER_PARAMETERS}
    job = dataclasses.replace(
        spec, pipeline=spec.shaped_by, **{k: v for k, v in blank.items() if getattr(spec, k) is None}
    )
    source = call(job.pipeline, index, job, split)
    n = length(source)
    _, first = opened(source, lambda: call(job.pipeline, index, job, split))
    last = to_numpy(source[n - 1]) if n and n > 1 and hasattr(source, "__getitem__") else first
    return [first] if images_in(last) == images_in(first) else [first, last], n or 0


def check_batch(batch, model) -> str | None:
    """Why the model cannot take the pipeline's first batch (the shapes of its inputs), or None."""
    import keras

    return check_shapes([tuple(t.shape[1:]) for t in keras.tree.flatten(batch[0])], model)


def check_labels(batch, model) -> str | None:
    """Why the model cannot take the batch's labels (one-hot rows of another width than its output,
    or a class number beyond it), or None; a model of other outputs (not one class axis) is the user's."""
    import numpy as np

    from pipelines.handover import keras_leaf

    y, out = np.asarray(keras_leaf(batch[1])), model.outputs[0]
    given, width = (y.shape[-1] if y.ndim > 1 else None), out.shape[-1]
    if len(model.outputs) != 1 or width is None or y.ndim != len(out.shape) - (given is None):
        return None
    if given is not None and given != width:
        return f"the pipeline yields one-hot labels of {given} classes, but the model gives {width} outputs"
    if given is None and y.size and int(y.max()) >= width:
        return f"the pipeline yields class number {int(y.max())}, but the model gives {width} outputs"
    return None


def check_shapes(given: list[tuple], model) -> str | None:
    """Why the model cannot take inputs of these shapes (batch axis left out), or None."""
    wanted = [tuple(t.shape[1:]) for t in model.inputs]
    fits = len(given) == len(wanted) and all(
        len(g) == len(w) and all(b is None or a == b for a, b in zip(g, w)) for g, w in zip(given, wanted)
    )
    return None if fits else f"the pipeline yields inputs of shape {given}, but the model takes {wanted}"
