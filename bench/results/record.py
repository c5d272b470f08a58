"""RunRecord: one flat row per run, the only thing a worker hands back to the runner.

Its fields are who the run is, its knobs (RunSpec's own fields: the knobs are defined once, in
bench/plan/knobs.py) and what it measured, in that order: the columns of runs.csv. It has slots:
a misspelt column raises where it is set instead of vanishing from the stored row.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass

import numpy as np

from bench.plan.knobs import KNOBS, PRECISIONS, RunSpec

SCHEMA = 2  # 2: rates and summaries over the measured window, fixed costs apart; identity of the code and machine


@dataclass
class _Identity:
    schema: int = SCHEMA
    run_id: str = ""
    point_id: str = ""
    repeat: int = 0
    role: str = "point"  # or "ceiling": a probe for other points' pipeline or model ceiling
    profiled: bool = False  # traced by the backend's profiler (--profile): left out of the tables and verdicts
    timestamp: str = ""
    status: str = "error"
    error: str = ""
    gpubench: str = ""  # the version that measured it
    commit: str = ""  # its git commit ("-dirty" with uncommitted changes)
    machine: str = ""  # the machine's fingerprint (bench.results.machine.fingerprint_id): CPU, GPUs, driver, frameworks
    host: str = ""


@dataclass
class _Measured:
    # what the run resolved its knobs to
    loader: str = ""  # what the loader knobs meant in this pipeline
    train_steps: int | None = None
    val_steps: int | None = None
    train_images_per_epoch: int | None = None  # of the whole run (every host's share)
    host_batch: int | None = None  # each host's share of the batch (batch / hosts; a pipeline's own: its first batch's)
    input_shape: str = ""  # one example of the model's first input as fed, e.g. 96x96x3: the job's image size
    classes: int | None = None
    images_skipped: int | None = None
    weights: str = ""
    jit_compile: bool | None = None
    matmul_precision: str = ""  # the arithmetic of convolutions and matrix products: float32, tf32, ...
    cache_hit: bool | None = None  # every compilation came from the persistent cache (None: nothing compiled)
    backend_version: str = ""
    devices: str = ""  # what gpus resolved to, e.g. "2 x GPU" or "2 x CPU (logical)"
    train_device: str = ""  # where the backend trained, as it names it: "gpu: NVIDIA H200", "cpu: cpu", "mps: mps"
    train_cuda: str = ""  # the CUDA runtime the backend loaded (empty on a CPU)
    train_cudnn: str = ""  # the cuDNN it loaded
    # timings (seconds unless named); rates are over the measured window: after the warm-up steps
    wall_s: float | None = None  # the worker process from its start: imports, model build, teardown
    startup_s: float | None = None  # process (or fork) start until the model was built: the parts below and more
    import_s: float | None = None  # process (or fork) start until the framework and Keras were imported
    device_s: float | None = None  # the devices set up and asked where the run trains
    model_s: float | None = None  # the data index, model and feeds built
    flops_s: float | None = None  # the model's FLOPs counted (the rest of start-up: a pipeline ceiling's decode probe)
    forked: bool | None = None  # forked from its backend's launcher (bench/run/launcher.py), not a fresh process
    warmup_s: float | None = None  # training start until the window opened
    warmup_steps: int | None = None  # the first epoch's steps before the window (all of them: a whole epoch)
    compile_s: float | None = None  # the warm-up's time beyond as many steady steps, less loader_start_s
    loader_start_s: float | None = None  # the first epoch's start until its first batch was ready
    window_s: float | None = None  # the measured window's training steps
    window_steps: int | None = None
    window_images: int | None = None
    total_s: float | None = None  # all epochs with validation, as the seed timed them
    first_epoch_s: float | None = None
    epoch_s_median: float | None = None
    val_s_total: float | None = None
    checkpoint_s_total: float | None = None  # saving the best model each epoch, in total_s too
    train_img_s: float | None = None  # over the window
    step_ms_mean: float | None = None
    step_ms_p50: float | None = None  # from the per-step marks (pipelines; none for tensors in memory)
    step_ms_p90: float | None = None
    epochs_timed: int | None = None
    data_wait_frac: float | None = None  # share of step time spent waiting for the next batch
    data_wait_ms_p50: float | None = None
    epoch_start_s_median: float | None = None  # a window epoch's begin until its first batch was ready
    final_loss: float | None = None  # the last epoch's training loss
    hosts_agree: bool | None = None  # hosts > 1: every process ended with the same training loss
    train_gflops_per_image: float | None = None  # forward + the gradients backpropagation computes (models.flops)
    # the layer types models.flops cannot count (left out of the FLOPs), or why none were
    flops_uncounted: str | None = None
    decode_img_s_core: float | None = None  # pipeline-ceiling runs: one core's decode+resize rate
    # samplers, over the measured window; run_*: over the whole run
    samples: int | None = None
    cpu_util_mean: float | None = None
    cpu_util_p90: float | None = None
    cpu_util_max: float | None = None
    proc_cpu_pct_mean: float | None = None
    proc_cpu_pct_p90: float | None = None
    proc_cpu_pct_max: float | None = None
    rss_peak_mb: float | None = None  # the process tree's memory: PSS where the platform has it (rss_measure)
    rss_measure: str | None = None  # pss, uss or rss: what rss_peak_mb sums per process
    threads_max: float | None = None
    gpu_util_mean: float | None = None
    gpu_util_p90: float | None = None
    gpu_util_max: float | None = None
    gpu_mem_peak_mb: float | None = None  # TensorFlow's allocator peak, NVML's where there is none
    gpu_mem_nvml_peak_mb: float | None = None
    gpu_power_w_mean: float | None = None
    gpu_power_w_max: float | None = None
    gpu_sm_clock_mhz_mean: float | None = None
    gpu_temp_c_max: float | None = None
    gpu_energy_j: float | None = None  # NVML's energy counter over the window, all GPUs
    img_per_joule: float | None = None
    run_samples: int | None = None
    run_cpu_util_mean: float | None = None
    run_proc_cpu_pct_mean: float | None = None
    run_rss_peak_mb: float | None = None
    run_gpu_util_mean: float | None = None
    run_gpu_mem_nvml_peak_mb: float | None = None
    run_gpu_power_w_mean: float | None = None
    run_gpu_energy_j: float | None = None
    gpu_note: str = ""  # why the GPU columns are empty
    sampler_error: str = ""  # a sampler that failed during the run, and why: its columns are empty


class _Row:
    __slots__ = ()  # with RunRecord's slots: a column not declared cannot be set

    @classmethod
    def for_spec(cls, spec: RunSpec, **fields) -> RunRecord:
        """The row of `spec`'s run: its ids and knobs filled from the spec, stamped now, `fields` as measured."""
        return cls(
            run_id=spec.run_id,
            point_id=spec.point_id,
            repeat=spec.repeat,
            role=spec.role,
            profiled=spec.profile,
            timestamp=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            **spec.knobs(),
            **fields,
        )

    def fill(self, figures: dict) -> None:
        """Sets each of `figures` as a column; a name that is no column is an error, not a lost figure."""
        unknown = sorted(set(figures) - set(COLUMNS))
        if unknown:
            raise AttributeError(f"no such column in RunRecord: {', '.join(unknown)}")
        for key, value in figures.items():
            setattr(self, key, value)

    def to_dict(self) -> dict:
        """The row as the store writes it: one flat dict, every column."""
        return dataclasses.asdict(self)


def _fields(fields) -> list[tuple]:
    return [(f.name, f.type, dataclasses.field(default=f.default)) for f in fields]


# knobs as asked for; a loader knob the pipeline does not use is empty
RunRecord = dataclasses.make_dataclass(
    "RunRecord",
    _fields(dataclasses.fields(_Identity)) + _fields(KNOBS.values()) + _fields(dataclasses.fields(_Measured)),
    bases=(_Row,),
    slots=True,
)
COLUMNS = [f.name for f in dataclasses.fields(RunRecord)]


class SchemaError(ValueError):
    """A row this version cannot read."""


# The sampler summaries kept over the whole run too, as run_* (schema 1 took them over the whole
# run only).
RUN_FIGURES = (
    "samples",
    "cpu_util_mean",
    "proc_cpu_pct_mean",
    "rss_peak_mb",
    "gpu_util_mean",
    "gpu_mem_nvml_peak_mb",
    "gpu_power_w_mean",
)
_WINDOW_SUMMARIES = (
    "samples",
    "cpu_util_mean",
    "cpu_util_p90",
    "cpu_util_max",
    "proc_cpu_pct_mean",
    "proc_cpu_pct_p90",
    "proc_cpu_pct_max",
    "rss_peak_mb",
    "threads_max",
    "gpu_util_mean",
    "gpu_util_p90",
    "gpu_util_max",
    "gpu_mem_nvml_peak_mb",
    "gpu_power_w_mean",
    "gpu_power_w_max",
    "gpu_sm_clock_mhz_mean",
    "gpu_temp_c_max",
)


def _v1_to_v2(row: dict, env: dict) -> dict:
    """Schema 1 timed the epochs as asked (window=epochs) and took its sampler summaries over the
    whole run: they move to run_*, and the window's stay empty. Its MFU compared float32 with
    the float32 datasheet row; on a GPU the arithmetic is not known (TF32 or not)."""
    row = {**row, "schema": 2, "window": "epochs", "data_format": "channels_last"}
    for key in RUN_FIGURES:
        row[f"run_{key}"] = row.get(key)
    row.update({key: None for key in _WINDOW_SUMMARIES})
    math = PRECISIONS.get(row.get("precision"), "float32")
    row["matmul_precision"] = "" if math == "float32" and env.get("gpu_count") else math
    spec = RunSpec(**{k: row[k] for k in KNOBS if k in row}, repeat=row.get("repeat", 0), role=row.get("role", "point"))
    row["point_id"], row["run_id"] = spec.point_id, spec.run_id  # window=epochs is part of the id now
    return row


UPGRADES = {1: _v1_to_v2}  # schema N -> N + 1, as asv migrates its results


def upgrade(row: dict, env: dict) -> dict:
    """A stored row in the current schema, every field present; `env` is its folder's env.json."""
    version = row.get("schema", 1)
    if version > SCHEMA:
        raise SchemaError(f"written by a newer gpubench (schema {version}; this one reads up to {SCHEMA})")
    while version < SCHEMA:
        row, version = UPGRADES[version](row, env), version + 1
    return {**_DEFAULTS, **row}


_DEFAULTS = RunRecord().to_dict()


def others_share(machine_pct, own_pct, threads: int | None):
    """Other work's share (%) of the whole CPU during a run's window (scalars or columns): the machine's
    use (cpu_util_mean) less the run's own process tree (proc_cpu_pct_mean, one core 100%) over its
    threads; None (NaN in a column) where the run sampled none."""
    if machine_pct is None or own_pct is None:
        return None
    return np.maximum(machine_pct - own_pct / (threads or 1), 0)
