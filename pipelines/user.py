"""A pipeline the user wrote: `--set pipeline=package.module:function`, called for each split with
the knobs it names among its parameters, returning a tf.data.Dataset, a PyDataset, a torch
DataLoader or any iterable of (x, y) batches. Its descriptor (pipelines/registry.py) is read from
the function's signature with ast, importing nothing, so that a sweep is checked before any
framework loads."""

from __future__ import annotations

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
    wrapping round the source's pass (its function called again, for a one-shot generator). The
    feed's `images` is the plan's guess; the timer counts the images the batches held."""
    from pipelines.handover import hand_over, length

    data = call(spec.pipeline, index, spec, split)
    n = length(data)
    per_pass = n if n else (spec.steps_per_epoch if split == "train" else spec.validation_steps) or MIN_WINDOW_STEPS
    steps, images = split_plan(per_pass * spec.batch, spec, split)  # as many images as the passes hold
    ready = ReadyClock(steps) if split == "train" else None
    fed, first, returned = hand_over(data, lambda: call(spec.pipeline, index, spec, split), steps, ready)
    return Feed(fed, steps, images, ready, first, returned)


def check_batch(batch, model) -> str | None:
    """Why the model cannot take the pipeline's first batch (the shapes of its inputs), or None."""
    import keras

    return check_shapes([tuple(t.shape[1:]) for t in keras.tree.flatten(batch[0])], model)


def check_shapes(given: list[tuple], model) -> str | None:
    """Why the model cannot take inputs of these shapes (batch axis left out), or None."""
    wanted = [tuple(t.shape[1:]) for t in model.inputs]
    fits = len(given) == len(wanted) and all(
        len(g) == len(w) and all(b is None or a == b for a, b in zip(g, w)) for g, w in zip(given, wanted)
    )
    return None if fits else f"the pipeline yields inputs of shape {given}, but the model takes {wanted}"
