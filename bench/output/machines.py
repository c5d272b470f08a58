"""Which machine to use: several results folders (one per machine, same preset) side by side. It
formats bench/analyse/best.py's table and computes no figure of its own."""

from __future__ import annotations

from pathlib import Path

from bench.analyse.best import best_per_machine
from bench.analyse.gains import configuration
from bench.output import plots
from bench.results.store import read_json

COLUMNS = {"backbone": "backbone", "machine": "machine", "hardware": "hardware",
           "best configuration": "best configuration", "train_img_s": "images/s", "bound": "bound",
           "cores_to_feed": "CPU cores to keep it fed (all its GPUs)", "img_per_joule": "images per joule (NVML power)",
           "img_s_per_usd_hour": "images/s per $/hour", "img_s_per_1000_usd": "images/s per $1000",
           "seed_total_s": "seed 2019 total, same settings", "total_s": "measured total (s)"}


def _machine_name(env: dict) -> str:
    """'1 x NVIDIA H200', or the CPU where the folder's machine has no GPU."""
    gpus = env.get("gpus") or []
    if gpus:
        names = sorted({g["name"] for g in gpus})
        return f"{len(gpus)} x {names[0]}" if len(names) == 1 else ", ".join(names)
    return f"CPU: {env.get('cpu', '?')} ({env.get('cpu_threads', '?')} threads)"


def render(folders: list[Path], out: Path) -> str:
    """machines-<preset>.md (and its figure) of these results folders; returns its text."""
    best = best_per_machine(folders)
    if len(best):
        best = best.assign(backbone=best.backbone + " " + best.input_size.astype(str) + "px",
                           hardware=[_machine_name(read_json(Path(f) / "env.json")) for f in best.folder],
                           **{"best configuration": configuration(best)})
    lines = ["# Machines side by side", "", f"Folders: {', '.join(f'`{f}`' for f in folders)}", ""]
    figure = plots.machines(best, out.with_suffix(".png"))
    if figure:
        lines += [f"![best images/s per machine]({figure.name})", ""]
    for backbone, group in best.groupby("backbone"):
        table = group[[c for c in COLUMNS if c != "backbone"]].rename(columns=COLUMNS)
        lines += [f"## {backbone}", "", table.round(2).fillna("").to_markdown(index=False), ""]
    notes = sorted({n for n in best.price_note if n})
    if notes:
        lines += ["Prices: " + "; ".join(notes) + " (bench/results/profiles/*.toml)."]
    lines.append("The seed's 2019 column is filled where a machine's best configuration is one the seed "
                 "timed (vgg16, 224x224, 20 epochs, 148 + 30 images, the same loader settings).")
    text = "\n".join(lines) + "\n"
    out.write_text(text)
    return text
