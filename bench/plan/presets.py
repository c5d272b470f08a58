"""Presets: a named sweep in a TOML file (bench/plan/presets/<name>.toml): its knob lists, the data
it trains on when none is given, repeats, timeout, ceilings and the compare gate."""

from __future__ import annotations

import dataclasses
import re
import tomllib
import typing
from dataclasses import dataclass
from pathlib import Path

from bench.plan.knobs import KNOBS, SpecError, coerce

PRESET_DIR = Path(__file__).parent / "presets"
TIMEOUT_S = 900.0  # seconds one run may take, where neither the preset nor the command line says


@dataclass(frozen=True)
class DataSpec:
    """The synthetic tree a preset asks for when no dataset is given."""

    train: int = dataclasses.field(default=148, metadata={"help": "training images", "positive": True})
    val: int = dataclasses.field(default=30, metadata={"help": "validation images", "positive": True})
    classes: int = dataclasses.field(default=3, metadata={"help": "class folders", "positive": True})
    image_size: str = dataclasses.field(default="640x480", metadata={"help": "WIDTHxHEIGHT"})
    seed: int = dataclasses.field(default=0, metadata={"help": "the random images' seed"})

    def dirname(self) -> str:
        """The tree's folder name under data/: every field, so a changed one makes a new tree."""
        return f"synthetic-{self.train}-{self.val}-{self.classes}c-{self.image_size}-s{self.seed}"


DATA_TYPES: dict[str, type] = typing.get_type_hints(DataSpec)  # field -> its type (int, str), from the annotations


@dataclass(frozen=True)
class Preset:
    """A named sweep as its TOML file states it: knob lists, data, repeats, timeout, ceilings, gate."""

    name: str
    description: str
    knobs: dict  # knob -> list of values (a scalar in the file is a one-value list)
    data: DataSpec
    repeat: int = 1
    # repeats beyond the first only where a verdict or the ranking of the fastest depends on them
    # (pyperf's way, bench/passes.py); `--repeat N` runs every point N times
    repeat_as_needed: bool = False
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


def load_preset(name_or_path: str) -> Preset:
    """A preset by name (bench/plan/presets/) or .toml path, every field checked; a SpecError line if not."""
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
    unknown = set(doc) - {
        "description",
        "knobs",
        "grid",
        "data",
        "repeat",
        "repeat_as_needed",
        "timeout_s",
        "ceilings",
        "installed_only",
        "gate",
    }
    if unknown:
        raise SpecError(f"preset {path}: unknown section(s) {sorted(unknown)}")

    def knob_lists(table: dict) -> dict:
        knobs = {}
        for knob, value in table.items():
            if knob not in KNOBS:
                raise SpecError(f"preset {path}: unknown knob {knob!r}; knobs are: {', '.join(KNOBS)}")
            values = value if isinstance(value, list) else [value]
            knobs[knob] = [coerce(knob, v) for v in values]
        return knobs

    def field(table: dict, key: str, kind: type, default, where: str = ""):
        """A preset value of the right type (an int is a number, a bool is not), range-checked."""
        value = table.get(key, default)
        kinds = (int, float) if kind is float else (kind,)
        if not isinstance(value, kinds) or (isinstance(value, bool) and kind is not bool):
            name = {
                int: "a whole number",
                float: "a number",
                bool: "true or false",
                str: "a string",
                dict: "a table",
                list: "a list of tables",
            }[kind]
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
    data = DataSpec(
        **{
            f.name: field(table, f.name, DATA_TYPES[f.name], f.default, "[data] ")
            for f in dataclasses.fields(DataSpec)
            if f.name in table
        }
    )
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
        repeat_as_needed=field(doc, "repeat_as_needed", bool, False),
        timeout_s=float(field(doc, "timeout_s", float, TIMEOUT_S)),
        ceilings=field(doc, "ceilings", bool, True),
        installed_only=field(doc, "installed_only", bool, False),
        gate=field(doc, "gate", dict, {}),
        grids=grids,
    )
