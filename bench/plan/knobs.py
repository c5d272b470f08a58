"""The knobs: RunSpec (one point of a sweep) and each knob's metadata (role, meaning, allowed
values or minimum), read by the checks, the reports and `gpubench knobs`; and turning a TOML or
--set value into a knob's value. Nothing here imports TensorFlow or Keras."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import typing
from dataclasses import dataclass

from bench.plan.backends import BACKENDS
from models import BACKBONES
from pipelines.registry import PIPELINES

SAMPLE_INTERVAL_S = 0.5  # seconds between CPU and GPU samples
# Other work's share of the whole CPU (%) during a run's window above which its figures are not judged:
# the sweep waits for quiet after such a run, its bound is withheld, the gate measures it again.
BUSY_PCT = 30.0
QUIET_WAIT_S = 60.0  # at most, after such a run, before the next (--quiet-wait)


class SpecError(ValueError):
    """A user mistake found before any work starts; its message is one line."""


def knob(
    default,
    role: str,
    help: str,
    allowed: tuple = (),
    minimum: int | None = None,
    later: bool = False,
    show: str | dict | None = None,
    show_default: bool = True,
):
    """A RunSpec field that is a knob. `role` says what it sets, and so where the reports put it:
    `model` and `schedule` knobs split the results into tables, `pipeline`, `loader` and `device`
    knobs name a table's columns (a `loader` knob is blank where its pipeline does not use it),
    `batch` its rows. `help` says what it means, `allowed` or `minimum` what values it takes
    (check_spec and `gpubench knobs` read them from here). `later` marks a knob added after the
    first results were kept: at its default it is left out of point_id, so that those results
    keep their ids. `show` is its short form in a point's name (display): a format ("w{}") or
    value -> words (a value missing there is not shown); `show_default=False` leaves it out at
    its default."""
    return dataclasses.field(
        default=default,
        metadata={
            "role": role,
            "help": help,
            "allowed": allowed,
            "minimum": minimum,
            "later": later,
            "show": show,
            "show_default": show_default,
        },
    )


# Keras's dtype policies (the precision knob's values) -> the dtype each computes in
PRECISIONS = {"float32": "float32", "mixed_float16": "float16", "mixed_bfloat16": "bfloat16"}


@dataclass(frozen=True)
class RunSpec:
    """One point of a sweep. Defaults follow the seed's recipe, with fewer epochs."""

    backend: str = knob(
        "tensorflow",
        "model",
        "Keras 3's backend; auto: the first of them that trains on this "
        "run's GPU (the first installed where there is none)",
        (*BACKENDS, "auto"),
        later=True,
        show="{}",
        show_default=False,
    )
    backbone: str = knob("vgg16", "model", "the model trained (models/)", tuple(BACKBONES), show="{}")
    input_size: int = knob(224, "model", "images are resized to this many pixels square", minimum=1, show="{}px")
    pipeline: str = knob("keras", "pipeline", "what reads and feeds the images", tuple(PIPELINES), show="{}")
    batch: int | None = knob(
        16, "batch", "images per training step (blank: a pipeline of yours that makes its own)", minimum=1, show="b{}"
    )
    workers: int | None = knob(4, "loader", "loader workers (threads or processes)", minimum=0, show="w{}")
    use_multiprocessing: bool | None = knob(
        False,
        "loader",
        "the keras loader's workers are processes, not threads",
        (True, False),
        show={True: "mp", False: "threads"},
    )
    max_queue_size: int | None = knob(10, "loader", "batches the loader keeps ready", minimum=0, show="q{}")
    gpus: int = knob(
        1,
        "device",
        "devices training data-parallel (logical CPU devices where no GPU)",
        minimum=1,
        show="{} gpus",
        show_default=False,
    )
    epochs: int = knob(3, "schedule", "epochs trained (the first is warm-up)", minimum=1)
    steps_per_epoch: int = knob(
        0, "schedule", "0: one pass over the training images, as flow_from_directory", minimum=0
    )
    validation_steps: int = knob(0, "schedule", "0: one pass over the validation images", minimum=0)
    finetune: str = knob("full", "model", "the layers trained: the seed's three steps", ("head", "last_block", "full"))
    interpolation: str = knob(
        "nearest", "model", "resizing (nearest: flow_from_directory's default)", ("nearest", "bilinear")
    )
    cache: bool | None = knob(
        False, "loader", "keep the decoded images in memory after the first epoch", (True, False), show={True: "cache"}
    )
    checkpoint: bool = knob(
        False, "schedule", "save the best model every epoch, as the seed's timed runs did", (True, False)
    )
    precision: str = knob(
        "float32", "device", "Keras's dtype policy", tuple(PRECISIONS), show=PRECISIONS, show_default=False
    )
    xla: str = knob(
        "auto",
        "device",
        "jit_compile: auto (Keras decides), on, off",
        ("auto", "on", "off"),
        show="xla {}",
        show_default=False,
    )
    window: str = knob(
        "auto",
        "schedule",
        "auto: epochs long enough for a steady window; epochs: as asked",
        ("auto", "epochs"),
        later=True,
    )
    data_format: str = knob(
        "channels_last",
        "device",
        "Keras's image data format for the model",
        ("channels_last", "channels_first"),
        later=True,
        show="{}",
        show_default=False,
    )
    transfer: str = knob(
        "float32",
        "loader",
        "what a pipeline hands over: float32 in [0, 1], or uint8",
        ("float32", "uint8"),
        later=True,
        show="{}",
        show_default=False,
    )
    hosts: int = knob(
        1,
        "device",
        "processes training data-parallel, `gpus` devices each",
        minimum=1,
        later=True,
        show="{} hosts",
        show_default=False,
    )
    shaped_by: str = knob(
        "",
        "pipeline",
        "set by the plan, not by hand: a model-alone ceiling's tensors copy this user pipeline's batches "
        "(their shapes, dtypes, labels, a short last batch), so that the ceiling is of the job that runs",
        later=True,
    )
    repeat: int = 0  # which repeat of the point this is, 0-based
    role: str = "point"  # "ceiling": a probe run for another point's pipeline or model ceiling
    profile: bool = False  # an extra run traced by the backend's profiler (--profile): its rates are not kept

    def knobs(self) -> dict:
        """The knob values alone (not repeat or role): what a point is."""
        return {k: getattr(self, k) for k in KNOBS}

    @property
    def point_id(self) -> str:
        """Stable id of the knob combination: the same point in any sweep has the same id. A
        knob added after the first results is left out while at its default, so that those
        results keep their ids (resume, baselines)."""
        values = tuple(getattr(self, k) for k in KNOBS)
        return _point_id(values, tuple(map(type, values)))

    @property
    def run_id(self) -> str:
        """The point's id and its repeat (and -profile for a traced run): one run's name in rows, samples and logs."""
        return f"{self.point_id}-r{self.repeat}" + ("-profile" if self.profile else "")

    def label(self) -> str:
        """Short human name for progress lines: every knob's short form (display)."""
        return display(self.knobs(), tuple(KNOBS))


KNOBS: dict[str, dataclasses.Field] = {f.name: f for f in dataclasses.fields(RunSpec) if "role" in f.metadata}


@functools.lru_cache(maxsize=65536)
def _point_id(values: tuple, types: tuple) -> str:
    """RunSpec.point_id of the knobs' values in KNOBS' order, kept: a table asks for the same ids
    after every pass. Their `types` are in the key: 1, 1.0 and True are one key but not one JSON."""
    knobs = {k: v for k, v in zip(KNOBS, values) if LATER_KNOBS.get(k, object()) != v}
    return hashlib.sha1(json.dumps(knobs, sort_keys=True).encode()).hexdigest()[:10]


# knob -> the types its value may have, from RunSpec's annotations (int | None: (int, NoneType))
KINDS: dict[str, tuple[type, ...]] = {
    name: typing.get_args(hint) or (hint,) for name, hint in typing.get_type_hints(RunSpec).items() if name in KNOBS
}


def knobs_of(*roles: str) -> tuple[str, ...]:
    """The knobs of these roles, in RunSpec's order."""
    return tuple(name for name, f in KNOBS.items() if f.metadata["role"] in roles)


LATER_KNOBS = {name: f.default for name, f in KNOBS.items() if f.metadata["later"]}  # left out of point_id at these
LOADER_KNOBS = knobs_of("loader")
GROUP_KNOBS = knobs_of("model", "schedule")  # a table each
COLUMN_KNOBS = knobs_of("pipeline", "loader", "device")  # a table's columns
ROW_KNOB = "batch"


def plain(value):
    """A knob value as set: None for a table's blank (NaN), 4 for the 4.0 a column with blanks holds,
    bool for numpy's: what a RunSpec read back from a table needs for its point_id to be the same."""
    value = value.item() if hasattr(value, "item") else value  # numpy scalars
    if isinstance(value, float):
        return None if value != value else int(value) if value.is_integer() else value
    return value


def display(knobs: dict, names: tuple[str, ...]) -> str:
    """'keras w4 threads q10 2 gpus': the short forms (knob metadata `show`) of these knobs'
    values, in RunSpec's order; a blank value, a knob absent from `knobs` or one at its hidden
    default is left out. Progress labels and the reports' setting names both come from here."""
    parts = []
    for name in (n for n in KNOBS if n in names and n in knobs):
        meta, value = KNOBS[name].metadata, plain(knobs[name])
        if value is None or meta["show"] is None or (not meta["show_default"] and value == KNOBS[name].default):
            continue
        shown = meta["show"].get(value) if isinstance(meta["show"], dict) else meta["show"].format(value)
        if shown:
            parts.append(shown)
    return " ".join(parts)


def coerce(knob: str, raw):
    """Turn a TOML or command-line value into the knob's type, or raise a one-line SpecError."""
    kinds = KINDS[knob]
    text = str(raw).strip()
    if isinstance(raw, str) and text.lower() in ("", "none", "n/a") and type(None) in kinds:
        return None
    if bool in kinds:
        if isinstance(raw, bool):
            return raw
        if text.lower() in ("true", "1", "yes"):
            return True
        if text.lower() in ("false", "0", "no"):
            return False
        raise SpecError(f"{knob}={text!r}: expected true or false")
    if int in kinds:
        if isinstance(raw, bool):
            raise SpecError(f"{knob}={text!r}: expected a whole number")
        try:
            return int(text)
        except ValueError:
            raise SpecError(f"{knob}={text!r}: expected a whole number") from None
    return text


def below_minimum(knob: str, value) -> str | None:
    """Why `value` is under the knob's minimum (or not a whole number where it has one), or None."""
    minimum = KNOBS[knob].metadata["minimum"]
    if minimum is None or (isinstance(value, int) and value >= minimum):
        return None
    return f"{knob}={value}: " + ("must be at least 1" if minimum == 1 else f"must be {minimum} or more")


def parse_override(text: str) -> tuple[str, list]:
    """'batch=8,32' -> ('batch', [8, 32])."""
    if "=" not in text:
        raise SpecError(f"--set {text!r}: expected KNOB=VALUE[,VALUE...]")
    knob, _, values = text.partition("=")
    knob = knob.strip()
    if knob not in KNOBS:
        raise SpecError(f"unknown knob {knob!r}; knobs are: {', '.join(KNOBS)}")
    if not all(v.strip() for v in values.split(",")):
        raise SpecError(f"--set {text!r}: a value is missing; expected {knob}=VALUE[,VALUE...]")
    return knob, [coerce(knob, v) for v in values.split(",")]
