"""The points table (bench/analyse/points.py) on constructed rows."""

import pandas as pd

from bench.plan.knobs import RunSpec
from bench.results.record import RunRecord


def test_pipelines_pair_up_although_their_loader_knobs_differ():
    from bench.analyse.points import medians, pairs

    rows = [
        RunRecord.for_spec(spec, status="ok", train_img_s=rate, total_s=1.0).to_dict()
        for spec, rate in (
            (RunSpec(pipeline="keras", workers=2), 100.0),
            (RunSpec(pipeline="tfdata", workers=2, use_multiprocessing=None), 150.0),
        )
    ]
    joined = pairs(medians(pd.DataFrame(rows)), "pipeline", "keras")
    assert len(joined) == 1 and joined.train_img_s.iloc[0] / joined.train_img_s_base.iloc[0] == 1.5


def test_records_are_pandas_records_value_for_value_and_type_for_type():
    """records() stands in for to_dict("records") in the noise rule's loops: the same values, of the
    same Python types, on a table of every kind of column a sweep's has."""
    from bench.analyse.points import records, table
    from tests.test_analysis import _rows

    rows = _rows(RunSpec(backbone="tiny", input_size=32, batch=8, workers=1), [95.0, 96.0], [100.0], [500.0])
    points = table([{**r, "cpu_util_mean": None} for r in rows], {"cpu_threads": 2}, {})
    expected = points.to_dict("records")
    got = records(points)
    assert [list(r) for r in got] == [list(r) for r in expected]
    for mine, theirs in zip(got, expected):
        assert [type(v) for v in mine.values()] == [type(v) for v in theirs.values()]
        assert all(a == b or (a != a and b != b) for a, b in zip(mine.values(), theirs.values()))
    assert {type(v) for r in got for v in r.values()} >= {str, int, float, bool}
