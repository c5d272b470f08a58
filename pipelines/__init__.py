"""Input pipelines behind one signature: build(index, spec, split) -> something `fit` takes.

The names and the meaning of the loader knobs live here without importing TensorFlow, so a
sweep is checked and described before any heavy import.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import multiprocessing
import time
from typing import Any, Callable, NamedTuple

import numpy as np

# Formats tf.io.decode_image reads; PIL reads more (.ppm, .tif), which tfdata refuses up front.
TFDATA_FORMATS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")

TRANSFER = "float32: images scaled to [0, 1] by the pipeline; uint8: the decoded pixels, scaled by the model's first layer"
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


DALI_TF_PLUGIN = ("nvidia.dali_tf_plugin",
                  "DALI feeds TensorFlow through its TF plugin, which is not installed here (pip install "
                  f"--no-build-isolation nvidia-dali-tf-plugin-cuda{_dali_cuda()}: it compiles against the installed TensorFlow)")


def _keras_loader(spec) -> str:
    if spec.workers > 1 or (spec.workers > 0 and spec.use_multiprocessing):
        kind = "processes" if spec.use_multiprocessing else "threads"
        return f"PyDataset: {spec.workers} {kind}, queue of {spec.max_queue_size} batches"
    return "PyDataset: batches loaded in the training thread (workers <= 1)"


def _tfdata_loader(spec) -> str:
    return (f"tf.data: map parallel={spec.workers or 'AUTOTUNE'}, prefetch={spec.max_queue_size or 'AUTOTUNE'} "
            "batches; threads only")


def _torch_loader(spec) -> str:
    if not spec.workers:
        return "DataLoader: batches loaded in the training process (workers 0)"
    factor = prefetch_factor(spec.workers, spec.max_queue_size)
    return (f"DataLoader: {spec.workers} worker processes, prefetch_factor {factor} "
            f"({spec.workers * factor} batches ahead), persistent workers, pinned memory on CUDA")


def _dali_loader(spec) -> str:
    return (f"DALI: {max(1, spec.workers or 1)} threads, {max(1, spec.max_queue_size or 2)} batches prefetched, "
            f"decoding on the GPU where the backend trains on one (nvJPEG), else on the CPU")


@dataclasses.dataclass(frozen=True)
class Pipeline:
    """One pipeline's facts, read by the checks, the skip policy, the worker and the reports:
    what its loader knobs mean (a knob missing does not apply and is blanked), the package it
    imports, the plugin a backend needs for it, the image formats it decodes, whether it stamps
    when each batch is ready, and how its loader reads in a record."""

    name: str
    module: str
    knobs: dict[str, str]
    loader: Callable[[Any], str]
    needs: tuple[str, str] | None = None  # (package imported, how to install it)
    framework: str = ""  # the Keras backend whose package it imports: installed as that backend is (bench/plan/backends.py)
    on_device: bool = False  # decodes where the backend trains (a GPU or not): its build is told the platform
    plugins: dict[str, tuple[str, str]] = dataclasses.field(default_factory=dict)  # backend -> (package, why)
    formats: tuple[str, ...] | None = None  # None: whatever PIL reads
    stamps: bool = True  # False: tensors in memory never wait, so a stamp would only cost
    in_memory: bool = False  # the model-alone ceiling's feed
    function: str | None = None  # a user pipeline's "package.module:function"


PIPELINES = {p.name: p for p in (
    Pipeline("keras", "pipelines.pydataset", {
        "workers": "PyDataset workers (threads, or processes with use_multiprocessing)",
        "use_multiprocessing": "PyDataset workers are processes instead of threads",
        "max_queue_size": "batches the PyDataset queue holds ahead of training, loaded or being loaded: "
                          "no more than this many load at once, so workers beyond it wait",
        "cache": SHARED_CACHE, "transfer": TRANSFER}, _keras_loader),
    Pipeline("tfdata", "pipelines.tfdata", {
        "workers": "num_parallel_calls of the decode map (0: AUTOTUNE)",
        "max_queue_size": "prefetch buffer in batches (0: AUTOTUNE)",
        "cache": "decoded images kept in memory after the first epoch",
        "transfer": TRANSFER}, _tfdata_loader, framework="tensorflow", formats=TFDATA_FORMATS),
    Pipeline("synthetic", "pipelines.synthetic",
             {"transfer": "the dtype of the tensors in memory (uint8: the model scales them)"},
             lambda spec: "tensors in memory: no loader", stamps=False, in_memory=True),
    Pipeline("torch", "pipelines.dataloader", {
        "workers": "DataLoader num_workers: processes (0: batches loaded in the training process)",
        "max_queue_size": "batches loaded ahead in all: each worker's prefetch_factor is "
                          "ceil(max_queue_size / workers) (0: torch's default of 2)",
        "cache": SHARED_CACHE, "transfer": TRANSFER}, _torch_loader, framework="torch"),
    Pipeline("dali", "pipelines.dali", {
        "workers": "DALI's num_threads (its CPU threads: reading, decoding where there is no GPU, resizing)",
        "max_queue_size": "DALI's prefetch_queue_depth: batches prepared ahead",
        "transfer": TRANSFER}, _dali_loader, needs=("nvidia.dali", "pip install 'gpubench[dali]'"),
             plugins={"tensorflow": DALI_TF_PLUGIN}, on_device=True),
)}
LOADER_PARAMETERS = tuple(dict.fromkeys(k for p in PIPELINES.values() for k in p.knobs))


def is_user_pipeline(name: str) -> bool:
    """`package.module:function`: a pipeline the user wrote (pipelines/user.py)."""
    return ":" in name


def describe(name: str) -> Pipeline:
    """The descriptor of a shipped pipeline, or of a user's function (read from its signature,
    importing nothing); KeyError or ValueError with a one-line reason when there is none."""
    if is_user_pipeline(name):
        from pipelines.user import descriptor

        return descriptor(name)
    return PIPELINES[name]


def knob_meaning(pipeline: str) -> dict[str, str]:
    """The loader knobs `pipeline` takes and what each means there; none where it cannot be described."""
    try:
        return describe(pipeline).knobs
    except (KeyError, ValueError):
        return {}


def describe_loader(spec) -> str:
    """What the loader knobs of `spec` mean in its pipeline, for the record."""
    extras = ("; decoded images cached" if spec.cache else "") + (
        "; uint8 handed over, scaled on the device" if spec.transfer == "uint8" else "")
    return describe(spec.pipeline).loader(spec) + extras


def prefetch_factor(workers: int, max_queue_size: int | None) -> int:
    """The DataLoader's per-worker prefetch that keeps as many batches ahead as keras's queue."""
    return math.ceil(max_queue_size / workers) if max_queue_size else 2


class ReadyClock:
    """When each batch of the current epoch was ready to hand to the training step.

    Shared memory, so loader processes (use_multiprocessing) can write it too; perf_counter
    is the system's monotonic clock, the same in every process. A step that begins before its
    batch is ready waits for data: that wait is measured, not inferred from rates.
    """

    def __init__(self, steps: int):
        self.times = multiprocessing.RawArray("d", steps)
        self.sizes = multiprocessing.RawArray("l", steps)  # images in each batch, where the pipeline counts them

    def mark(self, batch: int) -> None:
        """Stamp `batch` as ready now (its slot wraps round the epoch's steps)."""
        self.times[batch % len(self.times)] = time.perf_counter()

    def count(self, batch: int, images: int) -> None:
        """Note the images `batch` holds, as handed over (0: not counted, the plan's count stands)."""
        self.sizes[batch % len(self.sizes)] = images


class Feed(NamedTuple):
    """What a pipeline hands to `fit`: the data, its batches and images per epoch (planned; a user
    pipeline's are counted as handed over, on `ready`), (for training) the clock its batches are
    stamped on when ready, and a user pipeline's first batch (its shapes build and check models)."""

    data: Any
    steps: int
    images: int
    ready: ReadyClock | None = None
    first: Any = None


def onehot(labels, classes: int) -> np.ndarray:
    """float32 one-hot rows, what categorical_crossentropy takes (flow_from_directory's 'categorical')."""
    return np.eye(classes, dtype="float32")[np.asarray(labels, dtype=int)]


class BatchOrder:
    """Which files each batch of an epoch holds, shared by the keras and torch pipelines so
    that both read the same files in the same order. Training reshuffles after every epoch;
    validation never does (the seed's rule)."""

    def __init__(self, count: int, batch: int, images: int, shuffle: bool, seed: int = 0):
        self.count, self.batch, self.images, self.shuffle = count, batch, images, shuffle
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(count) if shuffle else np.arange(count)

    def files(self, i: int) -> np.ndarray:
        """File numbers of batch i; an epoch longer than one pass wraps round."""
        positions = np.arange(i * self.batch, min((i + 1) * self.batch, self.images))
        return self.order[positions % self.count]

    def next_epoch(self) -> None:
        """Reshuffle for the next epoch, when training: validation keeps its order."""
        if self.shuffle:
            self.order = self.rng.permutation(self.count)


def epoch_plan(count: int, batch: int, steps: int) -> tuple[int, int]:
    """(batches, images) in one epoch. Steps 0 means one pass with a short last batch, which
    is what the seed's steps_per_epoch always came to; more steps wrap round the images."""
    one_pass = math.ceil(count / batch)
    if steps in (0, one_pass):
        return one_pass, count
    return steps, steps * batch


MIN_WINDOW_STEPS = 50


def loader_depth(spec) -> int:
    """Batches the loader has in hand at once: its workers' and its queue's. A PyDataset with
    at most one thread loads in the training thread and holds none; tensors in memory need none."""
    meaning = knob_meaning(spec.pipeline)
    if spec.pipeline == "keras" and spec.workers <= 1 and not spec.use_multiprocessing:
        return 0
    return sum(getattr(spec, knob) or 0 for knob in ("workers", "max_queue_size") if knob in meaning)


def window_steps(spec) -> int:
    """The fewest steps a measured window spans: 50, and four times the loader's depth, so that
    the window sees the loader's throughput rather than the refill of an empty queue."""
    return max(MIN_WINDOW_STEPS, 4 * loader_depth(spec))


WARM_STEPS = 5


def warmup_steps(spec) -> int | None:
    """The first epoch's steps before the measured window opens: the one that compiles, the loader's
    depth (the batches it readied meanwhile, drained faster than it makes them), then WARM_STEPS
    steady ones. None, the whole first epoch, where the first pass fills a cache."""
    return None if spec.cache else 1 + loader_depth(spec) + WARM_STEPS


def split_plan(index, spec, split: str) -> tuple[int, int]:
    """epoch_plan for one split, with the steps the spec asks of it. With window=auto, training
    epochs are lengthened (wrapping round the images) until the epochs after the first, the
    measured window, span window_steps(spec)."""
    requested = spec.steps_per_epoch if split == "train" else spec.validation_steps
    steps, images = epoch_plan(index.count(split), spec.batch, requested)
    if split == "train" and spec.window == "auto" and spec.epochs > 1:
        needed = math.ceil(window_steps(spec) / (spec.epochs - 1))
        if steps < needed:
            return needed, needed * spec.batch
    return steps, images


def host_share(index, spec, process_id: int):
    """(the index and spec of process `process_id`'s share of a run on `spec.hosts` processes): its
    own images and a batch of batch / hosts, for as many steps as the whole run plans, so that
    every process steps together and the global batch is `batch`."""
    if spec.hosts == 1:
        return index, spec
    train_steps, _ = split_plan(index, spec, "train")
    val_steps, _ = split_plan(index, spec, "val")
    local = dataclasses.replace(spec, batch=spec.batch // spec.hosts, steps_per_epoch=train_steps,
                                validation_steps=val_steps, window="epochs")
    return index.shard(process_id, spec.hosts), local


def build(index, spec, split: str, platform: str = "cpu") -> Feed:
    """The feed for one split ('train' or 'val') of `index`, as `spec` asks; `platform` (gpu, cpu,
    mps: where the backend trains) reaches the pipelines that decode there."""
    pipeline = describe(spec.pipeline)
    module = importlib.import_module(pipeline.module)
    return module.build(index, spec, split, platform) if pipeline.on_device else module.build(index, spec, split)
