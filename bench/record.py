"""RunRecord: one flat row per run, the only thing a worker hands back to the runner."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass

from bench.spec import RunSpec

SCHEMA = 2  # 2: rates and summaries over the measured window, fixed costs apart
STATUSES = ("ok", "oom", "error", "timeout", "skipped")


@dataclass
class RunRecord:
    schema: int = SCHEMA
    run_id: str = ""
    point_id: str = ""
    repeat: int = 0
    role: str = "point"  # or "ceiling": a probe for other points' pipeline or model ceiling
    timestamp: str = ""
    status: str = "error"
    error: str = ""
    # knobs (RunSpec), as asked for; a loader knob the pipeline does not use is empty
    backend: str = "tensorflow"
    backbone: str = ""
    input_size: int = 0
    pipeline: str = ""
    batch: int = 0
    workers: int | None = None
    use_multiprocessing: bool | None = None
    max_queue_size: int | None = None
    gpus: int = 1
    epochs: int = 0
    steps_per_epoch: int = 0
    validation_steps: int = 0
    finetune: str = ""
    interpolation: str = ""
    cache: bool | None = None
    checkpoint: bool = False
    precision: str = ""
    xla: str = ""
    window: str = "auto"
    data_format: str = "channels_last"
    # what the run resolved them to
    loader: str = ""  # what the loader knobs meant in this pipeline
    train_steps: int | None = None
    val_steps: int | None = None
    train_images_per_epoch: int | None = None
    classes: int | None = None
    images_skipped: int | None = None
    weights: str = ""
    jit_compile: bool | None = None
    matmul_precision: str = ""  # the arithmetic of convolutions and matrix products: float32, tf32, ...
    cache_hit: bool | None = None  # every compilation came from the persistent cache (None: nothing compiled)
    backend_version: str = ""
    devices: str = ""  # what gpus resolved to, e.g. "2 x GPU" or "2 x CPU (logical)"
    # timings (seconds unless named); rates are over the measured window: the epochs after the first
    wall_s: float | None = None  # the worker process from its start: imports, model build, teardown
    startup_s: float | None = None  # process start until the model was built
    warmup_s: float | None = None  # training start until the window: the first epoch
    compile_s: float | None = None  # the first epoch's time beyond a steady epoch's, less loader_start_s
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
    train_gflops_per_image: float | None = None  # 3 x forward, counted from the model
    decode_img_s_core: float | None = None  # pipeline-ceiling runs: one core's decode+resize rate
    # samplers, over the measured window; run_*: over the whole run
    samples: int | None = None
    cpu_util_mean: float | None = None
    cpu_util_p90: float | None = None
    cpu_util_max: float | None = None
    proc_cpu_pct_mean: float | None = None
    proc_cpu_pct_p90: float | None = None
    proc_cpu_pct_max: float | None = None
    rss_peak_mb: float | None = None
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

    @classmethod
    def for_spec(cls, spec: RunSpec, **fields) -> "RunRecord":
        return cls(run_id=spec.run_id, point_id=spec.point_id, repeat=spec.repeat, role=spec.role,
                   timestamp=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                   **spec.knobs(), **fields)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, row: dict) -> "RunRecord":
        """Tolerates rows from other schema versions: unknown fields are dropped."""
        return cls(**{k: v for k, v in row.items() if k in COLUMNS})


COLUMNS = [f.name for f in dataclasses.fields(RunRecord)]
