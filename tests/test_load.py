"""Load is part of the answer: other work's share of the CPU during each run's window is read from the
samplers' figures, a loaded run gives way to a quieter repeat of its point, a folder measured under load
withholds its bounds and says so in its header, and the sweep waits for quiet after a loaded run."""

import io
import warnings

import pandas as pd
from rich.console import Console

from bench.analyse import cautions, repeats, verdicts
from bench.analyse.points import quiet_runs, table
from bench.plan.knobs import BUSY_PCT, RunSpec
from bench.results.record import RunRecord, others_share
from bench.run.runner import wait_for_quiet
from tests.test_analysis import _rows

ENV = {"cpu_threads": 2}
POINT = RunSpec(backbone="tiny", input_size=32, batch=8, workers=1)


def _loaded(rows: list[dict], machine_pct: float, own_pct: float = 100.0) -> list[dict]:
    return [{**r, "cpu_util_mean": machine_pct, "proc_cpu_pct_mean": own_pct} for r in rows]


def test_other_work_s_share_is_the_machine_s_use_less_the_run_s_own_over_its_threads():
    assert others_share(80.0, 100.0, 2) == 30.0 and others_share(40.0, 100.0, 2) == 0.0
    assert others_share(None, 100.0, 2) is None
    column = others_share(pd.Series([90.0, float("nan")]), pd.Series([100.0, 100.0]), 2)
    assert column.iloc[0] == 40.0 and pd.isna(column.iloc[1])
    unsampled = [
        {**r, "cpu_util_mean": None, "proc_cpu_pct_mean": None} for r in _rows(POINT, [95.0], [100.0], [500.0])
    ]
    with warnings.catch_warnings():  # runs too short to sample: their table says no load, without a warning
        warnings.simplefilter("error")
        assert table(unsampled, ENV, {}).others_cpu_pct.isna().all()


def test_a_uniformly_loaded_folder_withholds_its_bounds_says_so_and_asks_to_measure_again():
    """Every run of the point and its ceilings measured while other work took 60% of a 2-core machine:
    the point and its ceilings agree with each other (the old check compared them only with each other),
    yet no bound is stated on them."""
    rows = _loaded(_rows(POINT, [95.0, 96.0], [100.0, 101.0], [500.0, 505.0]), machine_pct=110.0)
    points = table(rows, ENV, {})
    p = points[points.point_id == POINT.point_id].iloc[0]
    assert p.others_cpu_pct == 60.0 and p.bound == "input"
    assert p.bound_doubt.startswith("measured under load: other work took 60% of the CPU during the point")
    assert p.bound_says == f"bound withheld: {p.bound_doubt}"
    assert verdicts.headline(points[points.role == "point"]) == "No bound named of 1 configurations, 1 withheld."
    assert cautions.load_said(points).startswith("Load: other work took 60% to 60% of the CPU")
    assert "1 bounds withheld for load" in cautions.load_said(points)
    assert POINT.point_id in repeats.unsettled(points)


def test_a_quieter_repeat_replaces_a_loaded_one_and_a_point_measured_only_under_load_keeps_its_runs():
    quiet = _loaded(_rows(POINT, [95.0], [100.0], [500.0]), machine_pct=52.0)  # others 2%
    busy = _loaded(_rows(POINT, [40.0], [45.0], [200.0]), machine_pct=110.0)  # others 60%
    busy = [{**r, "repeat": 1, "run_id": r["run_id"].replace("-r0", "-r1")} for r in busy]
    frame = pd.DataFrame(quiet + busy)
    frame["others_cpu_pct"] = others_share(frame.cpu_util_mean, frame.proc_cpu_pct_mean, 2)
    kept, aside = quiet_runs(frame)
    assert len(kept) == 3 and set(aside.values()) == {1} and len(aside) == 3
    points = table(quiet + busy, ENV, {})
    p = points[points.point_id == POINT.point_id].iloc[0]
    assert (p.train_img_s, p.pipeline_img_s, p.runs_set_aside) == (95.0, 100.0, 1) and p.bound_doubt == ""
    assert "3 runs measured under it were set aside for quieter repeats" in cautions.load_said(points)
    alone, _ = quiet_runs(frame[frame.repeat == 1])
    assert len(alone) == 3  # nothing quieter to take their place


def test_after_a_loaded_run_the_sweep_waits_for_quiet_and_says_so_and_not_after_a_quiet_one():
    out = io.StringIO()
    console = Console(file=out, width=200)
    looks = iter([70.0, 50.0, 10.0, 5.0])
    assert wait_for_quiet(BUSY_PCT - 1, console, 60.0, busy_now=lambda: next(looks)) == (0.0, True)
    assert out.getvalue() == ""
    assert wait_for_quiet(60.0, console, 0.0, busy_now=lambda: next(looks)) == (0.0, False)  # --quiet-wait 0: never
    assert wait_for_quiet(60.0, console, 60.0, busy_now=lambda: next(looks)) == (6.0, True)  # three looks of 2 s
    assert "other work took 60% of the CPU during that run: waiting up to 60 s" in out.getvalue()
    assert wait_for_quiet(60.0, console, 4.0, busy_now=lambda: 90.0) == (4.0, False)  # never quiet: it goes on


def test_a_points_table_is_built_without_pandas_fragmentation_warnings():
    """The console shows gpubench's lines only: a table of a point with every figure a run records,
    its ceilings, decode ceiling and MFU, built with pandas's PerformanceWarning turned into an error."""
    import warnings

    from tests.test_analysis import constructed

    point, rows = constructed()
    with warnings.catch_warnings():
        warnings.simplefilter("error", pd.errors.PerformanceWarning)
        points = table(rows, ENV, {"peak_tflops": {"float32": 0.5}})
    assert points.set_index("point_id").loc[point.point_id].bound == "input"


def test_a_sweep_on_a_machine_that_stays_busy_waits_once_then_goes_on_and_says_so(tmp_path, monkeypatch):
    """Every run loaded (others took 50% of the CPU): the first wait finds no quiet in its 4 s, so the
    sweep waits no more (a constant load would cost every run the whole wait) and says so."""
    from bench.results.store import ResultStore
    from bench.run import runner
    from bench.run.settings import Options
    from tests.conftest import session_of

    def loaded(spec, *args, **kwargs):
        figures = {"train_img_s": 100.0, "total_s": 2.0, "cpu_util_mean": 100.0, "proc_cpu_pct_mean": 100.0}
        return RunRecord.for_spec(spec, status="ok", **figures)

    looks = []
    monkeypatch.setattr(runner, "run_point", lambda spec, *a, **k: loaded(spec).to_dict())
    monkeypatch.setattr(runner.psutil, "cpu_percent", lambda interval=None: looks.append(interval) or 90.0)
    monkeypatch.setattr(runner.psutil, "cpu_count", lambda: 2)
    out = io.StringIO()
    store = ResultStore(tmp_path / "out").create()
    grid = [RunSpec(backbone="tiny", batch=b) for b in (4, 8, 16)]
    runner.sweep(grid, session_of(store), Options(quiet_wait_s=4.0), console=Console(file=out, width=300))
    assert looks == [2.0, 2.0] and len(store.records()) == 3
    assert out.getvalue().count("waiting up to 4 s") == 1 and "the sweep waits no more" in out.getvalue()


def test_one_load_rule_for_a_point_against_its_ceiling_and_a_machine_against_another():
    from bench.analyse.bounds import BUSY_GAP, BUSY_PCT, load_case

    assert load_case([BUSY_PCT + 1, float("nan")]) == "over" and load_case([2.0, BUSY_PCT + 1]) == "over"
    assert load_case([2.0, 3.0 + BUSY_GAP]) == "apart" and load_case([2.0, 1.0 + BUSY_GAP]) == ""
    assert load_case([float("nan"), 25.0]) == "" and load_case([]) == ""
