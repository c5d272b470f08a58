"""A pipeline the user wrote: `--set pipeline=package.module:function`, called for each split with
the knobs it names among its parameters, returning a tf.data.Dataset, a PyDataset, a torch
DataLoader or any iterable of (x, y) batches. Its descriptor is read from the function's signature
with ast, importing nothing, so that a sweep is checked before any framework loads."""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.util

from pipelines import LOADER_PARAMETERS, Feed, MIN_WINDOW_STEPS, Pipeline, ReadyClock, split_plan

# What else a function may name: the batch, the split, and the data the sweep was given.
GIVEN = {"batch": "images per step", "split": "'train' or 'val'", "directory": "the split's image folder",
         "classes": "the class count", "input_size": "the input_size knob"}


class UserCodeError(Exception):
    """The user's function raised when called, or gave what gpubench cannot use: it would in every
    run that calls it, so the sweep tries it once (bench/run/failures.py reads the message)."""

    def __init__(self, ref: str, error: BaseException | str):
        why = error if isinstance(error, str) else f"raised {type(error).__name__}: {error}"
        super().__init__(f"{ref} {why}")


def parse(ref: str) -> tuple[str, str]:
    """(module, function) of a `package.module:function` reference; ValueError when it is not one."""
    module, _, function = ref.partition(":")
    if not module or not function.isidentifier():
        raise ValueError(f"pipeline {ref!r}: expected package.module:function")
    return module, function


def parameters(ref: str, kind: str = "pipeline") -> tuple[list[str], list[str]]:
    """(the parameters of `ref`'s function, those without a default), read from its source."""
    module, function = parse(ref)
    try:
        found = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        found = None
    if found is None or not found.origin or not found.origin.endswith(".py"):
        raise ValueError(f"{kind} {ref!r}: no module {module} on the path (is PYTHONPATH set?)")
    with open(found.origin) as f:
        tree = ast.parse(f.read())
    node = next((n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                 and n.name == function), None)
    if node is None:
        raise ValueError(f"{kind} {ref!r}: {found.origin} defines no function {function}")
    args = node.args
    names = [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs]
    positional = args.posonlyargs + args.args
    required = [a.arg for a in positional[:len(positional) - len(args.defaults)]]
    required += [a.arg for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is None]
    return names, required


@functools.lru_cache(maxsize=None)
def descriptor(ref: str) -> Pipeline:
    """The knobs the function takes are the ones a sweep may vary for it."""
    names, required = parameters(ref)
    unknown = [n for n in required if n not in GIVEN and n not in LOADER_PARAMETERS]
    if unknown:
        raise ValueError(f"pipeline {ref!r} needs {', '.join(unknown)}, which gpubench cannot give; "
                         f"it gives {', '.join([*GIVEN, *LOADER_PARAMETERS])}")
    function = parse(ref)[1]
    knobs = {k: f"{function}'s `{k}` parameter" for k in names if k in LOADER_PARAMETERS}
    return Pipeline(ref, "pipelines.user", knobs, lambda spec: _loader(ref, knobs, spec))


def _loader(ref: str, knobs: dict, spec) -> str:
    given = ", ".join(f"{k}={getattr(spec, k)}" for k in knobs)
    return f"{ref}({given}): the user's pipeline, its batches stamped as they are handed to fit"


def call(ref: str, index, spec, split: str):
    """What the function returns for `split`, called with the arguments it names."""
    module, function = parse(ref)
    fn = getattr(importlib.import_module(module), function)
    names, _ = parameters(ref)
    offered = {"batch": spec.batch, "split": split, "directory": f"{index.root}/{split}",
               "classes": len(index.classes), "input_size": spec.input_size}
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

    class Passes:  # split_plan's view: as many images as the passes hold
        @staticmethod
        def count(_split):
            return per_pass * spec.batch

    steps, images = split_plan(Passes, spec, split)
    ready = ReadyClock(steps) if split == "train" else None
    fed, first = hand_over(data, lambda: call(spec.pipeline, index, spec, split), steps, ready)
    return Feed(fed, steps, images, ready, first)


def check_batch(batch, model) -> str | None:
    """Why the model cannot take the pipeline's first batch (the shapes of its inputs), or None."""
    import keras

    return check_shapes([tuple(t.shape[1:]) for t in keras.tree.flatten(batch[0])], model)


def check_shapes(given: list[tuple], model) -> str | None:
    """Why the model cannot take inputs of these shapes (batch axis left out), or None."""
    wanted = [tuple(t.shape[1:]) for t in model.inputs]
    fits = len(given) == len(wanted) and all(
        len(g) == len(w) and all(b is None or a == b for a, b in zip(g, w)) for g, w in zip(given, wanted))
    return None if fits else f"the pipeline yields inputs of shape {given}, but the model takes {wanted}"
