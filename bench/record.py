"""RunRecord: one flat row per run, the only thing a worker hands back to the runner."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass

from bench.spec import RunSpec

SCHEMA = 1
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
    # what the run resolved them to
    loader: str = ""  # what the loader knobs meant in this pipeline
    train_steps: int | None = None
    val_steps: int | None = None
    train_images_per_epoch: int | None = None
    classes: int | None = None
    images_skipped: int | None = None
    weights: str = ""
    jit_compile: bool | None = None
    backend_version: str = ""
    devices: str = ""  # what gpus resolved to, e.g. "2 x GPU" or "2 x CPU (logical)"
    # timings (seconds unless named)
    wall_s: float | None = None  # the subprocess, imports and model build included
    total_s: float | None = None  # all epochs with validation, as the seed timed them
    first_epoch_s: float | None = None
    epoch_s_median: float | None = None
    val_s_total: float | None = None
    checkpoint_s_total: float | None = None  # saving the best model each epoch, in total_s too
    train_img_s: float | None = None
    step_ms_p50: float | None = None
    step_ms_p90: float | None = None
    epochs_timed: int | None = None
    data_wait_frac: float | None = None  # share of step time spent waiting for the next batch
    data_wait_ms_p50: float | None = None
    epoch_start_s_median: float | None = None  # epoch begin until its first batch was ready
    train_gflops_per_image: float | None = None  # 3 x forward, counted from the model
    decode_img_s_core: float | None = None  # pipeline-ceiling runs: one core's decode+resize rate
    # samplers
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
