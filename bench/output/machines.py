"""Which machine to use: several results folders (one per machine, same preset) side by side,
ending with the pick. It formats bench/analyse/best.py's table and computes no figure of its own
but the ratio the pick states."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.analyse.best import best_per_machine, leader, load_apart
from bench.analyse.gains import configuration
from bench.output import plots
from bench.output.sections import bound_cell
from bench.plan.knobs import SpecError
from bench.results.store import read_json

HEADING = "# Machines side by side"
COLUMNS = {
    "backbone": "backbone",
    "machine": "machine",
    "hardware": "hardware",
    "best configuration": "best configuration",
    "rate": "images/s (range, runs)",
    "bound cell": "bound",
    "cores_to_feed": "CPU cores to keep it fed (all its GPUs)",
    "img_per_joule": "images per joule (NVML power)",
    "per usd": "images per $",
    "img_s_per_1000_usd": "images/s per $1000",
    "seed_total_s": "seed 2019 total, same settings",
    "total_s": "measured total (s)",
}


def _machine_name(env: dict) -> str:
    """'1 x NVIDIA H200', or the CPU where the folder's machine has no GPU."""
    gpus = env.get("gpus") or []
    if gpus:
        names = sorted({g["name"] for g in gpus})
        return f"{len(gpus)} x {names[0]}" if len(names) == 1 else ", ".join(names)
    return f"CPU: {env.get('cpu', '?')} ({env.get('cpu_threads', '?')} threads)"


def written_by_gpubench(path: Path) -> bool:
    """Whether the file is a machines report (gpubench may rewrite it)."""
    with open(path, errors="replace") as f:
        return f.readline().strip() == HEADING


def parse_prices(given: list[str]) -> dict[str, float]:
    """--price MACHINE=USD_PER_HOUR, each checked: machine -> dollars an hour."""
    prices = {}
    for item in given:
        name, _, value = item.partition("=")
        try:
            prices[name] = float(value)
        except ValueError:
            prices[name] = -1.0
        if not name or prices[name] <= 0:
            raise SpecError(f"--price {item}: expected MACHINE=USD_PER_HOUR, e.g. --price cpu-hostA=0.40")
    return prices


def _rate(row) -> str:
    if row.repeats_ok < 2 or pd.isna(row.train_img_s_min):
        return f"{row.train_img_s:.1f} (1 run)"
    return f"{row.train_img_s:.1f} ({row.train_img_s_min:.1f}-{row.train_img_s_max:.1f}, {row.repeats_ok} runs)"


def pick(group: pd.DataFrame) -> str:
    """The closing sentence for one backbone: which machine, by how much over the next, and how sure."""
    first, second, noise, ahead = leader(group)
    what = f"For {first.backbone}, pick **{first.machine}** ({first.hardware}): {first.train_img_s:.0f} images/s"
    if second is None:
        return what + ", the only machine measured."
    load = load_apart(first, second)
    sure = (
        f"confident: ahead beyond the noise ({noise.says()})"
        if ahead
        else f"not confident: {load}, so measure both again on quiet machines before paying for either"
        if load
        else f"not confident: the difference is within the noise ({noise.says()}), so measure again "
        "before paying for it"
    )
    line = (
        f"{what}, {first.train_img_s / second.train_img_s:.2f}x {second.machine}'s {second.train_img_s:.0f} ({sure})."
    )
    priced = group[group.img_per_usd.notna()]
    if len(priced) > 1:
        cheap = priced.loc[priced.img_per_usd.idxmax()]
        line += f" Per dollar, {cheap.machine} trains the most: {cheap.img_per_usd:,.0f} images per $."
    elif len(priced) < len(group):
        line += " Give prices with --price MACHINE=USD_PER_HOUR (e.g. --price cpu-hostA=0.40) for images per dollar."
    return line


def render(folders: list[Path], out: Path, plot: bool = False, prices: dict[str, float] | None = None) -> str:
    """machines-<preset>.md (and with `plot` its figure) of these results folders, which are only
    read; returns its text."""
    best = best_per_machine(folders, prices)
    unknown = sorted(set(prices or {}) - set(best.get("machine", [])))
    if unknown:
        raise SpecError(
            f"--price {unknown[0]}: no such machine; the machines are {', '.join(sorted(set(best.machine)))}"
        )
    if len(best):
        best = best.assign(
            backbone=best.backbone + " " + best.input_size.astype(str) + "px",
            hardware=[_machine_name(read_json(Path(f) / "env.json")) for f in best.folder],
            rate=[_rate(r) for r in best.itertuples()],
            seed_total_s=[
                f"{t:.1f} s ({m})" if pd.notna(t) else "" for t, m in zip(best.seed_total_s, best.seed_machine)
            ],
            **{"per usd": [f"{v:,.0f}" if pd.notna(v) else "" for v in best.img_per_usd]},
            **{
                "best configuration": configuration(best),
                "bound cell": [bound_cell(b, d) for b, d in zip(best.bound, best.bound_doubt)],
            },
        )
    lines = [HEADING, "", f"Folders: {', '.join(f'`{f}`' for f in folders)}", ""]
    figure = plots.machines(best, out.with_suffix(".png")) if plot else None
    if figure:
        lines += [f"![best images/s per machine]({figure.name})", ""]
    picks = []
    for backbone, group in best.groupby("backbone"):
        table = group[[c for c in COLUMNS if c != "backbone"]].rename(columns=COLUMNS)
        lines += [
            f"## {backbone}",
            "",
            table.round(2).astype(object).where(table.notna(), "").to_markdown(index=False),
            "",
        ]
        picks.append(pick(group))
    notes = sorted({n for n in best.get("price_note", []) if n})
    if notes:
        lines += ["Prices: " + "; ".join(notes) + " (bench/results/profiles/*.toml, or --price)."]
    lines.append(
        "The seed's 2019 column is filled where a machine's best configuration is one the seed "
        "timed (vgg16, 224x224, 20 epochs, 148 + 30 images, the same loader settings)."
    )
    lines += ["", "## Pick", ""] + [f"- {p}" for p in picks] if picks else []
    text = "\n".join(lines) + "\n"
    out.write_text(text)
    return text
