"""Which machine to use: several results folders (one per machine, same preset) side by side."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.output import plots
from bench.results import profiles
from bench.analyse.reference import seed_figure
from bench.analyse.points import device_count, read
from bench.results.store import read_json


def _machine_name(env: dict) -> str:
    gpus = env.get("gpus") or []
    if gpus:
        names = sorted({g["name"] for g in gpus})
        return f"{len(gpus)} x {names[0]}" if len(names) == 1 else ", ".join(names)
    return f"CPU: {env.get('cpu', '?')} ({env.get('cpu_threads', '?')} threads)"


def best_per_machine(folders: list[Path]) -> pd.DataFrame:
    rows = []
    for folder in folders:
        points = read(folder)
        points = points[(points.role == "point") & (points.repeats_ok > 0)]
        env, sweep = read_json(folder / "env.json"), read_json(folder / "sweep.json")
        label = sweep.get("gpu", folder.parent.name)
        profile = profiles.load(label)
        points = points.assign(device_count=device_count(points))
        for backbone, group in points.groupby("backbone"):
            best = group.loc[group.train_img_s.idxmax()]
            power = best.get("gpu_power_w_mean")  # the mean of one GPU's samples (the sampler pools them)
            if power and pd.notna(power):
                power = power * best.device_count
            per_joule = best.get("img_per_joule")  # the energy counter over the window, else sampled power
            per_hour = profile.get("price_per_hour_usd")
            price = profile.get("price_usd")
            rows.append({
                "backbone": f"{backbone} {best.input_size}px", "machine": label, "hardware": _machine_name(env),
                "best configuration": f"{best.pipeline} b{best.batch}"
                                      + (f" w{int(best.workers)}" if pd.notna(best.get("workers")) else ""),
                "train_img_s": best.train_img_s, "bound": best.get("bound") if pd.notna(best.get("bound")) else "",
                "CPU cores to keep it fed (all its GPUs)": best.get("cores_to_feed"),
                "img_per_joule": per_joule if pd.notna(per_joule) else (
                    best.train_img_s / power if power and pd.notna(power) else None),
                "img_s_per_usd_hour": best.train_img_s / per_hour if per_hour else None,
                "img_s_per_1000_usd": 1000 * best.train_img_s / price if price else None,
                "seed 2019 total, same settings": seed_figure(best, sweep),
                "measured total (s)": best.total_s,
                "price_note": profile.get("price_note", ""),
            })
    return pd.DataFrame(rows)


def render(folders: list[Path], out: Path) -> str:
    best = best_per_machine(folders)
    lines = ["# Machines side by side", "", f"Folders: {', '.join(f'`{f}`' for f in folders)}", ""]
    figure = plots.machines(best.assign(backbone=best.backbone), out.with_suffix(".png"))
    if figure:
        lines += [f"![best images/s per machine]({figure.name})", ""]
    for backbone, group in best.groupby("backbone"):
        table = group.drop(columns=["backbone", "price_note"]).rename(columns={
            "train_img_s": "images/s", "img_per_joule": "images per joule (NVML power)",
            "img_s_per_usd_hour": "images/s per $/hour", "img_s_per_1000_usd": "images/s per $1000"})
        lines += [f"## {backbone}", "", table.round(2).fillna("").to_markdown(index=False), ""]
    notes = sorted({n for n in best.price_note if n})
    if notes:
        lines += ["Prices: " + "; ".join(notes) + " (bench/results/profiles/*.toml)."]
    lines.append("The seed's 2019 column is filled where a machine's best configuration is one the seed "
                 "timed (vgg16, 224x224, 20 epochs, 148 + 30 images, the same loader settings).")
    text = "\n".join(lines) + "\n"
    out.write_text(text)
    return text
