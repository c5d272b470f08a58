"""One run, in its own process: dataset -> pipeline -> model -> timed fit, samplers around it.

The runner starts this as `python -m bench.run.worker`; it writes one RunRecord as JSON to
--record whatever happens, and the time series to --samples. A fresh process per run is what
frees the device's memory and the loader's workers between runs.
"""

from __future__ import annotations

import argparse
import csv
import ctypes
import json
import os
import re
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

from bench.plan.grid import frameworks
from bench.plan.knobs import SAMPLE_INTERVAL_S, RunSpec
from bench.results.record import RUN_FIGURES, RunRecord
from bench.run import backends, devices

OOM_RE = re.compile(
    r"\bOOM\b|out of memory|ResourceExhausted|bad_alloc|Cannot allocate memory|MemoryError", re.IGNORECASE
)
# One core's decode rate, probed in a pipeline ceiling's first repeat: a third of a second is 30-60
# of quick's 640x480 JPEGs on the 2-core machine (a second took 1 s of each such run's start-up).
DECODE_PROBE_S = 0.3


def classify(error: BaseException) -> str:
    """A failed run's status: "oom" where the error reads as running out of memory, else "error"."""
    if isinstance(error, MemoryError) or OOM_RE.search(f"{type(error).__name__} {error}"):
        return "oom"
    return "error"


def one_line(error: BaseException) -> str:
    """The error as the record keeps it: its type and message on one line, at most 500 characters."""
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}"[:500]


def die_with_parent() -> None:
    """Linux: end this process when the one that started it is killed (a run with its sweep or
    launcher, a launcher with its sweep)."""
    try:
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def write_samples(rows: list[dict], path: Path) -> None:
    """The samplers' rows as CSV, the columns those of every row in the order first seen."""
    columns = list(dict.fromkeys(c for row in rows for c in row))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def train(
    spec: RunSpec, index_path: Path, record: RunRecord, samples_path: Path, interval: float, process_id: int = 0
) -> None:
    """Fills `record` in place, so that what was learned before a failure is kept. With hosts > 1
    this is process `process_id` of the run, training on its share of each batch."""
    import keras

    from bench.results import machine
    from bench.run import doctor, gate
    from bench.run.assemble import host_share, model_and_feeds
    from models import is_pipeline_alone
    from pipelines.dataset import DatasetIndex
    from pipelines.handover import images_in, keras_leaf
    from pipelines.registry import describe_loader, is_user_pipeline

    record.backend_version = backend_version(spec.backend)
    record.import_s = since_process_start()
    keras.config.set_image_data_format(spec.data_format)
    scope, record.devices = devices.setup(spec.backend, spec.gpus, spec.hosts)
    trains_on = doctor.where(spec.backend, spec.gpus)
    record.train_device = doctor.train_device(trains_on)
    record.train_cuda, record.train_cudnn = trains_on["cuda"], trains_on["cudnn"]
    wrong = gate.contradiction(os.environ.get(gate.LABEL_ENV), trains_on)
    if wrong:  # a job on a node with another GPU (or none): its figures are not this label's
        raise RuntimeError(f"{wrong}: not filed under --gpu {os.environ[gate.LABEL_ENV]}")
    record.device_s = since_process_start() - record.import_s
    index = DatasetIndex.load(index_path)
    record.classes = len(index.classes)
    record.images_skipped = len(index.skipped)
    record.loader = describe_loader(spec)
    share, local = host_share(index, spec, process_id)
    keras.mixed_precision.set_global_policy(spec.precision)
    model, train_feed, val_feed = model_and_feeds(spec, share, local, len(index.classes), scope)
    record.train_steps, record.val_steps = train_feed.steps, val_feed.steps
    record.loader += f"; it {train_feed.returned}" if train_feed.returned else ""
    record.train_images_per_epoch = train_feed.images * spec.hosts
    record.host_batch = local.batch or images_in(train_feed.first)
    record.input_shape = (
        "x".join(str(d) for d in model.inputs[0].shape[1:])
        if train_feed.first is None
        else ("x".join(str(d) for d in keras_leaf(train_feed.first[0]).shape[1:]))
    )
    record.weights = model.weights_source
    record.jit_compile = bool(model.jit_compile)
    record.matmul_precision = devices.matmul_precision(
        spec.backend, spec.precision, machine.compute_capability() if "GPU" in record.devices else None
    )
    built = since_process_start()
    record.model_s = built - record.import_s - record.device_s
    record.train_gflops_per_image, record.flops_uncounted = count_flops(model, train_feed, spec)
    record.flops_s = since_process_start() - built
    # the pipeline's ceiling: also how fast one core decodes this data (its first repeat: DECODE_PROBE_S)
    if is_pipeline_alone(spec.backbone) and not is_user_pipeline(spec.pipeline) and spec.repeat == 0:
        record.decode_img_s_core = decode_rate(index, spec)
    cached_before = devices.cache_entries(spec.backend)
    record.startup_s = since_process_start()
    measure(model, train_feed, val_feed, spec, record, samples_path, interval)
    if record.jit_compile or backends.of(spec.backend).COMPILES_EAGER_OPS:
        record.cache_hit = cached_before > 0 and devices.cache_entries(spec.backend) == cached_before
    record.gpu_mem_peak_mb = devices.allocator_peak_mb(spec.backend) or record.gpu_mem_nvml_peak_mb


def measure(model, train_feed, val_feed, spec: RunSpec, record: RunRecord, samples_path: Path, interval: float):
    """The measured fit: samplers around it and the timer in it, nothing else (tests hold its
    rates against a plain fit; a profiled run adds the profiler, in its results folder's
    profiles/). Fills `record` with the timings and the samplers' figures."""
    from bench.run import profile, training
    from bench.run.samplers import CpuSampler, GpuSampler, Sampling
    from bench.run.timing import timer_for
    from pipelines.epochs import warmup_steps

    with tempfile.TemporaryDirectory(prefix="gpubench-ckpt-") as scratch:
        checkpoint = training.TimedCheckpoint(Path(scratch) / "best.keras") if spec.checkpoint else None
        # last: its epoch time takes in the checkpoint's
        timer = timer_for(spec.backend, train_feed.ready, warmup_steps(spec))
        tracer = spec.profile and profile.ProfileSteps(  # samples_path: RESULTS/samples/x.csv
            spec.backend, profile.profile_dir(samples_path.parent.parent, spec.run_id), spec.epochs
        )
        gpu = GpuSampler(devices=devices.sampled(spec.backend, spec.gpus))
        record.gpu_note = gpu.reason
        sampling = Sampling([CpuSampler(), gpu], interval)
        try:
            with sampling:
                history = training.fit(
                    model, train_feed, val_feed, spec.epochs, [c for c in (tracer, checkpoint, timer) if c]
                )
        finally:
            window = [(a - sampling.t0, b - sampling.t0) for a, b in timer.window(checkpoint and checkpoint.seconds)]
            summarise_samples(sampling.rows, window, interval, record)
            write_samples(sampling.rows, samples_path)
            record.sampler_error = "; ".join(f"{name}: {why}" for name, why in sampling.errors.items())
    images = train_feed.images * spec.hosts  # every process steps together: the global batch's images
    record.fill(timer.summary(train_feed.steps, images, checkpoint and checkpoint.seconds, spec.hosts))
    record.final_loss = float(history.history["loss"][-1])
    if record.gpu_energy_j:
        record.img_per_joule = record.window_images / record.gpu_energy_j


def summarise_samples(rows: list[dict], window: list[tuple[float, float]], interval: float, record: RunRecord):
    """The samplers' figures over the measured window under their own names, over the whole run
    (imports, compile and validation included) as run_*; each sample labelled with its phase."""
    from bench.run.samplers import energy_j, label_phases, summarise

    label_phases(rows, window, interval)
    record.fill(summarise([r for r in rows if r["phase"] == "window"]))
    whole = summarise(rows)
    record.fill({f"run_{key}": whole[key] for key in RUN_FIGURES})
    record.gpu_energy_j = energy_j(rows, window)
    record.run_gpu_energy_j = energy_j(rows, [(rows[0]["t_s"], rows[-1]["t_s"])]) if rows else None


def count_flops(model, train_feed, spec: RunSpec) -> tuple[float | None, str | None]:
    """(training GFLOPs an image, the layer types left uncounted): unknown dimensions taken from the
    run's input (a user pipeline's first batch, else input_size); a model that cannot be counted
    gives no figure and says why, never an error row."""
    from models import flops

    if train_feed.first is not None:
        import keras

        shape = [tuple(t.shape[1:]) for t in keras.tree.flatten(train_feed.first[0])]
    else:
        shape = (
            (3, spec.input_size, spec.input_size)
            if spec.data_format == "channels_first"
            else (spec.input_size,) * 2 + (3,)
        )
    try:
        counted = flops.concrete(model, shape if isinstance(shape, tuple) or len(shape) > 1 else shape[0])
        return flops.train_flops(counted) / 1e9, ", ".join(flops.counted(counted)[1]) or None
    except Exception as e:  # a layer that cannot be traced again on concrete shapes
        return None, f"not counted: {one_line(e)}"


def since_process_start() -> float:
    """Seconds since this process started (or was forked): the interpreter and every import
    included. On Linux from the kernel's clock since boot, to its 10 ms ticks (psutil's create_time
    adds the boot time rounded to the second: 0.3 s off on the 2-core machine)."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        return time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, AttributeError):  # no /proc, no CLOCK_BOOTTIME: another platform
        import psutil

        return time.time() - psutil.Process().create_time()


def backend_version(backend: str) -> str:
    """The version of the Keras backend the run trains on, for the record."""
    import importlib

    return importlib.import_module(backend).__version__


def decode_rate(index, spec: RunSpec, seconds: float = DECODE_PROBE_S) -> float:
    """Images per second one core reads, decodes and resizes, as the keras pipeline does, into
    the run's transfer type (uint8 pixels stay uint8)."""
    from pipelines.reader import load_image

    files = index.files["train"]
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or done < 8:
        load_image(files[done % len(files)], spec.input_size, spec.interpolation, spec.transfer)
        done += 1
    return done / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    """The worker's entry point: one run, its record written whatever happens; exit status 1 unless it ran ok."""
    parser = argparse.ArgumentParser(prog="python -m bench.run.worker")
    parser.add_argument("--spec", required=True, help="RunSpec as JSON")
    parser.add_argument("--index", required=True, type=Path, help="DatasetIndex JSON")
    parser.add_argument("--record", required=True, type=Path)
    parser.add_argument("--samples", required=True, type=Path)
    parser.add_argument("--interval", type=float, default=SAMPLE_INTERVAL_S)
    parser.add_argument("--process-id", type=int, default=0, help="this process's number among the run's hosts")
    args = parser.parse_args(argv)
    die_with_parent()
    spec = RunSpec(**json.loads(args.spec))
    devices.prepare(spec.backend, spec.gpus, frameworks(spec), spec.hosts)  # before anything imports Keras
    record = RunRecord.for_spec(spec)
    try:
        train(spec, args.index, record, args.samples, args.interval, args.process_id)
        record.status = "ok"
    except Exception as e:
        record.status, record.error = classify(e), one_line(e)
        print(f"run {spec.run_id} failed: {record.error}", file=sys.stderr)
        traceback.print_exc()  # the whole of it, into the run's log
    record.wall_s = since_process_start()
    tmp = args.record.with_suffix(".tmp")
    tmp.write_text(json.dumps(record.to_dict()))
    tmp.replace(args.record)
    return 0 if record.status == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
