"""What several commands check first: a grid built from --set (saying what it left out), a results
folder, an --out folder that is gpubench's or new."""

from __future__ import annotations

import sys
from pathlib import Path

from bench.plan.grid import build_grid
from bench.plan.knobs import RunSpec, SpecError
from bench.results.store import foreign_files


def checked_grid(
    knob_sets: list[dict], overrides: list[str], repeat: int = 1, installed_only: bool = False, gpu: str = "auto"
) -> list[RunSpec]:
    """The checked grid, backend "auto" made the first backend that trains on `gpu`'s GPUs; what
    installed_only left out, and the points a user's model cannot take (a saved .keras model keeps
    its dtype policy and layout), are said on standard error."""
    from bench.run.doctor import backend_for
    from bench.run.skips import user_model_cannot
    from models.user import is_user_model

    grid, left_out = build_grid(knob_sets, overrides, repeat, installed_only, lambda gpus: backend_for(gpu, gpus))
    cannot = {s.run_id: why for s in grid if is_user_model(s.backbone) and (why := user_model_cannot(s))}
    grid = [s for s in grid if s.run_id not in cannot]
    left_out = list(left_out) + sorted(set(cannot.values()))
    if not grid:
        raise SpecError(f"no point left to run: {left_out[-1]}")
    for reason in left_out:
        print(f"left out of the grid: {reason}", file=sys.stderr)
    return grid


def results_folder(path: str) -> Path:
    """`path`, refused unless it holds a runs.jsonl."""
    folder = Path(path)
    if not (folder / "runs.jsonl").is_file():
        raise SpecError(f"{folder} has no runs.jsonl: not a results folder")
    return folder


def check_out(out: str | None, force: bool | None) -> None:
    """--out must be a folder that is gpubench's or new: never a file, never the user's own
    files, unless `force` (the user's --force; None for a command that has none)."""
    if out is None:
        return
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise SpecError(f"--out {out} is a file: give a folder for the results")
    theirs = foreign_files(folder)
    if theirs and not force:
        shown = ", ".join(theirs[:3]) + (", ..." if len(theirs) > 3 else "")
        raise SpecError(
            f"--out {out} holds files gpubench did not write ({shown}): choose another folder"
            + (", or --force to write there anyway" if force is not None else "")
        )


def check_file(out: str | Path | None, force: bool, ours=None) -> None:
    """A file the user named for a command to write (`-`, standard output, always goes): refused,
    before any work, where it exists, unless `force` or `ours(path)` says gpubench wrote it."""
    if out is None or str(out) == "-":
        return
    path = Path(out)
    if path.is_dir():
        raise SpecError(f"{out} is a folder: give the file to write")
    if path.exists() and not force and not (ours and ours(path)):
        raise SpecError(
            f"{out} exists and gpubench overwrites nothing of yours: name another file, or add --force to replace it"
        )


def check_profile(profile: str | None, specs: list) -> None:
    """--profile POINT_ID names a point of this sweep (or is "fastest": the default)."""
    ids = sorted({s.point_id for s in specs})
    if profile and profile != "fastest" and profile not in ids:
        raise SpecError(
            f"--profile {profile}: no such point in this sweep; its points are "
            f"{', '.join(ids[:6])}{', ...' if len(ids) > 6 else ''} (see --dry-run or points.csv)"
        )
