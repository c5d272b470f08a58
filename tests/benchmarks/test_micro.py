"""What sets the input pipeline's speed, one piece at a time (`make microbench`; `make test`
skips these). The sampler's overhead goal is checked on the benchmark's own measurement."""

import pytest

from bench.plan.knobs import RunSpec
from bench.run.samplers import CpuSampler, GpuSampler
from pipelines import build
from pipelines.dataset import make_synthetic, scan

INTERVAL_S = 0.5  # the samplers' default


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """The seed's image size: 640x480 JPEGs."""
    return scan(make_synthetic(tmp_path_factory.mktemp("micro") / "photos", train=32, val=3, classes=3))


def test_decode_and_resize_one_jpeg(benchmark, photos):
    from pipelines.reader import load_image

    image = benchmark(load_image, photos.files["train"][0], 224, "nearest")
    assert image.shape == (224, 224, 3)


def test_keras_batch_assembly(benchmark, photos):
    feed = build(photos, RunSpec(batch=16, input_size=224, workers=1), "train")
    x, y = benchmark(feed.data.__getitem__, 0)
    assert x.shape == (16, 224, 224, 3) and y.shape == (16, 3)


def test_tfdata_batch(benchmark, photos):
    feed = build(photos, RunSpec(batch=16, input_size=224, pipeline="tfdata", workers=0, max_queue_size=0), "train")
    batches = iter(feed.data.repeat())
    x, _ = benchmark(lambda: next(batches))
    assert tuple(x.shape) == (16, 224, 224, 3)


def test_cpu_sampler_tick_costs_under_1_percent_of_a_core(benchmark):
    sampler = CpuSampler()
    row = benchmark(sampler.sample)
    assert 0.0 <= row["cpu_util"] <= 100.0 and row["rss_mb"] > 0 and row["threads"] >= 1
    assert benchmark.stats.stats.mean / INTERVAL_S < 0.01


def test_gpu_sampler_tick_costs_under_1_percent_of_a_core(benchmark):
    sampler = GpuSampler()
    if not sampler.available:
        pytest.skip(sampler.reason)
    benchmark(sampler.sample)
    assert benchmark.stats.stats.mean / INTERVAL_S < 0.01


def test_appending_a_row_to_a_store_of_2000(benchmark, tmp_path):
    """An append costs the same at a long sweep's end as at its start: the store holds 2,000 rows."""
    import json

    from bench.results.record import RunRecord
    from bench.results.store import ResultStore

    store = ResultStore(tmp_path / "out").create()
    record = RunRecord.for_spec(RunSpec(backbone="tiny", batch=8), status="ok", train_img_s=12.5).to_dict()
    store.jsonl.write_text((json.dumps(record) + "\n") * 2000)
    store.append(record)  # the one append that checks runs.csv against runs.jsonl
    benchmark(store.append, record)
    rows = store.records()
    assert len(rows) > 2001 and rows[-1] == record
    assert sum(1 for _ in store.csv.open()) == len(rows) + 1  # the header, then one line a row
