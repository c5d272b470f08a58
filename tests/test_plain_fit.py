"""Instruments must not slow what they measure: the suite's measured fit (timer, samplers, ready
stamps) does on the training thread what a plain fit of the same compiled model on the same data
does, and no more than its stated marks (tests/plain_fit.py).

What slows a fit is held by counts, which load cannot change: the device reads on the training
thread (each waits for the device; a callback with a per-step end hook, say, makes Keras read
every step's logs there) and the calls into gpubench's own code (a stamp or any work in the
step). The rates themselves, suite against plain fit, are a benchmark: `make honesty` runs and
records them (a ratio of two timings on shared cores is no test)."""

import json
import subprocess
import sys

import pytest

from bench.plan.grid import installed

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not installed("jax"), reason="jax is not installed")]

PER_EPOCH = 5  # project calls an epoch's hooks may make: the timer's begin, validation and end marks


@pytest.fixture(scope="module")
def counted(tiny_tree) -> dict:
    """Both kinds' counts, by kind, from one process on jax."""
    out = subprocess.run(
        [sys.executable, "-m", "tests.plain_fit", "counts", "model,loader", "jax", str(tiny_tree)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.xdist_group("plain_fit")
def test_the_model_alone_is_fitted_as_a_plain_fit_is(counted):
    """Tensors in memory: timed from epoch hooks only, so nothing per step, in any thread."""
    found = counted["model"]
    suite, plain, epochs = found["suite"], found["plain"], found["epochs"]
    assert suite["reads"] <= plain["reads"] + epochs, found  # at most the timer's one read an epoch
    assert suite["calls"] <= plain["calls"] + PER_EPOCH * epochs, found
    # the feed hands each step its batch (on jax a PyDataset's __getitem__, pipelines/synthetic.py) and does no more
    assert suite["calls"] + suite["other_calls"] - found["steps"] < found["steps"] / 2, found


@pytest.mark.xdist_group("plain_fit")
def test_the_keras_pipeline_alone_adds_only_its_step_mark_and_its_stamp(counted):
    """A loader is timed by a mark when the loop turns to each batch (the begin hook, the mark,
    the ready stamp read back: 3 calls a step on the training thread) and a stamp when a worker
    has the batch ready (1 call a step in the loader's threads)."""
    found = counted["loader"]
    suite, plain, epochs, steps = found["suite"], found["plain"], found["epochs"], found["steps"]
    assert suite["reads"] <= plain["reads"] + epochs, found
    assert suite["calls"] - plain["calls"] <= 3 * steps + PER_EPOCH * epochs, found
    assert suite["other_calls"] - plain["other_calls"] <= steps + PER_EPOCH * epochs, found
