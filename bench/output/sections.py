"""The report's sections after its tables, one function each (markdown lines): the machine and
where it trained, where the time goes, what would feed this GPU, the backends compared, scaling,
the precision gain and the time spent. They format the points table; they compute no figure."""

from __future__ import annotations

import pandas as pd

from bench.analyse import gains, reference, verdicts
from bench.analyse.bounds import ABOVE
from bench.analyse.points import fed_points, records
from bench.output.header import container_gives
from bench.plan.backends import BACKENDS, spread_over_devices
from bench.plan.knobs import PRECISIONS


def _fmt(value, pattern: str) -> str:
    return "" if pd.isna(value) else pattern.format(value)


def bound_cell(bound, doubt) -> str:
    """The bound, or why it is withheld (the verdict gives the reason in full)."""
    if pd.isna(bound) or not bound:
        return ""
    if isinstance(doubt, str) and doubt.startswith("inconsistent"):
        return "inconsistent"
    return f"({bound}?) withheld" if isinstance(doubt, str) and doubt else bound


def where_the_time_goes(points: pd.DataFrame, sweep: dict) -> list[str]:
    """Each point's rate beside its two ceilings, its bound, data wait and MFU; the decode ceilings
    and the verdict."""
    if not verdicts.has_verdict(points):
        return []
    table = pd.DataFrame(
        {
            "configuration": gains.configuration(points),
            "backbone": points.backbone + " " + points.input_size.astype(str) + "px",
            "end to end img/s": points.train_img_s.map(lambda v: _fmt(v, "{:.1f}")),
            "pipeline alone": points.pipeline_img_s.map(lambda v: _fmt(v, "{:.1f}")),
            "model alone": points.model_img_s.map(lambda v: _fmt(v, "{:.1f}")),
            "efficiency": points.efficiency.map(lambda v: _fmt(v, "{:.2f}")),
            "bound": [bound_cell(b, d) for b, d in zip(points.bound, points.get("bound_doubt", [""] * len(points)))],
            "data wait": points.data_wait_frac.map(lambda v: _fmt(v, "{:.0%}")),
            "epoch start (s)": points.epoch_start_s_median.map(lambda v: _fmt(v, "{:.2f}")),
            "window (s)": points.get("window_s", pd.Series(index=points.index, dtype=float)).map(
                lambda v: _fmt(v, "{:.1f}")
            ),
            "validation + checkpoint (s)": points.val_checkpoint_s.map(lambda v: _fmt(v, "{:.1f}")),
            "TFLOP/s": points.achieved_tflops.map(lambda v: _fmt(v, "{:.3f}")),
            "MFU": points.mfu.map(lambda v: _fmt(v, "{:.1%}")),
        }
    )
    if points.backend.nunique() > 1:
        table.insert(1, "backend", points.backend)
    if points.mfu_datasheet.notna().any():
        table["math"] = points.get("matmul_precision", pd.Series(index=points.index, dtype=object)).fillna("")
        table["MFU (datasheet)"] = points.mfu_datasheet.map(lambda v: _fmt(v, "{:.1%}"))
    lines = [
        "## Where the time goes",
        "",
        table.to_markdown(index=False),
        "",
        verdicts.RULE,
        "MFU is the achieved TFLOP/s (the training FLOPs per image, counted from the model's layers: "
        "forward, the weight gradients of the layers that train, the input gradients after the first "
        "that trains) over the peak of the run's devices: gpus x hosts x the peak a large matrix product "
        "reached on one device at the start of the sweep (the best of five windows), run in the same arithmetic "
        "as the model's convolutions; above 100% the model's kernels beat that product. MFU (datasheet) divides "
        "by the datasheet's peak for the `math` the run used: TF32 for float32 on GPUs with TF32 tensor cores "
        "(every backend's default there), bfloat16 or float16 under mixed precision.",
        "",
    ]
    for backend, failed in (sweep.get("peak_errors") or {}).items():
        lines += [
            f"The peak probe failed on {backend} in {precision}, so MFU is empty there: {why}"
            for precision, why in failed.items()
        ] + [""]
    for c in records(gains.decode_ceilings(points)):
        lines += [
            f"Decode ceiling at {c['input_size']}px ({c['interpolation']}): one core reads, decodes and "
            f"resizes {c['core_img_s']:.0f} images/s, so all cores {c['all_cores_img_s']:.0f}; the pipelines "
            f"alone reach {c['efficiency_min']:.0%} to {c['efficiency_max']:.0%} of it"
            + (
                f"; above {ABOVE:.0%} of it the probe (one core for a third of a second, as the first pipeline "
                "ceiling starts) measured low, so here it is no ceiling, only the rate one core decoded then."
                if c["efficiency_max"] > ABOVE
                else "."
            ),
            "",
        ]
    return lines + ["**Verdict.** " + verdicts.verdict(points, trains_on_gpu(sweep)), ""]


def trains_on_gpu(sweep: dict) -> bool:
    """Whether the sweep's runs trained on a GPU (sweep.json's gpu_used; by its label where the doctor
    could not say): a CPU-only run's report gives no GPU section or advice."""
    used = sweep.get("gpu_used")
    return used if isinstance(used, bool) else sweep.get("gpu") != "cpu"


def feed(points: pd.DataFrame, env: dict, figure: str | None) -> list[str]:
    """What would feed this GPU: each pipeline's rate beside the model's, and the CPU cores that
    decode fast enough to keep the model fed."""
    fed = fed_points(points)
    if fed.empty:
        return []
    table = pd.DataFrame(
        {
            "model": fed.backbone
            + " "
            + fed.input_size.astype(str)
            + "px "
            + fed.precision.map(PRECISIONS)
            + " on "
            + fed.backend,
            "pipeline": gains.configuration(fed),
            "model alone": fed.model_img_s.map(lambda v: _fmt(v, "{:.0f}")),
            "end to end": fed.train_img_s.map(lambda v: _fmt(v, "{:.0f}")),
            "pipeline alone": fed.pipeline_img_s.map(lambda v: _fmt(v, "{:.0f}")),
            "of the model's rate": fed.model_share.map(lambda v: _fmt(v, "{:.0%}")),
            "decode per core": fed.decode_core_img_s.map(lambda v: _fmt(v, "{:.0f}")),
            "cores to feed it": fed.cores_to_feed.map(lambda v: _fmt(v, "{:.1f}")),
        }
    ).sort_values(["model", "pipeline"])
    lines = ["## What would feed this GPU", ""] + (
        [f"![images/s by pipeline, the model's rate as a line]({figure})", ""] if figure else []
    )
    return lines + [
        f"Images/s of each pipeline, end to end and alone, beside the model's rate on tensors in memory. Cores "
        f"to feed it = the model's images/s over one core's rate at reading, decoding and resizing this data "
        f"with the keras pipeline's reader: the CPU cores a PIL-decoding loader needs to keep the model busy "
        f"(this machine has {env.get('cpu_threads', '?')} threads{container_gives(env)}). Cores to feed it is the "
        f"total for all the run's GPUs (per GPU: over gpus x hosts). A GPU decoder (dali on a GPU) or a decoded "
        f"cache (`cache`) takes the decode off the cores.",
        "",
        table.to_markdown(index=False, disable_numparse=True),
        "",
    ]


AGAINST_PERFECT = {-1: "below, beyond the noise", 0: "within the noise", 1: "above, beyond the noise"}
HOSTS = "each host a process feeding its own share, keras.distribution.DataParallel over all of them"


def scaling(points: pd.DataFrame) -> list[str]:
    """Images/s on N devices (or hosts) over N times images/s on one (bench/analyse/gains.py)."""
    lines = []
    for knob, what, how in (("gpus", "devices", spread_over_devices()), ("hosts", "hosts", HOSTS)):
        twins = gains.scaling(points, knob)
        if twins.empty:
            continue
        table = pd.DataFrame(
            {
                "configuration": twins.configuration,
                what: twins.devices,
                "img/s on 1": twins.img_s_one.round(1),
                "img/s on N": twins.img_s.round(1),
                "scaling": twins.scaling.round(2),
                "over the repeats": [f"{a:.2f} to {b:.2f}" for a, b in zip(twins.scaling_min, twins.scaling_max)],
                "against perfect": twins.vs_perfect.map(AGAINST_PERFECT),
            }
        )
        lines += [
            f"## Scaling over {what}",
            "",
            f"Scaling = images/s on N {what} / (N x images/s on one); 1.0 is perfect; over the repeats, its "
            "range from their lowest and highest images/s; against perfect, by the noise rule "
            f"(bench/analyse/noise.py). The batch is the global batch, split across the {what} "
            f"({how}).",
            "",
            table.to_markdown(index=False),
            "",
        ]
    return lines


def precision_gain(points: pd.DataFrame) -> list[str]:
    """Whether mixed precision paid: images/s against the same configuration in float32."""
    twins = gains.precision_gain(points)
    if twins.empty:
        return []
    table = pd.DataFrame(
        {
            "configuration": twins.configuration,
            "precision": twins.precision,
            "float32 img/s": twins.img_s_float32.round(1),
            "img/s": twins.img_s.round(1),
            "gain": twins.gain.round(2),
        }
    )
    return [
        "## Mixed precision",
        "",
        "Gain = images/s over the same configuration in float32 (published "
        "2080 Ti figures show about 2x for vgg16 in float16; an input-bound run gains nothing).",
        "",
        table.to_markdown(index=False),
        "",
    ]


def backend_comparison(points: pd.DataFrame) -> list[str]:
    """Images/s of the same configuration on each backend, where a sweep covers more than one."""
    shown = gains.backends_side_by_side(points)
    if shown.empty:
        return []
    for b in BACKENDS:
        if b in shown:
            shown[b] = shown[b].map(lambda v: _fmt(v, "{:.1f}"))
    return [
        "## Backends",
        "",
        "Training images/s of the same model, pipeline, batch and precision on each "
        "Keras backend (the median of the repeats).",
        "",
        shown.to_markdown(index=False, disable_numparse=True),
        "",
    ]


def seed_section(points: pd.DataFrame, sweep: dict, seed: pd.DataFrame | None = None) -> list[str]:
    """Each measured keras point beside the seed's runs with the same loader knobs, or why the figures
    are not comparable. Nothing when no point has the seed's knobs."""
    beside = reference.beside_seed(points, sweep, seed)
    if beside is None:
        return []
    lines = ["## Beside the seed (2019)", ""]
    if beside.differences:
        return lines + [
            "Some points have the seed's loader settings, but its totals are not put beside "
            "them: this sweep ran " + "; ".join(beside.differences) + ".",
            "",
        ]
    lines.append(
        f"The seed's runs on the same GPU ({beside.label}); "
        if beside.same_gpu
        else f"This machine is `{beside.label}`; the seed's figures come from its own machines, named in each row. "
    )
    lines[-1] += (
        "Both totals cover 20 epochs with validation and saving the best model each epoch; "
        "speed-up is the seed's total over this one."
    )
    m = beside.matched
    table = pd.DataFrame(
        {
            "batch": m.batch,
            "workers": m.workers,
            "multiprocessing": m.use_multiprocessing,
            "queue": m.max_queue_size,
            "gpus": m.gpus,
            "measured total (s)": m.total_s.round(1),
            "of which validation + checkpoint (s)": m.val_checkpoint_s.round(1),
            "seed machine": m.seed_machine,
            "seed total (s)": m.total_s_seed,
            "speed-up": m.speed_up.round(2),
        }
    ).sort_values(["gpus", "multiprocessing", "queue", "batch"], ascending=[True, True, True, False])
    return lines + ["", table.to_markdown(index=False), ""]


def time_spent(frame: pd.DataFrame) -> list[str]:
    """Of the sweep's wall time, how much was measured, and where the rest went."""
    table = gains.time_spent(frame) if "window_s" in frame and frame.window_s.notna().any() else pd.DataFrame()
    if table.empty:
        return []
    wall, measured = table["wall (min)"].sum(), table["measured windows (min)"].sum()
    return [
        "## Where the sweep's time went",
        "",
        f"Of {wall:.1f} minutes of runs (ceilings included), {measured:.1f} were measured windows "
        f"({measured / wall:.0%}). Start-up is process (or fork) start to model built: the import of the "
        "framework and Keras, the devices, the model and data, the FLOP count; warm-up "
        f"is training start until the window opened (a few steps, or the first epoch where it fills a cache or "
        f"the feed is in memory): compile (its time beyond as many steady steps) and the loader's start are "
        "part of it; other is validation and checkpoints, sampler start and teardown."
        + (
            " A run compiled from the cache when every program it compiled was already in the persistent "
            "compilation cache."
            if "compiled from cache" in table
            else ""
        )
        + (
            " A run forked from its backend's launcher counts its start-up from the fork: the launcher's own "
            "import is paid once a sweep, in no run."
            if "forked" in table
            else ""
        ),
        "",
        table.round(2).to_markdown(index=False, disable_numparse=True),
        "",
    ]
