"""What to run: knobs, presets, the grid of RunSpecs, and the checks made before any run.

Nothing here imports TensorFlow or Keras, so a bad sweep is refused in well under a second.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import itertools
import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from models import BACKBONES, data_format_problem, input_size_problem
from pipelines import PIPELINES, knob_meaning

PRESET_DIR = Path(__file__).parent / "presets"
TIMEOUT_S = 900.0  # seconds one run may take, where neither the preset nor the command line says
SAMPLE_INTERVAL_S = 0.5  # seconds between CPU and GPU samples


class SpecError(ValueError):
    """A user mistake found before any work starts; its message is one line."""


def knob(default, role: str, help: str, allowed: tuple = (), minimum: int | None = None, later: bool = False):
    """A RunSpec field that is a knob. `role` says what it sets, and so where the reports put it:
    `model` and `schedule` knobs split the results into tables, `pipeline`, `loader` and `device`
    knobs name a table's columns (a `loader` knob is blank where its pipeline does not use it),
    `batch` its rows. `help` says what it means, `allowed` or `minimum` what values it takes
    (check_spec and `gpubench knobs` read them from here). `later` marks a knob added after the
    first results were kept: at its default it is left out of point_id, so that those results
    keep their ids."""
    return dataclasses.field(default=default, metadata={"role": role, "help": help, "allowed": allowed,
                                                        "minimum": minimum, "later": later})


BACKENDS = ("tensorflow", "jax", "torch")


@dataclass(frozen=True)
class RunSpec:
    """One point of a sweep. Defaults follow the seed's recipe, with fewer epochs."""

    backend: str = knob("tensorflow", "model", "Keras 3's backend", BACKENDS, later=True)
    backbone: str = knob("vgg16", "model", "the model trained (bench/models)", tuple(BACKBONES))
    input_size: int = knob(224, "model", "images are resized to this many pixels square", minimum=1)
    pipeline: str = knob("keras", "pipeline", "what reads and feeds the images", tuple(PIPELINES))
    batch: int = knob(16, "batch", "images per training step", minimum=1)
    workers: int | None = knob(4, "loader", "loader workers (threads or processes)", minimum=0)
    use_multiprocessing: bool | None = knob(False, "loader", "the keras loader's workers are processes, not threads",
                                            (True, False))
    max_queue_size: int | None = knob(10, "loader", "batches the loader keeps ready", minimum=0)
    gpus: int = knob(1, "device", "devices training data-parallel (logical CPU devices where no GPU)", minimum=1)
    epochs: int = knob(3, "schedule", "epochs trained (the first is warm-up)", minimum=1)
    steps_per_epoch: int = knob(0, "schedule", "0: one pass over the training images, as flow_from_directory",
                                minimum=0)
    validation_steps: int = knob(0, "schedule", "0: one pass over the validation images", minimum=0)
    finetune: str = knob("full", "model", "the layers trained: the seed's three steps", ("head", "last_block", "full"))
    interpolation: str = knob("nearest", "model", "resizing (nearest: flow_from_directory's default)",
                              ("nearest", "bilinear"))
    cache: bool | None = knob(False, "loader", "keep the decoded images in memory after the first epoch", (True, False))
    checkpoint: bool = knob(False, "schedule", "save the best model every epoch, as the seed's timed runs did",
                            (True, False))
    precision: str = knob("float32", "device", "Keras's dtype policy", ("float32", "mixed_float16", "mixed_bfloat16"))
    xla: str = knob("auto", "device", "jit_compile: auto (Keras decides), on, off", ("auto", "on", "off"))
    window: str = knob("auto", "schedule", "auto: epochs long enough for a steady window; epochs: as asked",
                       ("auto", "epochs"), later=True)
    data_format: str = knob("channels_last", "device", "Keras's image data format for the model",
                            ("channels_last", "channels_first"), later=True)
    transfer: str = knob("float32", "loader", "what a pipeline hands over: float32 in [0, 1], or uint8",
                         ("float32", "uint8"), later=True)
    hosts: int = knob(1, "device", "processes training data-parallel, `gpus` devices each", minimum=1, later=True)
    repeat: int = 0  # which repeat of the point this is, 0-based
    role: str = "point"  # "ceiling": a probe run for another point's pipeline or model ceiling

    def knobs(self) -> dict:
        return {k: getattr(self, k) for k in KNOBS}

    @property
    def point_id(self) -> str:
        """Stable id of the knob combination: the same point in any sweep has the same id. A
        knob added after the first results is left out while at its default, so that those
        results keep their ids (resume, baselines)."""
        knobs = {k: v for k, v in self.knobs().items() if LATER_KNOBS.get(k, object()) != v}
        text = json.dumps(knobs, sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:10]

    @property
    def run_id(self) -> str:
        return f"{self.point_id}-r{self.repeat}"

    def label(self) -> str:
        """Short human name for progress lines."""
        parts = [self.backbone, f"{self.input_size}px", self.pipeline, f"b{self.batch}"]
        if self.backend != "tensorflow":
            parts.insert(0, self.backend)
        if self.workers is not None:
            parts.append(f"w{self.workers}")
        if self.use_multiprocessing is not None:
            parts.append("mp" if self.use_multiprocessing else "threads")
        if self.max_queue_size is not None:
            parts.append(f"q{self.max_queue_size}")
        if self.cache:
            parts.append("cache")
        if self.transfer != "float32":
            parts.append(self.transfer)
        if self.gpus != 1:
            parts.append(f"{self.gpus}gpu")
        if self.hosts != 1:
            parts.append(f"{self.hosts}hosts")
        return " ".join(parts)


KNOBS: dict[str, dataclasses.Field] = {f.name: f for f in dataclasses.fields(RunSpec) if "role" in f.metadata}


def knobs_of(*roles: str) -> tuple[str, ...]:
    """The knobs of these roles, in RunSpec's order."""
    return tuple(name for name, f in KNOBS.items() if f.metadata["role"] in roles)


LATER_KNOBS = {name: f.default for name, f in KNOBS.items() if f.metadata["later"]}  # left out of point_id at these
LOADER_KNOBS = knobs_of("loader")
GROUP_KNOBS = knobs_of("model", "schedule")  # a table each
COLUMN_KNOBS = knobs_of("pipeline", "loader", "device")  # a table's columns
ROW_KNOB = "batch"
_TF, _JAX, _TORCH = (("tensorflow", "pip install tensorflow"), ("jax", "pip install 'gpubench[jax]'"),
                     ("torch", "pip install 'gpubench[torch]'"))
# The package a backend or pipeline imports, and how to install it.
NEEDS = {("backend", "tensorflow"): _TF, ("backend", "jax"): _JAX, ("backend", "torch"): _TORCH,
         ("pipeline", "tfdata"): _TF, ("pipeline", "torch"): _TORCH,
         ("pipeline", "dali"): ("nvidia.dali", "pip install 'gpubench[dali]'")}
LABEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class DataSpec:
    """The synthetic tree a preset asks for when no dataset is given."""

    train: int = 148
    val: int = 30
    classes: int = 3
    image_size: str = "640x480"
    seed: int = 0

    def dirname(self) -> str:
        return f"synthetic-{self.train}-{self.val}-{self.classes}c-{self.image_size}-s{self.seed}"


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    knobs: dict  # knob -> list of values (a scalar in the file is a one-value list)
    data: DataSpec
    repeat: int = 1
    timeout_s: float = TIMEOUT_S
    ceilings: bool = True  # measure the pipeline and model ceilings of every point
    installed_only: bool = False  # drop the points whose backend or pipeline is not installed
    gate: dict = dataclasses.field(default_factory=dict)  # what `gpubench compare --preset` checks
    grids: tuple = ()  # [[grid]] blocks: each overrides some knobs; the sweep is their union

    def knob_sets(self) -> list[dict]:
        """One knob dict per product to expand: [knobs] alone, or [knobs] under each [[grid]]."""
        return [{**self.knobs, **block} for block in self.grids] or [self.knobs]


def parse_size(text: str) -> tuple[int, int]:
    """'640x480' -> (640, 480): width then height, as image tools write it."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", str(text))
    if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
        raise SpecError(f"image size {text!r} is not WIDTHxHEIGHT, e.g. 640x480")
    return int(m.group(1)), int(m.group(2))


def _coerce(knob: str, raw):
    """Turn a TOML or command-line value into the knob's type, or raise a one-line SpecError."""
    kind = KNOBS[knob].type
    text = str(raw).strip()
    if isinstance(raw, str) and text.lower() in ("", "none", "n/a") and "None" in kind:
        return None
    if "bool" in kind:
        if isinstance(raw, bool):
            return raw
        if text.lower() in ("true", "1", "yes"):
            return True
        if text.lower() in ("false", "0", "no"):
            return False
        raise SpecError(f"{knob}={text!r}: expected true or false")
    if "int" in kind:
        if isinstance(raw, bool):
            raise SpecError(f"{knob}={text!r}: expected a whole number")
        try:
            return int(text)
        except ValueError:
            raise SpecError(f"{knob}={text!r}: expected a whole number") from None
    return text


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
    return knob, [_coerce(knob, v) for v in values.split(",")]


def load_preset(name_or_path: str) -> Preset:
    path = Path(name_or_path)
    if not path.suffix:
        path = PRESET_DIR / f"{name_or_path}.toml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in PRESET_DIR.glob("*.toml")))
        raise SpecError(f"no preset {name_or_path!r} (known: {known}; or give a .toml path)")
    try:
        doc = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise SpecError(f"preset {path}: {e}") from None
    unknown = set(doc) - {"description", "knobs", "grid", "data", "repeat", "timeout_s", "ceilings",
                          "installed_only", "gate"}
    if unknown:
        raise SpecError(f"preset {path}: unknown section(s) {sorted(unknown)}")

    def knob_lists(table: dict) -> dict:
        knobs = {}
        for knob, value in table.items():
            if knob not in KNOBS:
                raise SpecError(f"preset {path}: unknown knob {knob!r}; knobs are: {', '.join(KNOBS)}")
            values = value if isinstance(value, list) else [value]
            knobs[knob] = [_coerce(knob, v) for v in values]
        return knobs

    def field(table: dict, key: str, kind: type, default, where: str = ""):
        """A preset value of the right type (an int is a number, a bool is not), range-checked."""
        value = table.get(key, default)
        kinds = (int, float) if kind is float else (kind,)
        if not isinstance(value, kinds) or (isinstance(value, bool) and kind is not bool):
            name = {int: "a whole number", float: "a number", bool: "true or false", str: "a string",
                    dict: "a table", list: "a list of tables"}[kind]
            raise SpecError(f"preset {path}: {where}{key} = {value!r}: expected {name}")
        if kind in (int, float) and key != "seed" and value <= 0:
            raise SpecError(f"preset {path}: {where}{key} = {value!r}: must be more than 0")
        return value

    knobs = knob_lists(field(doc, "knobs", dict, {}))
    blocks = field(doc, "grid", list, [])
    if not all(isinstance(block, dict) for block in blocks):
        raise SpecError(f"preset {path}: each [[grid]] is a table of knobs")
    grids = tuple(knob_lists(block) for block in blocks)
    table = field(doc, "data", dict, {})
    unknown = set(table) - {f.name for f in dataclasses.fields(DataSpec)}
    if unknown:
        raise SpecError(f"preset {path}: [data]: unknown field(s) {sorted(unknown)}")
    data = DataSpec(**{f.name: field(table, f.name, {"int": int, "str": str}[f.type], f.default, "[data] ")
                       for f in dataclasses.fields(DataSpec) if f.name in table})
    try:
        parse_size(data.image_size)
    except SpecError as e:
        raise SpecError(f"preset {path}: [data] {e}") from None
    return Preset(
        name=path.stem,
        description=field(doc, "description", str, ""),
        knobs=knobs,
        data=data,
        repeat=field(doc, "repeat", int, 1),
        timeout_s=float(field(doc, "timeout_s", float, TIMEOUT_S)),
        ceilings=field(doc, "ceilings", bool, True),
        installed_only=field(doc, "installed_only", bool, False),
        gate=field(doc, "gate", dict, {}),
        grids=grids,
    )


def _normalise(spec: RunSpec) -> RunSpec:
    """Blank the loader knobs a pipeline does not use, so equal runs collapse into one point."""
    meaning = knob_meaning(spec.pipeline)
    blank = {k: None for k in LOADER_KNOBS if k not in meaning}
    return dataclasses.replace(spec, **blank)


def expand(knobs: dict, repeat: int = 1) -> list[RunSpec]:
    """The cartesian product of the knob lists, duplicates removed, each point `repeat` times."""
    names = list(knobs)
    points: dict[str, RunSpec] = {}
    for combo in itertools.product(*(knobs[n] for n in names)):
        spec = _normalise(RunSpec(**dict(zip(names, combo))))
        points.setdefault(spec.point_id, spec)
    return [dataclasses.replace(p, repeat=r) for p in points.values() for r in range(repeat)]


def pipeline_ceiling(spec: RunSpec) -> RunSpec:
    """The same feed into the null model: fit then runs as fast as the pipeline delivers."""
    return dataclasses.replace(spec, backbone="null", finetune="full", checkpoint=False, precision="float32",
                               xla="auto", gpus=1, repeat=0, role="ceiling")


def model_ceiling(spec: RunSpec) -> RunSpec:
    """The same model, batch and precision on tensors already in memory: the model alone."""
    return _normalise(dataclasses.replace(spec, pipeline="synthetic", checkpoint=False, cache=None,
                                          interpolation="nearest", repeat=0, role="ceiling"))


def ceilings(grid: list[RunSpec]) -> list[RunSpec]:
    """The probes that give each point its two ceilings, one per distinct pipeline or model
    setting, leaving out those the grid runs anyway. Each is measured like the points it bounds:
    as many repeats as the most any of them has, so that a bound compares a median with a median."""
    have = {p.point_id for p in grid}
    repeats: dict[str, int] = {}  # probe point_id -> repeats it needs
    probes: dict[str, RunSpec] = {}
    for point in grid:
        if point.pipeline == "synthetic" or point.backbone == "null":
            continue
        for probe in (pipeline_ceiling(point), model_ceiling(point)):
            if probe.point_id not in have:
                probes.setdefault(probe.point_id, probe)
                repeats[probe.point_id] = max(repeats.get(probe.point_id, 0), point.repeat + 1)
    return [dataclasses.replace(probe, repeat=r) for pid, probe in probes.items() for r in range(repeats[pid])]


def installed(module: str) -> bool:
    """Whether `module` can be imported here, found without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def frameworks(spec: RunSpec) -> tuple[str, ...]:
    """The packages the point imports: its backend's and its pipeline's."""
    return tuple(module for (knob, value), (module, _) in NEEDS.items() if getattr(spec, knob) == value)


def missing(spec: RunSpec) -> str | None:
    """Why this machine lacks a package the point needs (its backend's, its pipeline's), or None."""
    for (knob, value), (module, how) in NEEDS.items():
        if getattr(spec, knob) == value and not installed(module):
            return f"{knob} {value} needs {module}, which is not installed here ({how})"
    return None


def check_spec(spec: RunSpec) -> None:
    """Refuse a point that cannot run, with a one-line reason."""
    meaning = knob_meaning(spec.pipeline) if spec.pipeline in PIPELINES else {}
    for name, field in KNOBS.items():
        value, allowed, minimum = getattr(spec, name), field.metadata["allowed"], field.metadata["minimum"]
        if value is None and "None" in field.type and (field.metadata["role"] != "loader" or name not in meaning):
            continue  # a loader knob its pipeline does not use
        if allowed and value not in allowed:
            raise SpecError(f"unknown {name} {value!r}; expected one of: {', '.join(map(str, allowed))}")
        if minimum is not None and (not isinstance(value, int) or value < minimum):
            rule = "must be at least 1" if minimum == 1 else f"must be {minimum} or more"
            raise SpecError(f"{name}={value}: {rule}")
        if name == "input_size" and input_size_problem(spec.backbone, value):
            raise SpecError(input_size_problem(spec.backbone, value))
    if spec.window == "auto" and spec.epochs < 2:
        raise SpecError(f"epochs={spec.epochs} leaves no measured window: the first epoch is warm-up (compile, "
                        "loader start); use epochs=2 or more, or window=epochs to time the epochs as asked")
    problem = data_format_problem(spec.backbone, spec.data_format)
    if problem:
        raise SpecError(problem)
    why = missing(spec)
    if why:
        raise SpecError(why)


def build_grid(knob_sets: list[dict], overrides: list[str], repeat: int = 1,
               installed_only: bool = False) -> tuple[list[RunSpec], list[str]]:
    """(the checked grid: the union of the knob sets' products, each with the --set overrides;
    with `installed_only`, without the points whose backend or pipeline this machine lacks, and
    why they were left out)."""
    if repeat < 1:
        raise SpecError(f"--repeat {repeat}: must be at least 1")
    changed = dict(parse_override(text) for text in overrides)
    runs = {s.run_id: s for knobs in knob_sets for s in expand({**knobs, **changed}, repeat)}
    grid, reasons = list(runs.values()), []
    if installed_only:
        why = {p.run_id: missing(p) for p in grid}
        reasons = sorted(set(why.values()) - {None})
        grid = [p for p in grid if not why[p.run_id]]
        if not grid:
            raise SpecError("no point of the grid can run here: " + "; ".join(reasons))
    for point in grid:
        check_spec(point)
    return grid, reasons


def one_point(knobs: dict) -> RunSpec:
    """The checked RunSpec of these knob values."""
    grid, _ = build_grid([{k: [v] for k, v in knobs.items()}], [])
    return grid[0]


def check_label(label: str) -> str:
    if not LABEL_RE.match(label):
        raise SpecError(f"--gpu {label!r}: a label is a plain name of letters, digits, '.', '_', '-'")
    return label
