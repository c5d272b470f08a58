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
