"""compare (bench/analyse/regressions.py, bench/output/compare.py) and its gate on constructed results."""

import pandas as pd
import pytest

from bench.output.compare import STATUS, gate
from tests.conftest import CPU_ENV, GPU_ENV, in_process, results


def run_compare(tmp_path, base, cur, *args):
    return in_process("compare", base, cur, *args, cwd=tmp_path)


def test_identical_results_pass(tmp_path):
    a = results(tmp_path / "a", {1: [100, 101, 99], 4: [200, 202, 198]})
    b = results(tmp_path / "b", {1: [100, 101, 99], 4: [200, 202, 198]})
    out = run_compare(tmp_path, a, b)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 regression(s)" in out.stdout and "gate: pass" in out.stdout


def test_a_30_percent_drop_beyond_the_noise_fails(tmp_path):
    a = results(tmp_path / "a", {1: [100, 101, 99], 4: [200, 202, 198]})
    b = results(tmp_path / "b", {1: [100, 101, 99], 4: [140, 141, 139]})
    out = run_compare(tmp_path, a, b)
    assert out.returncode == 1
    assert "REGRESSION" in out.stdout and "1 regression(s)" in out.stdout and "gate: FAIL" in out.stdout


def test_a_30_percent_drop_inside_a_noisy_spread_cannot_be_judged(tmp_path):
    a = results(tmp_path / "a", {4: [200, 120, 260]})
    b = results(tmp_path / "b", {4: [140, 250, 100]})
    text, status = gate(a, b, {})
    assert status == STATUS["cannot judge"] == 3
    assert "worse, within noise" in text and "within the noise (" in text and "a gate needs" in text


def test_a_dip_within_the_noise_passes_where_a_30_percent_drop_is_ruled_out(tmp_path):
    """Two unchanged ci runs on 2 cores: a point 13% lower, its repeats within 3%: not a regression,
    and the gate can say a 30% drop did not happen."""
    a = results(tmp_path / "a", {1: [100, 103, 97], 2: [180, 185, 176]})
    b = results(tmp_path / "b", {1: [87, 90, 84], 2: [181, 178, 184]})
    text, status = gate(a, b, {})
    assert status == STATUS["pass"], text
    assert "worse, within noise; a 30% drop ruled out" in text


def test_a_drop_measured_beside_other_work_cannot_be_judged(tmp_path):
    """quick's case: the same code swept twice, the second time while other work took 70-80% of the
    2 cores: keras 2-3x slower, repeats apart. That is the machine, not the code."""
    quiet = dict(cpu_util_mean=52.0, proc_cpu_pct_mean=100.0)  # others: 2% of the machine
    busy = dict(cpu_util_mean=100.0, proc_cpu_pct_mean=50.0)  # others: 75%
    a = results(tmp_path / "a", {1: [100, 101, 99]}, **quiet)
    b = results(tmp_path / "b", {1: [40, 41, 39]}, **busy)
    text, status = gate(a, b, {})
    assert status == STATUS["cannot judge"], text
    assert "worse, cannot judge (current: other work took 75% of the CPU)" in text
    c = results(tmp_path / "c", {1: [40, 41, 39]}, **quiet)
    assert gate(a, c, {})[1] == STATUS["regression"]  # the same drop on a quiet machine fails


def scaled(source, target, factor):
    """A copy of a results folder with every images/s (median, min, max) times `factor`."""
    import shutil

    shutil.copytree(source, target)
    points = pd.read_csv(target / "points.csv", keep_default_na=False, na_values=[""])
    for column in ("train_img_s", "train_img_s_min", "train_img_s_max"):
        points[column] *= factor
    points.to_csv(target / "points.csv", index=False)
    return target


def test_the_gate_passes_the_same_figures_and_fails_every_rate_times_0_7(tmp_path):
    """Three repeats with 5 s windows on each side: the figures can bear a verdict."""
    a = results(tmp_path / "a", {1: [100, 104, 97], 4: [200, 207, 195]}, window_s=5.0)
    assert gate(a, a, {})[1] == STATUS["pass"] == 0
    text, status = gate(a, scaled(a, tmp_path / "slow", 0.7), {})
    assert status == STATUS["regression"] == 1
    assert "2 regression(s)" in text and "gate: FAIL" in text


@pytest.mark.parametrize("drop", [0.7, 0.3])
def test_a_drop_of_any_one_point_fails_on_the_same_machine_and_an_unchanged_run_passes(tmp_path, drop):
    """The ci preset's shape (keras and tfdata, workers 1 and 2, 3 repeats) with its gate: the
    absolute figures are gated on one machine, so a 30% or 70% drop of the default loader alone
    (keras w1) fails, though the ratios within the run would call it better."""
    rates = {1: [100, 104, 97], 2: [180, 186, 175]}
    a = results(tmp_path / "a", rates)
    ci = {"metric": "train_img_s", "factor": 1.1, "relative": [["workers", 1]]}
    assert gate(a, results(tmp_path / "same", {1: [101, 98, 103], 2: [182, 176, 185]}), ci)[1] == STATUS["pass"]
    slow = results(tmp_path / "slow", {1: [r * (1 - drop) for r in rates[1]], 2: rates[2]})
    text, status = gate(a, slow, ci)
    assert status == STATUS["regression"], text
    assert text.count("REGRESSION") == 1 and "better" in text  # w2/w1 rose: the ratio alone would pass it


def test_one_repeat_is_judged_as_any_other_and_the_repeats_a_gate_needs_are_said(tmp_path):
    """`mine` runs each point once: better and worse are judged alike against the assumed noise;
    a 30% drop it cannot settle says how many repeats a gate needs; a 3x drop fails."""
    once = results(tmp_path / "once", {4: [200]})
    text, status = gate(once, scaled(once, tmp_path / "once_slow", 0.7), {})
    assert status == STATUS["cannot judge"] and "a gate needs" in text and "20% assumed" in text
    assert gate(once, scaled(once, tmp_path / "once_fast", 1.3), {})[1] == STATUS["pass"]  # not "better" either
    assert "| better" not in gate(once, tmp_path / "once_fast", {})[0]
    assert gate(once, scaled(once, tmp_path / "once_3x", 0.3), {})[1] == STATUS["regression"]


def test_a_blank_knob_matches_its_default(tmp_path):
    """A baseline written before `cache` was filled in for keras (blank) matches a run that says False."""
    a = results(tmp_path / "a", {1: [100, 104, 97]})
    old = pd.read_csv(a / "points.csv", keep_default_na=False, na_values=[""])
    old["cache"] = None
    old.to_csv(tmp_path / "old.csv", index=False)
    text, status = gate(tmp_path / "old.csv", a, {})
    assert status == STATUS["pass"] and "only in" not in text


def test_lower_is_better_metrics_gate_the_other_way(tmp_path):
    a = results(tmp_path / "a", {4: [200, 202, 198]})
    b = results(tmp_path / "b", {4: [140, 141, 139]})  # slower: total_s up by 40%
    out = run_compare(tmp_path, a, b, "--metric", "total_s")
    assert out.returncode == 1 and "lower is better" in out.stdout


def test_missing_and_failed_configurations_are_reported(tmp_path):
    a = results(tmp_path / "a", {1: [100, 100, 100], 4: [200, 200, 200]})
    b = results(tmp_path / "b", {1: [None], 2: [150, 150, 150]})
    out = run_compare(tmp_path, a, b)
    assert out.returncode == 0
    assert "only in baseline" in out.stdout and "only in current" in out.stdout and "failed in current" in out.stdout


def test_different_machines_warn_and_strict_refuses(tmp_path):
    a = results(tmp_path / "a", {4: [200, 200, 200]})
    b = results(tmp_path / "b", {4: [900, 900, 900]}, env=GPU_ENV, label="h200")
    out = run_compare(tmp_path, a, b)
    assert out.returncode == 0 and "different machines" in out.stdout
    strict = run_compare(tmp_path, a, b, "--strict")
    assert strict.returncode == 2 and "different machines" in strict.stderr


def test_ratios_within_a_run_cancel_a_slower_machine(tmp_path):
    """Across machines the gate reads workers-2-over-1: a uniformly slower machine is no regression,
    a change that removes the workers' benefit is."""
    other = {**CPU_ENV, "cpu": "Slower CPU"}
    a = results(tmp_path / "a", {1: [100, 101, 99], 2: [200, 202, 198]})
    slower = results(tmp_path / "b", {1: [60, 61, 59], 2: [120, 121, 119]}, env=other)
    (tmp_path / "gate.toml").write_text(
        '[knobs]\nbackbone = "tiny"\n[gate]\nmetric = "train_img_s"\nfactor = 1.25\nrelative = [["workers", 1]]\n'
    )
    out = run_compare(tmp_path, a, slower, "--preset", tmp_path / "gate.toml")
    assert out.returncode == 0, out.stdout
    assert "not gated: another machine" in out.stdout and "workers=1" in out.stdout
    flat = results(tmp_path / "c", {1: [60, 61, 59], 2: [66, 67, 65]}, env=other)
    out = run_compare(tmp_path, a, flat, "--preset", tmp_path / "gate.toml")
    assert out.returncode == 1 and "REGRESSION" in out.stdout


def test_baseline_save_and_compare_against_it(tmp_path):
    a = results(tmp_path / "a", {4: [200, 200, 200]}, preset="ci")
    baseline = tmp_path / "baselines" / "cpu" / "ci.csv"
    saved = in_process("baseline", "save", a, "--out", baseline, cwd=tmp_path)
    assert saved.returncode == 0, saved.stderr
    assert baseline.is_file() and baseline.with_suffix(".env.json").is_file()
    out = run_compare(tmp_path, baseline, a)
    assert out.returncode == 0 and "different machines" not in out.stdout


def test_compare_refuses_what_it_cannot_read(tmp_path):
    out = run_compare(tmp_path, tmp_path / "nowhere", tmp_path / "nowhere")
    assert out.returncode == 2 and "no points.csv" in out.stderr
