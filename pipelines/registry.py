"""The pipeline registry: one descriptor per pipeline (its loader knobs and what they mean, its
depth rule, its ceiling role, its description for the record), shipped or read from a user's
function's signature. Nothing here imports TensorFlow, so a sweep is checked and described before
any heavy import."""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any

from pipelines.signature import parameters, parse

# Formats tf.io.decode_image reads; PIL reads more (.ppm, .tif), which tfdata refuses up front.
TFDATA_FORMATS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")

TRANSFER = (
    "float32: images scaled to [0, 1] by the pipeline; uint8: the decoded pixels, scaled by the model's first layer"
)
SHARED_CACHE = "each image decoded and resized once, kept as uint8 in shared memory for later epochs"


def _dali_cuda() -> str:
    """The CUDA of the installed DALI build ('120', '130'): its TF plugin must be the same one."""
    import importlib.metadata

    for cuda in ("120", "130"):
        try:
            importlib.metadata.version(f"nvidia-dali-cuda{cuda}")
            return cuda
        except importlib.metadata.PackageNotFoundError:
            pass
    return "120"


DALI_TF_PLUGIN = (
    "nvidia.dali_tf_plugin",
    "DALI feeds TensorFlow through its TF plugin, which is not installed here (pip install "
    f"--no-build-isolation nvidia-dali-tf-plugin-cuda{_dali_cuda()}: it compiles against the installed "
    "TensorFlow)",
)


def keras_in_training_thread(spec) -> bool:
    """Keras's own rule (PyDatasetAdapter): a PyDataset with at most one thread and no processes,
    or with no workers at all whatever use_multiprocessing says, loads its batches in the training
    thread, through no queue."""
    return not (spec.workers > 1 or (spec.workers > 0 and spec.use_multiprocessing))


def _torch_in_training_process(spec) -> bool:
    return not spec.workers  # num_workers 0: no worker, no prefetch


def _keras_loader(spec) -> str:
    if not keras_in_training_thread(spec):
        kind = "processes" if spec.use_multiprocessing else "threads"
        return f"PyDataset: {spec.workers} {kind}, queue of {spec.max_queue_size} batches"
    return "PyDataset: batches loaded in the training thread (workers <= 1)"


def _tfdata_loader(spec) -> str:
    return (
        f"tf.data: map parallel={spec.workers or 'AUTOTUNE'}, prefetch={spec.max_queue_size or 'AUTOTUNE'} "
        "batches; threads only"
    )


def _torch_loader(spec) -> str:
    if _torch_in_training_process(spec):
        return "DataLoader: batches loaded in the training process (workers 0)"
    factor = prefetch_factor(spec.workers, spec.max_queue_size)
    return (
        f"DataLoader: {spec.workers} worker processes, prefetch_factor {factor} "
        f"({spec.workers * factor} batches ahead), persistent workers, pinned memory on CUDA"
    )


def _dali_loader(spec) -> str:
    return (
        f"DALI: {max(1, spec.workers or 1)} threads, {max(1, spec.max_queue_size or 2)} batches prefetched, "
        f"decoding on the GPU where the backend trains on one (nvJPEG), else on the CPU"
    )


def _keras_code(spec) -> str:
    return (
        f"data = YourPyDataset(batch_size={spec.batch}, workers={spec.workers}, "
        f"use_multiprocessing={bool(spec.use_multiprocessing)}, max_queue_size={spec.max_queue_size})"
    )


def _tfdata_code(spec) -> str:
    parallel = spec.workers or "tf.data.AUTOTUNE"
    prefetch = spec.max_queue_size or "tf.data.AUTOTUNE"
    return f"data = files.map(load, num_parallel_calls={parallel}).batch({spec.batch}).prefetch({prefetch})"


def _torch_code(spec) -> str:
    w = spec.workers or 0
    factor = f", prefetch_factor={prefetch_factor(w, spec.max_queue_size)}, persistent_workers=True" if w else ""
    return f"data = DataLoader(dataset, batch_size={spec.batch}, num_workers={w}{factor}, pin_memory=True)"


@dataclasses.dataclass(frozen=True)
class Pipeline:
    """One pipeline's facts, read by the checks, the skip policy, the worker and the reports:
    what its loader knobs mean (a knob missing does not apply and is blanked), the package it
    imports, the plugin a backend needs for it, the image formats it decodes, whether it is the
    model-alone ceiling's feed, how its loader reads in a record, and the code that builds it so."""

    name: str
    module: str
    knobs: dict[str, str]
    loader: Callable[[Any], str]
    needs: tuple[str, str] | None = None  # (package imported, how to install it)
    # the Keras backend whose package it imports: installed as that backend is (bench/plan/backends.py)
    framework: str = ""
    on_device: bool = False  # decodes where the backend trains (a GPU or not): its build is told the platform
    plugins: dict[str, tuple[str, str]] = dataclasses.field(default_factory=dict)  # backend -> (package, why)
    formats: tuple[str, ...] | None = None  # None: whatever PIL reads
    in_memory: bool = False  # tensors in memory, which cost nothing: the model-alone ceiling's feed
    in_training_thread: Callable[[Any], bool] | None = None  # whether its knobs load batches as training asks, unqueued
    code: Callable[[Any], str] | None = None  # the line of a user's script that builds it so: the report's "do this"
    kind: str = ""  # the loader a user's function may return that it is: what advice calls it and offers instead
    example: str = ""  # a function in examples/ that builds it with its knobs: the "do this" that runs as printed
    given: tuple[str, ...] = ()  # a user's function: what of GIVEN it takes (without `batch` it makes its own batches)
    decodes_in_python: bool = False  # its workers decode in Python, one interpreter's lock between threads
    instead: str = ""  # why the tuner tries it in place of a loader that decodes in Python ('' : it does not)


PIPELINES = {
    p.name: p
    for p in (
        Pipeline(
            "keras",
            "pipelines.pydataset",
            {
                "workers": "PyDataset workers (threads, or processes with use_multiprocessing)",
                "use_multiprocessing": "PyDataset workers are processes instead of threads",
                "max_queue_size": "batches the PyDataset queue holds ahead of training, loaded or being loaded: "
                "no more than this many load at once, so workers beyond it wait",
                "cache": SHARED_CACHE,
                "transfer": TRANSFER,
            },
            _keras_loader,
            in_training_thread=keras_in_training_thread,
            code=_keras_code,
            decodes_in_python=True,
            kind="a PyDataset with workers",
            example="examples.pipelines:pydataset_images",
        ),
        Pipeline(
            "tfdata",
            "pipelines.tfdata",
            {
                "workers": "num_parallel_calls of the decode map (0: AUTOTUNE)",
                "max_queue_size": "prefetch buffer in batches (0: AUTOTUNE)",
                "cache": "decoded images kept in memory after the first epoch",
                "transfer": TRANSFER,
            },
            _tfdata_loader,
            framework="tensorflow",
            formats=TFDATA_FORMATS,
            code=_tfdata_code,
            kind="tf.data",
            instead="its map runs outside Python's lock",
            example="examples.pipelines:tfdata_images",
        ),
        Pipeline(
            "synthetic",
            "pipelines.synthetic",
            {"transfer": "the dtype of the tensors in memory (uint8: the model scales them)"},
            lambda spec: "tensors in memory: no loader",
            in_memory=True,
        ),
        Pipeline(
            "torch",
            "pipelines.dataloader",
            {
                "workers": "DataLoader num_workers: processes (0: batches loaded in the training process)",
                "max_queue_size": "batches loaded ahead in all: each worker's prefetch_factor is "
                "ceil(max_queue_size / workers) (0: torch's default of 2)",
                "cache": SHARED_CACHE,
                "transfer": TRANSFER,
            },
            _torch_loader,
            framework="torch",
            in_training_thread=_torch_in_training_process,
            code=_torch_code,
            kind="a torch DataLoader",
            decodes_in_python=True,
            example="examples.pipelines:dataloader_images",
        ),
        Pipeline(
            "dali",
            "pipelines.dali",
            {
                "workers": "DALI's num_threads (its CPU threads: reading, decoding where there is no GPU, resizing)",
                "max_queue_size": "DALI's prefetch_queue_depth: batches prepared ahead",
                "transfer": TRANSFER,
            },
            _dali_loader,
            needs=("nvidia.dali", "pip install 'gpubench[dali]'"),
            plugins={"tensorflow": DALI_TF_PLUGIN},
            on_device=True,
        ),
    )
}
# What a user's function returned, as its runs' loader column says it (pipelines/handover.py): a
# shipped pipeline's kind of loader, or ("") any other iterable, which fit pulls in its own thread.
SERIAL = "a plain iterable (a generator or a list): its batches load one after another in the training thread"
RETURNED = {
    "keras": "returned a PyDataset",
    "tfdata": "returned a tf.data dataset",
    "torch": "returned a torch DataLoader",
    "": f"returned {SERIAL}",
}
LOADER_PARAMETERS = tuple(dict.fromkeys(k for p in PIPELINES.values() for k in p.knobs))
MODEL_ALONE = next(p.name for p in PIPELINES.values() if p.in_memory)  # the feed of every model-alone ceiling
# The loader knobs some loaders take and others do not (blank there): two loaders' points are twins
# whatever these say, so that points differing in pipeline alone can be paired.
TAKEN_BY_SOME = tuple(
    k for k in LOADER_PARAMETERS if not all(k in p.knobs for p in PIPELINES.values() if not p.in_memory)
)


def is_model_alone(name) -> bool:
    """Whether `name` is the feed that costs nothing, so a run on it measures the model alone (its
    ceiling); every stage asks this rather than matching a name."""
    pipeline = PIPELINES.get(name) if isinstance(name, str) else None
    return bool(pipeline and pipeline.in_memory)


def is_user_pipeline(name: str) -> bool:
    """`package.module:function`: a pipeline the user wrote (pipelines/user.py)."""
    return ":" in name


def describe(name: str) -> Pipeline:
    """The descriptor of a shipped pipeline, or of a user's function (read from its signature,
    importing nothing); KeyError or ValueError with a one-line reason when there is none."""
    return user_descriptor(name) if is_user_pipeline(name) else PIPELINES[name]


def knob_meaning(pipeline: str) -> dict[str, str]:
    """The loader knobs `pipeline` takes and what each means there; none where it cannot be described."""
    try:
        return describe(pipeline).knobs
    except (KeyError, ValueError):
        return {}


def describe_loader(spec) -> str:
    """What the loader knobs of `spec` mean in its pipeline, for the record."""
    extras = ("; decoded images cached" if spec.cache else "") + (
        "; uint8 handed over, scaled on the device" if spec.transfer == "uint8" else ""
    )
    return describe(spec.pipeline).loader(spec) + extras


def returned(loader: str) -> str | None:
    """The shipped pipeline whose kind of loader a user's function returned ("": a plain iterable),
    read from its run's loader column; None where the column does not say."""
    return next((name for name, said in RETURNED.items() if said in str(loader)), None)


def other_loaders(pipeline: str, loader: str = "") -> str:
    """The kinds of loader worth trying instead of the one that ran ('tf.data or a torch DataLoader'):
    never its own (a user's pipeline's from what it returned, its run's `loader`)."""
    own = returned(loader) if is_user_pipeline(pipeline) else pipeline
    kinds = [p.kind for p in PIPELINES.values() if p.kind and p.name != own]
    return " or ".join([", ".join(kinds[:-1]), kinds[-1]] if len(kinds) > 1 else kinds)


def prefetch_factor(workers: int, max_queue_size: int | None) -> int:
    """The DataLoader's per-worker prefetch that keeps as many batches ahead as keras's queue."""
    return math.ceil(max_queue_size / workers) if max_queue_size else 2


# What else a function may name: the batch, the split, and the data the sweep was given.
GIVEN = {
    "batch": "images per step",
    "split": "'train' or 'val'",
    "directory": "the split's image folder",
    "classes": "the class count",
    "input_size": "the input_size knob",
}


@functools.cache
def user_descriptor(ref: str) -> Pipeline:
    """A user's pipeline function's descriptor: the knobs it takes are the ones a sweep may vary for it."""
    names, required = parameters(ref)
    unknown = [n for n in required if n not in GIVEN and n not in LOADER_PARAMETERS]
    if unknown:
        raise ValueError(
            f"pipeline {ref!r} needs {', '.join(unknown)}, which gpubench cannot give; "
            f"it gives {', '.join([*GIVEN, *LOADER_PARAMETERS])}"
        )
    function = parse(ref)[1]
    knobs = {k: f"{function}'s `{k}` parameter" for k in names if k in LOADER_PARAMETERS}
    given = tuple(n for n in names if n in GIVEN)
    return Pipeline(ref, "pipelines.user", knobs, lambda spec: _loader(ref, knobs, spec), given=given)


def batches_itself(name: str) -> bool:
    """Whether `name` is a user's pipeline whose function takes no `batch`: it makes batches of its
    own size, so the batch knob does not apply to it (blanked, as a loader knob it lacks)."""
    return is_user_pipeline(name) and "batch" not in _given(name)


def reads_our_data(name: str) -> bool:
    """Whether a user's pipeline reads the data gpubench was given (it takes `directory` or
    `classes`): else its labels, not the data folder, say how many classes the model needs."""
    return not is_user_pipeline(name) or bool({"directory", "classes"} & set(_given(name)))


def _given(name: str) -> tuple[str, ...]:
    try:
        return user_descriptor(name).given
    except ValueError:
        return ("batch", "directory")  # not describable: check_spec refuses it with the reason


def _loader(ref: str, knobs: dict, spec) -> str:
    given = ", ".join(f"{k}={getattr(spec, k)}" for k in knobs)
    return f"{ref}({given}): the user's pipeline, its batches stamped as they are handed to fit"
