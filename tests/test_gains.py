"""What changing one knob did (bench/analyse/gains.py), on constructed rows: the figures the
report's scaling, precision, backends and decode sections format."""

import pandas as pd
import pytest

from bench.analyse import gains, points
from bench.plan.grid import model_ceiling, pipeline_ceiling
from bench.plan.knobs import RunSpec
from bench.results.record import RunRecord

BASE = dict(backbone="tiny", input_size=16, batch=8)


def _rows(rates: dict, **fields) -> list[dict]:
    """Rows of each spec's repeats at these images/s."""
    return [
        RunRecord.for_spec(
            RunSpec(**{**spec.__dict__, "repeat": i}), status="ok", train_img_s=rate, total_s=1.0, **fields
        ).to_dict()
        for spec, rates_ in rates.items()
        for i, rate in enumerate(rates_)
    ]


def _table(rows):
    return points.table(rows, {}, {})


def test_scaling_is_the_rate_over_n_times_one_device_with_its_range_and_the_noise_rule():
    one, two = RunSpec(**BASE), RunSpec(**BASE, gpus=2)
    long = gains.scaling(_table(_rows({one: [95.0, 105.0], two: [180.0, 200.0]}, window_s=5.0)), "gpus")
    assert len(long) == 1
    got = long.iloc[0]
    assert got.configuration == "keras w4 threads q10 b8"
    assert (got.img_s_one, got.img_s) == (100.0, 190.0)
    assert got.scaling == pytest.approx(0.95)
    assert (got.scaling_min, got.scaling_max) == pytest.approx((180 / 210, 200 / 190))
    assert got.vs_perfect == 0  # 0.95 where the repeats spread 10%: within the noise of perfect
    poor = gains.scaling(_table(_rows({one: [100.0, 102.0], two: [120.0, 123.0]})), "gpus")
    assert poor.iloc[0].vs_perfect == -1  # 0.6, repeats within 3%
    single = gains.scaling(_table(_rows({one: [100.0], two: [150.0]})), "gpus")
    assert single.iloc[0].vs_perfect == 0  # 0.75 on one repeat: the assumed 20% noise cannot tell
    assert gains.scaling(_table(_rows({one: [100.0]})), "hosts").empty


def test_the_precision_gain_is_mixed_over_float32_of_the_same_configuration():
    table = _table(
        _rows(
            {
                RunSpec(**BASE): [100.0],
                RunSpec(**BASE, precision="mixed_bfloat16"): [180.0],
                RunSpec(**{**BASE, "batch": 16}, precision="mixed_float16"): [300.0],
            }
        )
    )  # no float32 twin
    gain = gains.precision_gain(table)
    assert list(gain.precision) == ["mixed_bfloat16"] and gain.gain.tolist() == pytest.approx([1.8])
    assert (gain.img_s_float32.iloc[0], gain.img_s.iloc[0]) == (100.0, 180.0)


def test_backends_side_by_side_name_the_fastest_and_leave_out_a_single_backend():
    table = _table(
        _rows(
            {
                RunSpec(**BASE): [100.0],
                RunSpec(**BASE, backend="jax"): [150.0],
                RunSpec(**{**BASE, "batch": 16}, backend="jax"): [300.0],
            }
        )
    )  # on one backend only
    side = gains.backends_side_by_side(table)
    assert side[["configuration", "tensorflow", "jax", "fastest"]].values.tolist() == [
        ["keras w4 threads q10 b8", 100.0, 150.0, "jax"]
    ]
    assert gains.backends_side_by_side(table[table.backend == "jax"]).empty


def test_decode_ceilings_take_medians_per_size_and_the_pipelines_share_of_them():
    point = RunSpec(**BASE, workers=1)
    rows = _rows({point: [90.0], model_ceiling(point): [2000.0]}) + _rows(
        {pipeline_ceiling(point): [100.0]}, decode_img_s_core=50.0
    )
    ceilings = gains.decode_ceilings(points.table(rows, {"cpu_cores": 4}, {}))
    assert ceilings[["input_size", "core_img_s", "all_cores_img_s"]].values.tolist() == [[16, 50.0, 200.0]]
    assert (ceilings.efficiency_min.iloc[0], ceilings.efficiency_max.iloc[0]) == (0.5, 0.5)
    assert gains.decode_ceilings(pd.DataFrame({"decode_ceiling_img_s": []})).empty


def test_where_the_time_went_sums_the_phases_and_gives_a_runs_fixed_costs():
    frame = pd.DataFrame(
        {
            "backend": ["tensorflow"] * 3,
            "wall_s": [12.0, 9.0, 15.0],
            "startup_s": [1.5, 0.5, 0.6],
            "warmup_s": [2.0, 1.5, 3.0],
            "compile_s": [1.0, 1.0, 1.2],
            "loader_start_s": [0.1] * 3,
            "window_s": [6.0, 6.0, 9.0],
        }
    )
    row = gains.time_spent(frame).iloc[0]
    assert row["wall (min)"] == pytest.approx(36 / 60) and row["measured windows (min)"] == pytest.approx(21 / 60)
    assert row["other (min)"] == pytest.approx((36 - 2.6 - 6.5 - 21) / 60)
    assert row["start-up a run (s, median)"] == 0.6 and row["warm-up beyond compile a run (s, median)"] == 1.0
    assert "compiled from cache" not in row  # nothing compiled (TensorFlow without XLA): no empty column
    assert "forked" not in row and "of which import (s, median)" not in row  # runs from before either was kept
    parts = {"import_s": [0.9, 0.1, 0.2], "device_s": [0.1] * 3, "model_s": [0.4, 0.2, 0.3], "flops_s": [0.1] * 3}
    row = gains.time_spent(frame.assign(forked=[False, True, True], **parts)).iloc[0]
    assert row["of which import (s, median)"] == 0.2 and row["of which model and data (s, median)"] == 0.3
    assert row["of which devices (s, median)"] == row["of which FLOP count (s, median)"] == 0.1
    assert row["forked"] == "2 of 3"
    row = gains.time_spent(frame.assign(cache_hit=[True, False, None])).iloc[0]
    assert row["compiled from cache"] == "1 of 2"
