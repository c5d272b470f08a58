"""The best configuration of each model on each machine, with what it costs: images/s, per joule,
per dollar (the profile's prices), from several results folders' points tables. The machines
report formats this table and computes nothing."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.analyse.points import device_count, read
from bench.analyse.reference import seed_figure
from bench.results import profiles
from bench.results.store import read_json


def best_per_machine(folders: list[Path]) -> pd.DataFrame:
    """One row per folder and backbone: the point with the most images/s, its setting, bound, cores
    to feed it, images per joule (the energy counters over the window, else the mean power of all
    its GPUs), images/s per $/hour and per $1000 where the GPU's profile has prices, the seed's 2019
    total for the same settings, and the folder it came from."""
    rows = []
    for folder in folders:
        points = read(folder)
        points = points[(points.role == "point") & (points.repeats_ok > 0)]
        sweep = read_json(folder / "sweep.json")
        label = sweep.get("gpu", folder.parent.name)
        profile = profiles.load(label)
        points = points.assign(device_count=device_count(points))
        for backbone, group in points.groupby("backbone"):
            best = group.loc[group.train_img_s.idxmax()]
            power = best.get("gpu_power_w_mean")  # the mean of one GPU's samples (the sampler pools them)
            power = power * best.device_count if power and pd.notna(power) else None
            per_joule = best.get("img_per_joule")
            per_hour, price = profile.get("price_per_hour_usd"), profile.get("price_usd")
            rows.append({
                "folder": folder, "backbone": backbone, "input_size": best.input_size, "machine": label,
                "setting": best.setting, "batch": best.batch, "train_img_s": best.train_img_s,
                "bound": best.get("bound") if pd.notna(best.get("bound")) else "",
                "cores_to_feed": best.get("cores_to_feed"),
                "img_per_joule": per_joule if pd.notna(per_joule) else (best.train_img_s / power if power else None),
                "img_s_per_usd_hour": best.train_img_s / per_hour if per_hour else None,
                "img_s_per_1000_usd": 1000 * best.train_img_s / price if price else None,
                "seed_total_s": seed_figure(best, sweep), "total_s": best.total_s,
                "price_note": profile.get("price_note", ""),
            })
    return pd.DataFrame(rows)
