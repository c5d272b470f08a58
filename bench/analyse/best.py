"""The best configuration of each model on each machine, with what it costs: images/s, per joule,
per dollar (the profile's prices), from several results folders' points tables. The machines
report formats this table and computes nothing."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.analyse.bounds import BUSY_PCT, load_case, rate_of
from bench.analyse.noise import Noise, combined, differ, of_points
from bench.analyse.points import device_count, read
from bench.analyse.reference import seed_figure
from bench.results import profiles
from bench.results.store import read_json


def machine_names(folders: list[Path]) -> list[str]:
    """Each folder's machine: its GPU label, with the host where two folders share a label (two
    CPU machines are both `cpu`), and the folder's name where even that is shared."""
    labels = [read_json(Path(f) / "sweep.json").get("gpu", Path(f).parent.name) for f in folders]
    hosts = [read_json(Path(f) / "env.json").get("host") or Path(f).parent.name for f in folders]
    names = [f"{label}-{host}" if labels.count(label) > 1 else label for label, host in zip(labels, hosts)]
    for depth in range(1, max((len(Path(f).parts) for f in folders), default=1) + 1):
        named = [f"{n}-{'-'.join(Path(f).parts[-depth:])}" if names.count(n) > 1 else n for n, f in zip(names, folders)]
        if len(set(named)) == len(named):
            return named
    return [f"{n}-{i + 1}" for i, n in enumerate(names)]  # the same folder given twice


def best_per_machine(folders: list[Path], prices: dict[str, float] | None = None) -> pd.DataFrame:
    """One row per folder and backbone: the point with the most images/s as the folder's own
    points.csv gives it (its bound and the doubt that withholds it, its repeats' range), its setting,
    cores to feed it, images per joule (the energy counters over the window, else the mean power of
    all its GPUs), images per dollar at `prices` (machine -> $ an hour) or the GPU profile's price,
    images/s per $1000, the seed's 2019 total for the same settings, and the folder it came from."""
    rows = []
    for folder, name in zip(folders, machine_names(folders)):
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
            seed = seed_figure(best, sweep) or (None, "")
            per_hour = (prices or {}).get(name) or profile.get("price_per_hour_usd")
            price = profile.get("price_usd")
            rows.append(
                {
                    "folder": folder,
                    "backbone": backbone,
                    "input_size": best.input_size,
                    "machine": name,
                    "setting": best.setting,
                    "batch": best.batch,
                    "train_img_s": best.train_img_s,
                    "train_img_s_min": best.get("train_img_s_min"),
                    "train_img_s_max": best.get("train_img_s_max"),
                    "repeats_ok": int(best.repeats_ok),
                    "train_img_s_geo": best.get("train_img_s_geo"),
                    "noise_sd": best.get("noise_sd"),
                    "noise_df": best.get("noise_df"),
                    "bound": best.get("bound") if pd.notna(best.get("bound")) else "",
                    "bound_doubt": best.get("bound_doubt") if isinstance(best.get("bound_doubt"), str) else "",
                    "others_cpu_pct": best.get("others_cpu_pct"),
                    "cores_to_feed": best.get("cores_to_feed"),
                    "img_per_joule": per_joule
                    if pd.notna(per_joule)
                    else (best.train_img_s / power if power else None),
                    "img_per_usd": best.train_img_s * 3600 / per_hour if per_hour else None,
                    "img_s_per_1000_usd": 1000 * best.train_img_s / price if price else None,
                    "seed_total_s": seed[0],
                    "seed_machine": seed[1],
                    "total_s": best.total_s,
                    "price_note": f"{name}: ${per_hour:g} an hour as given"
                    if (prices or {}).get(name)
                    else profile.get("price_note", ""),
                }
            )
    return pd.DataFrame(rows)


def load_apart(first: pd.Series, second: pd.Series) -> str:
    """Why two machines' best rates cannot be set against each other for load, in words ('' where they
    can): the load rule (bounds.load_case) over the two machines' shares of other work."""
    shares = {r.machine: r.get("others_cpu_pct") for r in (first, second) if pd.notna(r.get("others_cpu_pct"))}
    case = load_case(shares.values())
    said = " and ".join(f"{share:.0f}% on {machine}" for machine, share in shares.items())
    over = f" (over {BUSY_PCT:.0f}%)" if case == "over" else ""
    return f"other work took {said} of the CPU while they ran{over}" if case else ""


def leader(group: pd.DataFrame) -> tuple[pd.Series, pd.Series | None, Noise | None, int]:
    """(the fastest machine's row, the runner-up's, the two folders' noise pooled, +1 where the
    fastest is ahead beyond that noise (bench/analyse/noise.py) and the two ran under alike load
    (load_apart), else 0)."""
    ranked = group.sort_values("train_img_s", ascending=False)
    if len(ranked) == 1:
        return ranked.iloc[0], None, None, 0
    first, second = ranked.iloc[0], ranked.iloc[1]
    noise = combined(of_points(ranked.iloc[[0]]), of_points(ranked.iloc[[1]]))
    (a, n_a), (b, n_b) = rate_of(first, "train_img_s"), rate_of(second, "train_img_s")
    return first, second, noise, 0 if load_apart(first, second) else max(0, differ(a, n_a, b, n_b, noise))
