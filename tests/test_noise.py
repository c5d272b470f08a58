"""The confidence rule (bench/analyse/noise.py) as the sweep applies it: the whole procedure simulated
with the project's own functions (tests/sweep_sim.py: quick's and mine's grids and ceilings as the
planner builds them, passes with their as-needed repeats, the one more look, points.table, the
report's bounds and fastest), 8% lognormal noise. Equal ceilings are named a bound in 2% of
configurations and 10% of sweeps or fewer; ceilings 30% apart are found in 95% or more; a setting 30%
faster than the rest is named fastest in 80% of sweeps or more, a wrong one in 2% or fewer.
`python -m tests.sweep_sim` prints the full table (5%, 8% and 15% noise, more sweeps)."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from bench.analyse import cautions, noise, verdicts
from bench.analyse.points import table
from bench.analyse.repeats import unsettled
from bench.passes import looks
from bench.plan.grid import model_ceiling, pipeline_ceiling
from bench.plan.knobs import RunSpec
from tests import sweep_sim


def _rows(spec: RunSpec, rates: list[float]) -> list[dict]:
    return [
        {**s.knobs(), **sweep_sim.FIELDS, "point_id": s.point_id, "run_id": s.run_id, "role": s.role}
        | {"repeat": s.repeat, "train_img_s": rate}
        for s, rate in ((dataclasses.replace(spec, repeat=i), rate) for i, rate in enumerate(rates))
    ]


SETTLED = RunSpec(backbone="tiny", input_size=32, batch=8, workers=1)
BALANCED = dataclasses.replace(SETTLED, batch=16)


def test_a_balanced_configuration_gets_its_look_after_another_settled_on_fewer_repeats():
    """One configuration settled on one repeat (its ceilings far apart, 95% of the lower); another,
    balanced on two: the look is the balanced one's, whatever the fewest repeats of the sweep."""
    rows = _rows(SETTLED, [150.0]) + _rows(pipeline_ceiling(SETTLED), [160.0]) + _rows(model_ceiling(SETTLED), [900.0])
    rows += _rows(BALANCED, [94.0, 96.0]) + _rows(pipeline_ceiling(BALANCED), [100.0, 101.0])
    rows += _rows(model_ceiling(BALANCED), [100.0, 99.0])
    specs = [dataclasses.replace(s, repeat=r) for s in (SETTLED, BALANCED) for r in (0, 1)]
    points = table(rows, {}, {})
    assert points.set_index("point_id").bound[BALANCED.point_id] == "balanced"
    assert {s.point_id for s in looks(specs, points)} >= {BALANCED.point_id}
    assert SETTLED.point_id not in {s.point_id for s in looks(specs, points)}


def test_a_ceiling_shared_by_several_configurations_is_measured_again():
    """A model ceiling that bounds two configurations, measured once: one draw that fell high would
    move both bounds at once, so it runs again; a ceiling of one configuration does not."""
    other = dataclasses.replace(SETTLED, workers=2)
    rows = _rows(SETTLED, [95.0, 96.0]) + _rows(other, [50.0, 51.0]) + _rows(model_ceiling(SETTLED), [900.0])
    rows += _rows(pipeline_ceiling(SETTLED), [100.0]) + _rows(pipeline_ceiling(other), [200.0])
    found = unsettled(table(rows, {}, {}))
    assert model_ceiling(SETTLED).point_id in found and pipeline_ceiling(SETTLED).point_id not in found


def test_the_rivals_of_the_fastest_are_those_claim_doubt_cannot_tell_from_it():
    """repeats' array form of the rule against claim_doubt itself, point by point, over tables of
    1-3 repeats a point at 8% noise, some points a ceiling's width apart."""
    rng, told = np.random.default_rng(3), set()
    for trial in range(10):
        specs = [dataclasses.replace(SETTLED, workers=w) for w in range(1, 6)]
        rows = [
            r for s in specs for r in _rows(s, list(rng.choice([95.0, 130.0]) * rng.lognormal(0, 0.08, trial % 3 + 1)))
        ]
        ranked = verdicts._ranked(table(rows, {}, {}))
        doubted = {
            p
            for i, p in enumerate(ranked.point_id)
            if i and verdicts.claim_doubt(ranked.iloc[:1], ranked.iloc[i : i + 1])
        }
        assert verdicts.rivals_of_fastest(ranked) == doubted
        told |= {p in doubted for p in ranked.point_id.iloc[1:]}
    assert told == {True, False}  # both outcomes were compared


def test_each_bound_is_one_claim_of_the_sweeps_family():
    """points.table judges each side of each configuration's bound at 1 - 1.5% / (2 x configurations)."""
    other = dataclasses.replace(SETTLED, workers=2)
    rows = _rows(SETTLED, [95.0, 96.0]) + _rows(other, [50.0, 51.0]) + _rows(model_ceiling(SETTLED), [900.0])
    points = table(rows, {}, {})
    assert set(points.noise_family) == {4} and noise.of_points(points, family=True).family == 4
    assert noise.of_points(points).family == 1  # compare and the gate: one claim each
    one, two = noise.Noise(0.08, 20), noise.Noise(0.08, 20, 2)
    assert noise.margin(two, 2, 2) > noise.margin(one, 2, 2)
    assert "each of 2 claims made together at 99.25%" in two.says()


def test_ceilings_timed_over_short_windows_are_warned_of():
    rows = _rows(SETTLED, [95.0, 96.0]) + _rows(model_ceiling(SETTLED), [900.0, 910.0])
    frame = pd.DataFrame(rows)
    assert cautions.short_ceilings(frame) == []
    frame.loc[frame.role == "ceiling", "window_s"] = [0.5, 0.7]
    assert cautions.short_ceilings(frame)[0].startswith("1 ceilings measured over only 0.5-0.7 s a run")


def test_one_repeat_leans_on_the_assumed_noise_and_claims_only_large_differences():
    assert noise.pooled(pd.DataFrame({"point_id": ["a", "b"], "train_img_s": [100.0, 130.0]})) == noise.PRIOR
    assert noise.differ(130.0, 1, 100.0, 1, noise.PRIOR) == 0  # 30% on one run each: cannot tell
    assert noise.differ(200.0, 1, 100.0, 1, noise.PRIOR) == 1
    assert noise.repeats_to_see(0.3, noise.Noise(0.08, 20)) == 2


@pytest.mark.slow  # points.table after every pass of every simulated sweep: about a minute in all
@pytest.mark.parametrize("preset", ["quick", "mine"])
def test_the_whole_sweep_keeps_its_error_rates(preset):
    equal = sweep_sim.rates(preset, "equal", 0.08, sweeps=40)
    assert equal["configurations"] <= 0.02 and equal["sweeps"] <= 0.10, equal
    assert sweep_sim.rates(preset, "apart", 0.08, sweeps=20, seed=1)["found"] >= 0.95
    fastest = sweep_sim.rates(preset, "fastest", 0.08, sweeps=20, seed=2)
    assert fastest["fastest"] >= 0.80 and fastest["wrong fastest"] <= 0.02, fastest
