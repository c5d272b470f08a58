"""The wait for data the step timer reports is the wait a pipeline made the steps take: a delay
injected into every other batch (tests/data_wait.py) is found in data_wait_frac.

Tolerance: the injected delays are 400 ms a batch, against steps of a few ms: at least 70% of the
injected seconds must be found on the delayed batches' own steps, and data_wait_frac must be at
least 70% of the injected share of the steps' time and at most 1. A loader with workers hides a
delay behind the steps between two delayed batches, so a slower step finds less of it: with 150 ms
delays, torch's DataLoader on the torch backend found 68% while another process kept one core busy
(its steps about 24 ms); at 400 ms the same steps leave about 88%. More wait elsewhere is allowed:
the pipeline's own reading is a wait too, and how long it takes depends on the machine's load.
With the pairing fault (fit shuffling a PyDataset's batch indices) the keras pipeline found none."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from tests.data_wait import measure


def check(found: dict) -> None:
    assert found["found_on_delayed_s"] >= 0.7 * found["injected_s"], found
    assert 0.7 * found["injected_frac"] <= found["data_wait_frac"] <= 1.0, found


@pytest.mark.slow
@pytest.mark.parametrize(
    "pipeline, knobs",
    [
        ("keras", {"workers": 2, "max_queue_size": 2}),  # threads
        ("tfdata", {"workers": 2, "max_queue_size": 2}),
        ("torch", {"workers": 0}),  # loaded in the training process
    ],
)
def test_an_injected_wait_for_data_is_found(tiny_tree, pipeline, knobs):
    check(measure(tiny_tree, pipeline, knobs))


@pytest.mark.slow
def test_an_injected_wait_is_found_with_loader_processes(tiny_tree):
    check(measure(tiny_tree, "keras", {"workers": 2, "use_multiprocessing": True, "max_queue_size": 2}))
    check(measure(tiny_tree, "torch", {"workers": 2, "max_queue_size": 2}))


OTHER_BACKENDS = [("dali", "jax"), ("torch", "torch"), ("keras", "torch")]
NEEDS = {"dali": "nvidia.dali", "torch": "torch", "keras": "keras"}


@pytest.fixture(scope="module")
def on_other_backends(tiny_tree) -> dict:
    """Each backend's measures of the pipelines it is paired with (and this machine has), from one
    process on that backend, by (pipeline, backend); taken once, as the tests ask for them."""
    found = {}

    def measured(pipeline: str, backend: str) -> dict:
        if (pipeline, backend) not in found:
            pipelines = [p for p, b in OTHER_BACKENDS if b == backend and importlib.util.find_spec(NEEDS[p])]
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "tests.data_wait",
                    str(tiny_tree),
                    json.dumps({"backend": backend, "workers": 1}),
                    *pipelines,
                ],
                capture_output=True,
                text=True,
                timeout=300,
                env=dict(os.environ, KERAS_BACKEND=backend),
            )
            assert done.returncode == 0, done.stderr[-3000:]
            found.update({(p, backend): m for p, m in json.loads(done.stdout.strip().splitlines()[-1]).items()})
        return found[(pipeline, backend)]

    return measured


@pytest.mark.slow
@pytest.mark.xdist_group("data_wait_other_backends")
@pytest.mark.parametrize("pipeline, backend", OTHER_BACKENDS)
def test_an_injected_wait_is_found_on_other_backends(on_other_backends, pipeline, backend):
    """DALI through its jax iterator; Keras's torch trainer, which fetches before the step's hook."""
    pytest.importorskip(NEEDS[pipeline])
    pytest.importorskip(backend)
    check(on_other_backends(pipeline, backend))
