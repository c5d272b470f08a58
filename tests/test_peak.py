"""bench/run/peak.py's peaks as a sweep takes them: probed once per machine and GPU model, kept, and
probed by one sweep at a time; the probe itself is a stand-in here (a real one runs with the ceilings
of test_bottleneck's sweeps)."""

import threading
import time

from bench.run import peak


def test_a_machines_peak_is_probed_once_and_reused_by_its_later_sweeps(tmp_path, monkeypatch):
    """The peak is the machine's: a second sweep on the same fingerprint takes it from the cache
    (and says so), another machine probes its own, and a failed probe is not kept."""
    probed = []

    def probe(backend, precision, timeout_s, env):
        probed.append((backend, precision))
        assert env["CUDA_VISIBLE_DEVICES"] == "-1"  # given as a worker is
        return (
            ({}, "no device")
            if precision == "mixed_float16"
            else ({"tflops": 1.5, "matmul_precision": "float32"}, None)
        )

    monkeypatch.setattr(peak, "_peak_probe", probe)
    settings = {("jax", "float32"), ("jax", "mixed_float16")}
    hidden = {"CUDA_VISIBLE_DEVICES": "-1"}
    first = peak.measure_peaks(settings, "m1", given=hidden, cache_dir=tmp_path)
    again = peak.measure_peaks(settings, "m1", given=hidden, cache_dir=tmp_path)
    other = peak.measure_peaks({("jax", "float32")}, "m2", given=hidden, cache_dir=tmp_path)
    assert probed == [("jax", "float32"), ("jax", "mixed_float16"), ("jax", "mixed_float16"), ("jax", "float32")]
    assert first["peak_tflops"] == again["peak_tflops"] == {"jax": {"float32": 1.5, "mixed_float16": None}}
    assert not first["peak_cached"] and set(again["peak_cached"]["jax"]) == {"float32"}
    assert again["peak_errors"] == {"jax": {"mixed_float16": "no device"}} and not other["peak_cached"]

    # one box, two GPU models: each probes its own peak, though NVML's fingerprint is the same
    def peaks(label):
        return peak.measure_peaks({("jax", "float32")}, "m3", label=label, given=hidden, cache_dir=tmp_path)

    peaks("h100")
    assert peaks("h100")["peak_cached"] and not peaks("2080ti")["peak_cached"]


def test_two_sweeps_starting_together_probe_the_peak_once(tmp_path, monkeypatch):
    """A probe measures the whole machine: a second sweep's waits for the first's (a lock beside the
    cache) and takes its peak from the cache, rather than both measuring half of it."""
    probing, probed = threading.Event(), []

    def probe(backend, precision, timeout_s, env):
        probed.append(backend)
        probing.set()
        time.sleep(0.3)  # the other sweep asks meanwhile
        return {"tflops": 1.5, "matmul_precision": "float32"}, None

    monkeypatch.setattr(peak, "_peak_probe", probe)
    found = []

    def sweep():
        found.append(peak.measure_peaks({("jax", "float32")}, "m1", cache_dir=tmp_path))

    first = threading.Thread(target=sweep)
    first.start()
    probing.wait(10)
    sweep()
    first.join()
    assert probed == ["jax"] and [f["peak_tflops"] for f in found] == [{"jax": {"float32": 1.5}}] * 2
    assert sum(bool(f["peak_cached"]) for f in found) == 1


def test_a_lock_that_cannot_be_taken_leaves_the_peaks_as_they_were(tmp_path, monkeypatch):
    """A cache folder whose lock cannot be made (a shared, filled cache one may not write) still gives
    its kept peaks: the lock is skipped, as before there was one."""
    probed = []
    monkeypatch.setattr(peak, "_peak_probe", lambda *args: probed.append(args) or ({"tflops": 2.0}, None))
    assert peak.measure_peaks({("jax", "float32")}, "m1", cache_dir=tmp_path)["peak_tflops"] == {
        "jax": {"float32": 2.0}
    }
    lock = tmp_path / "peaks.m1.lock"
    lock.unlink()
    lock.mkdir()  # open(2) refuses to create it, whoever asks
    again = peak.measure_peaks({("jax", "float32")}, "m1", cache_dir=tmp_path)
    assert again["peak_tflops"] == {"jax": {"float32": 2.0}} and again["peak_cached"] and len(probed) == 1
