"""The bound verdict, the noise warnings and the ceilings, on constructed records."""

import dataclasses

import pandas as pd
import pytest

from bench.analyse import cautions, repeats, verdicts
from bench.analyse.bounds import bound, judge, look_again
from bench.analyse.noise import Noise
from bench.analyse.points import medians, table
from bench.output import report, sections
from bench.plan.grid import model_ceiling, pipeline_ceiling
from bench.plan.knobs import RunSpec
from bench.results.record import RunRecord
from tests import tables
from tests.conftest import render_rows

QUIET = Noise(0.05, 20)  # 5% a run, measured


@pytest.mark.parametrize(
    "train, pipeline, model, expected, efficiency",
    [
        (95, 100, 500, "input", 0.95),  # at the pipeline's ceiling, far below the model's
        (90, 500, 100, "compute", 0.90),  # at the model's ceiling
        (40, 100, 120, "overhead", 0.40),  # far below both
        (95, 100, 104, "balanced", 0.95),  # ceilings within the noise of each other: neither is named
    ],
)
def test_bound(train, pipeline, model, expected, efficiency):
    found, eff, doubt = bound({"train_img_s": train, "pipeline_img_s": pipeline, "model_img_s": model}, QUIET)
    assert found == expected and eff == pytest.approx(efficiency) and doubt == ""


def test_no_bound_without_both_ceilings():
    assert bound({"train_img_s": 90, "pipeline_img_s": None, "model_img_s": 100}) == (None, None, "")
    assert bound({"train_img_s": 90, "pipeline_img_s": float("nan"), "model_img_s": 100}) == (None, None, "")


def test_end_to_end_above_its_ceiling_within_the_noise_is_at_that_ceiling_and_load_is_read():
    """quick's input-bound points with a tiny model: end to end a few % above the pipeline alone,
    inside the noise, is input-bound, not withheld; other work that came and went between the point
    and its ceiling is said, and so is a machine busy alike during both (no bound stated on it)."""
    rates = {"train_img_s": 530, "pipeline_img_s": 517, "model_img_s": 6700}
    assert bound(rates, QUIET)[::2] == ("input", "")
    apart = {**rates, "others_cpu_pct": 25.0, "pipeline_others_cpu_pct": 2.0}
    kind, _, doubt = bound(apart, QUIET)
    assert kind == "input" and doubt == (
        "measured under load: other work took 25% of the CPU during the point and 2% of the CPU during its "
        "pipeline-alone ceiling"
    )
    busy = {**rates, "others_cpu_pct": 60.0, "pipeline_others_cpu_pct": 58.0}
    judged = judge(busy, QUIET)
    assert judged.bound == "input" and judged.doubt.endswith(
        "58% of the CPU during its pipeline-alone ceiling (over 30%)"
    )
    assert judged.says == f"bound withheld: {judged.doubt}" and look_again(busy, QUIET) == "pipeline"


def record(spec, img_s, total_s=10.0, window_steps=60, **fields):
    """A run with a window of two epochs of 100 images at `img_s`."""
    fields = {
        "train_images_per_epoch": 100,
        "train_steps": 30,
        "val_steps": 1,
        "window_s": 200 / img_s if img_s else None,
    } | fields
    return RunRecord.for_spec(
        spec,
        status="ok",
        train_img_s=img_s,
        total_s=total_s,
        epochs_timed=3,
        window_steps=window_steps,
        cpu_util_mean=1,
        cpu_util_p90=1,
        **fields,
    ).to_dict()


def constructed():
    """A keras point, its two ceiling runs, and its train FLOPs, each timed over a 5 s window."""
    point = RunSpec(backbone="vgg16", input_size=32, batch=8, workers=1)
    rows = [
        record(point, 95.0, train_gflops_per_image=2.0, data_wait_frac=0.6, window_s=5.0),
        record(pipeline_ceiling(point), 100.0, decode_img_s_core=300.0, window_s=5.0),
        record(model_ceiling(point), 500.0, train_gflops_per_image=2.0, window_s=5.0),
    ]
    return point, rows


def test_ceilings_decode_ceiling_and_mfu_are_attached():
    point, rows = constructed()
    env, sweep = {"cpu_threads": 2}, {"peak_tflops": {"float32": 0.5}}
    points = table(rows, env, sweep).set_index("point_id")
    p = points.loc[point.point_id]
    assert p.pipeline_img_s == 100 and p.model_img_s == 500
    assert p.bound == "input" and p.efficiency == pytest.approx(0.95)
    assert p.decode_ceiling_img_s == 600 and p.pipeline_efficiency == pytest.approx(100 / 600)
    assert p.achieved_tflops == pytest.approx(0.19) and p.mfu == pytest.approx(0.38)


@pytest.mark.parametrize("math, peak", [("tf32", 494.7), ("float32", 67.0), ("", None)])
def test_mfu_against_the_datasheet_takes_the_row_of_the_math_the_run_used(math, peak):
    """float32 ran on TF32 tensor cores (JAX's, TensorFlow's and torch's convolutions' default on
    an H200): the TF32 row; full float32: the float32 row; not known (a row from before the math
    was recorded, on a GPU): none."""
    point = RunSpec(backbone="vgg16", batch=8, pipeline="synthetic")
    rows = [record(point, 1000.0, train_gflops_per_image=90.0, matmul_precision=math)]
    points = table(rows, {}, {"gpu": "h200"})
    if peak:
        assert points.mfu_datasheet[0] == pytest.approx(90.0 / peak)
    else:
        assert pd.isna(points.mfu_datasheet[0])


def test_the_report_says_where_the_time_goes():
    _, rows = constructed()
    text = render_rows(rows, {"cpu_threads": 2}, {"peak_tflops": {"float32": 0.5}})
    assert "## Where the time goes" in text and verdicts.RULE in text
    where = tables.table(text, "## Where the time goes")
    assert [(r["configuration"], r["bound"], r["data wait"], r["MFU"]) for r in where] == [
        ("keras w1 threads q10 b8", "input", "60%", "38.0%")
    ]
    assert "**Verdict.** 1 input-bound of 1 configurations." in text
    assert "input-bound at 95 images/s, below the 500 images/s the model can take" in text
    assert (
        "Decode ceiling at 32px (nearest): one core reads, decodes and resizes 300 images/s, so all cores 600" in text
    )
    assert "null" not in text.split("## Where the time goes")[0]  # ceiling runs stay out of the main tables


def _repeats(rates, totals, images=500, **knobs):
    spec = RunSpec(backbone="tiny", batch=8, **knobs)
    return [
        record(dataclasses.replace(spec, repeat=i), r, total_s=t, window_s=2 * images / r)
        for i, (r, t) in enumerate(zip(rates, totals))
    ], spec


def _warnings(rows):
    frame = pd.DataFrame(rows)
    return cautions.noise_warnings(frame, medians(frame))


def test_steady_repeats_raise_no_warning():
    rows, _ = _repeats([100, 102, 101], [10, 10.1, 10])
    assert _warnings(rows) == []


def test_spread_first_repeat_and_short_runs_are_warned_with_a_hint():
    rows, _ = _repeats([80, 100, 101], [14, 10, 10])
    notes = " ".join(_warnings(rows))
    assert "spread 21% between repeats" in notes and "Hint" in notes
    assert "first repeat took 1.40x the others" in notes
    short, _ = _repeats([1000, 1001, 1002], [1, 1, 1], images=100)
    assert "only 0.2 s measured per run, too short to time well" in " ".join(_warnings(short))


def test_a_rate_set_by_short_epochs_is_called_epoch_bound_with_the_fix():
    """An epoch of 5 batches for a loader 14 deep (4 workers, a queue of 10), and a window of 38
    steps: the loader refills every epoch, as in the seed's epochs of 5 batches for 32 workers."""
    rows, _ = _repeats([100, 101, 100], [10, 10, 10], window="epochs")
    for row in rows:
        row.update(train_steps=5, window_steps=38)
    notes = " ".join(_warnings(rows))
    assert "images/s is epoch-bound: each epoch has 5 batches for a loader 14 deep (workers + queue)" in notes
    assert "the window is 38 steps, under the 56 (max(50, 4 x (workers + queue)))" in notes
    assert "Hint: window=auto (the default) lengthens the epochs" in notes
    for row in rows:
        row.update(train_steps=28, window_steps=56)
    assert "epoch-bound" not in " ".join(_warnings(rows))


def test_a_sweeps_closing_verdict_is_the_reports_first_sentence_from_its_points(tmp_path):
    import json

    from bench.results.store import ResultStore

    _, rows = constructed()
    (tmp_path / "sweep.json").write_text(json.dumps({"peak_tflops": {"float32": 0.5}}))
    for row in rows:
        ResultStore(tmp_path).append(row)
    stated = next(
        line
        for line in report.write(tmp_path, plots=False).read_text().splitlines()
        if line.startswith("**Verdict.** ")
    )
    assert verdicts.folder_headline(tmp_path) == "1 input-bound of 1 configurations."
    assert stated.startswith("**Verdict.** " + verdicts.folder_headline(tmp_path) + " ")
    assert verdicts.folder_headline(tmp_path / "empty") == ""  # no points: the report gives no verdict


def test_verdict_names_the_setting_that_changed_most():
    rows = []
    for workers, rate in ((1, 50.0), (4, 150.0)):
        for mp in (False, True):
            rows.append(
                record(RunSpec(backbone="tiny", batch=8, workers=workers, use_multiprocessing=mp), rate, window_s=5.0)
            )
    points = table(rows, {}, {})
    points["bound"], points["efficiency"] = "input", 0.9
    points["model_img_s"] = 500.0
    assert "`workers` = 4 gave 3.00x the images/s of 1" in verdicts.verdict(points)


def test_the_feed_table_says_how_many_cores_keep_the_model_fed():
    """The model takes 500 images/s; one core decodes 300 of this data: 1.7 cores keep it fed, and
    the keras loader's 95 images/s end to end are 19% of the model's rate."""
    point, rows = constructed()
    p = table(rows, {"cpu_threads": 2}, {}).set_index("point_id").loc[point.point_id]
    assert p.model_share == pytest.approx(0.19) and p.cores_to_feed == pytest.approx(500 / 300)
    text = render_rows(rows, {"cpu_threads": 2}, {})
    section = text[text.index("## What would feed this GPU") :]
    assert "(this machine has 2 threads)" in section
    row = next(line for line in section.splitlines() if line.startswith("| vgg16"))
    assert [c.strip() for c in row.strip("|").split("|")] == [
        "vgg16 32px float32 on tensorflow",
        "keras w1 threads q10 b8",
        "500",
        "95",
        "100",
        "19%",
        "300",
        "1.7",
    ]


def _rows(point, train, pipeline, model, window_s=5.0, model_window_s=None):
    """The rows of a point and its two ceilings, each given as a list of repeats' images/s."""
    rows = []
    for spec, rates, window in (
        (point, train, window_s),
        (pipeline_ceiling(point), pipeline, window_s),
        (model_ceiling(point), model, model_window_s or window_s),
    ):
        rows += [record(dataclasses.replace(spec, repeat=i), r, window_s=window) for i, r in enumerate(rates)]
    return rows


def _point_and_ceilings(train, pipeline, model, window_s=5.0, model_window_s=None):
    """A keras point and its two ceilings, each a list of repeats' images/s."""
    point = RunSpec(backbone="tiny", input_size=32, batch=8, workers=1)
    return point, table(_rows(point, train, pipeline, model, window_s, model_window_s), {}, {})


def test_an_efficiency_above_the_ceiling_is_named_inconsistent_not_a_bound():
    """The smoke sweep's tfdata: end to end 3.13x the model-alone ceiling on 0.3 s windows."""
    point, points = _point_and_ceilings([313.0], [1000.0], [100.0], window_s=0.3)
    text = verdicts.verdict(points)
    assert "compute-bound" not in text and "Bound withheld for 1 of 1 configurations" in text
    assert (
        "inconsistent measurement: 313 images/s end to end is 3.13x the model-alone ceiling of 100, beyond the "
        "noise (20% assumed (no point has two repeats); each of 2 claims made together at 99.25%); likely cause: "
        "the ceiling and the point measured apart"
    ) in text
    p = points.set_index("point_id").loc[point.point_id]
    assert sections.bound_cell(p.bound, p.bound_doubt) == "inconsistent"
    # a measurement to fix: the point and the ceiling it beats are measured again
    assert repeats.unsettled(points) == {point.point_id, model_ceiling(point).point_id}


def test_overhead_must_be_shown_an_efficiency_near_the_line_names_the_ceiling_and_asks_one_more_look():
    _, short = _point_and_ceilings([95.0], [100.0], [500.0], window_s=0.5)  # one repeat: the assumed noise
    assert verdicts.verdict(short).startswith("1 input-bound of 1 configurations.")
    point, noisy = _point_and_ceilings([70.0, 75.0, 80.0], [90.0, 100.0, 110.0], [500.0, 500.0, 500.0])
    # 0.75 is within the noise of the 0.8 line: no bound is named against it, and one more look is asked
    assert verdicts.verdict(noisy).startswith("No bound named of 1 configurations, 1 withheld.")
    assert "neither at that ceiling nor below it beyond the noise" in verdicts.verdict(noisy)
    assert point.point_id in repeats.unsettled(noisy)
    _, slow = _point_and_ceilings([50.0, 51.0, 52.0], [99.0, 100.0, 101.0], [500.0, 500.0, 500.0])
    assert verdicts.verdict(slow).startswith("1 overhead-bound of 1 configurations.")
    _, steady = _point_and_ceilings([94.0, 95.0, 96.0], [99.0, 100.0, 101.0], [500.0, 500.0, 500.0])
    assert verdicts.verdict(steady).startswith("1 input-bound of 1 configurations.")


def test_a_ceiling_is_measured_again_only_while_its_margin_over_the_other_is_unclear():
    """The quick sweep's case: a model alone 7x a pipeline's, one repeat each: clear even on the
    noise of one repeat pair. Ceilings within the noise of each other, or one that failed, are measured again."""
    point, apart = _point_and_ceilings([95.0, 96.0], [100.0], [700.0])
    assert repeats.clear_ceilings(apart) == {pipeline_ceiling(point).point_id, model_ceiling(point).point_id}
    _, close = _point_and_ceilings([95.0, 96.0], [100.0], [110.0])  # 1.1x: inside the noise on 1 degree
    assert repeats.clear_ceilings(close) == set()
    _, failed = _point_and_ceilings([95.0, 96.0], [100.0], [])
    assert repeats.clear_ceilings(failed) == set()


def test_a_pass_that_repeats_as_needed_runs_the_unsettled_points_and_no_clear_ceiling(tmp_path):
    """quick's passes (bench/passes.py): after one repeat on the assumed noise, a point at its
    ceiling (efficiency 0.95) is settled, one at 0.48 is not (within 20% of the 0.8 line), their
    order is clear (2x); the one at 0.48 runs with the pipeline ceiling it is judged against, and the
    model ceiling the two share (7x away) runs again, as a shared ceiling measured once does."""
    from bench.passes import passes
    from bench.plan.grid import ceiling_probes
    from bench.results.store import ResultStore

    at, below = (
        RunSpec(backbone="tiny", input_size=32, batch=8, workers=1),
        RunSpec(backbone="tiny", input_size=32, batch=8, workers=2),
    )
    grid = [dataclasses.replace(s, repeat=r) for s in (at, below) for r in (0, 1)]
    probes = ceiling_probes(grid)
    store = ResultStore(tmp_path).create()
    rates = {
        at.point_id: 95.0,
        below.point_id: 48.0,
        pipeline_ceiling(at).point_id: 100.0,
        pipeline_ceiling(below).point_id: 100.0,
        model_ceiling(at).point_id: 700.0,
    }
    walk = passes(probes, grid, tmp_path, as_needed=True)
    first = next(walk)
    assert {s.point_id for s in first} == set(rates) and {s.repeat for s in first} == {0}
    for spec in first:
        store.append(record(spec, rates[spec.point_id], window_s=5.0))
    second = next(walk)
    assert {(s.point_id, s.repeat) for s in second} == {
        (below.point_id, 1),
        (pipeline_ceiling(below).point_id, 1),
        (model_ceiling(at).point_id, 1),
    }
    every = list(passes(probes, grid, tmp_path))  # every repeat: each point again, no clear ceiling
    assert {s.point_id for s in every[1]} == {at.point_id, below.point_id}


def test_one_more_look_only_where_the_ranking_of_the_fastest_depends_on_it():
    slow, points = _point_and_ceilings([50.0, 51.0], [100.0], [700.0])
    fast = dataclasses.replace(slow, workers=2)
    rows = [record(dataclasses.replace(fast, repeat=i), r, window_s=5.0) for i, r in enumerate([94.0, 96.0])]
    rows += [record(dataclasses.replace(pipeline_ceiling(fast), repeat=0), 100.0, window_s=5.0)]
    both = table([*_rows(slow, [50.0, 51.0], [100.0], [700.0]), *rows], {}, {})
    assert repeats.unsettled(both) == {model_ceiling(slow).point_id}  # 95 against 50: the ranking stands; the
    # model ceiling the two share, measured once, runs again
    close = [record(dataclasses.replace(fast, repeat=i), r, window_s=5.0) for i, r in enumerate([52.0, 53.0])]
    tied = table([*_rows(slow, [50.0, 51.0], [100.0], [700.0]), *close], {}, {})
    assert {slow.point_id, fast.point_id} <= repeats.unsettled(tied)


def test_a_cpu_only_verdict_gives_no_gpu_advice_and_its_report_no_gpu_section():
    _, steady = _point_and_ceilings([94.0, 95.0, 96.0], [99.0, 100.0, 101.0], [500.0, 500.0, 500.0])
    assert "a faster GPU would not speed" in verdicts.verdict(steady)
    assert "GPU" not in verdicts.verdict(steady, gpu=False)
    assert not sections.trains_on_gpu({"gpu": "cpu", "gpu_used": False}) and sections.trains_on_gpu({"gpu": "h200"})


def test_which_ceiling_is_lower_is_told_by_the_noise_rule_whatever_the_windows():
    """quick's case: the tiny model alone ran 140 steps in 0.4 s, far above the loader's rate, or
    nearer; ceilings within the noise of each other are balanced, neither named."""
    for model in ([4800.0, 5200.0], [700.0, 760.0]):
        _, points = _point_and_ceilings([390.0, 400.0], [395.0, 405.0], model, model_window_s=0.4)
        assert verdicts.verdict(points).startswith("1 input-bound of 1 configurations.")
    _, even = _point_and_ceilings([390.0, 400.0], [395.0, 405.0], [400.0, 410.0], model_window_s=0.4)
    assert verdicts.verdict(even).startswith("1 balanced-bound of 1 configurations.")


def test_the_setting_that_changed_most_is_withheld_where_the_repeats_overlap():
    rows = [
        record(RunSpec(backbone="tiny", batch=8, workers=w, repeat=i), r, window_s=5.0)
        for w, rates in ((1, [90.0, 110.0]), (4, [100.0, 120.0]))
        for i, r in enumerate(rates)
    ]
    points = table(rows, {}, {})
    points["bound"] = None
    text = verdicts._helped_most(points)
    assert text.startswith(
        "No setting is named as the one that changed images/s most: `workers` differed most "
        "(4 over 1), but the difference (1.10x) is within the noise"
    )


def test_fastest_ranks_what_a_user_can_run_and_says_when_it_cannot_tell():
    keras, tfdata = (RunSpec(backbone="tiny", batch=8, pipeline=p, workers=1) for p in ("keras", "tfdata"))
    synthetic = RunSpec(backbone="tiny", batch=8, pipeline="synthetic")
    null = RunSpec(backbone="null", batch=8, pipeline="keras", workers=1)
    rows = [record(synthetic, 1000.0, window_s=5.0), record(null, 800.0, window_s=5.0)]
    rows += [record(dataclasses.replace(keras, repeat=i), r, window_s=5.0) for i, r in enumerate([140.0, 150.0, 145.0])]
    rows += [
        record(dataclasses.replace(tfdata, repeat=i), r, window_s=5.0) for i, r in enumerate([100.0, 110.0, 105.0])
    ]
    said = verdicts.fastest(table(rows, {}, {}))
    assert said.startswith("**keras w1 threads q10**, batch 8, tiny at 224px: 144.9 training images/s (geometric mean")
    assert "beyond the noise" in said
    rows[-1]["train_img_s"] = 145.0  # tfdata's repeats now spread over keras's
    said = verdicts.fastest(table(rows, {}, {}))
    assert said.startswith("Not named: the highest is **keras") and "is within the noise" in said


def test_a_point_without_a_bound_has_no_doubt_about_it():
    point = RunSpec(backbone="tiny", batch=8, workers=1)
    points = table([record(point, 100.0, window_s=0.5)], {}, {})  # no ceilings measured
    assert pd.isna(points.bound[0]) and points.bound_doubt[0] == ""
