"""compare (bench/analyse/regressions.py, bench/output/compare.py) and its gate on constructed results."""

from types import SimpleNamespace

import pandas as pd
import pytest

from bench import cli
from bench.analyse.regressions import STATUS, judge
from bench.output.compare import render
from tests.conftest import CPU_ENV, GPU_ENV, results


@pytest.fixture
def run_compare(capsys):
    """`gpubench compare BASE CURRENT ARGS` in-process: its exit status, standard output and error."""

    def run(base, cur, *args):
        code = cli.main(["compare", str(base), str(cur), *map(str, args)])
        out, err = capsys.readouterr()
        return SimpleNamespace(returncode=code, stdout=out, stderr=err)

    return run


def gate(baseline, current, preset_gate: dict) -> tuple[str, int]:
    return render(judge(baseline, current, preset_gate))


def test_identical_results_pass(tmp_path, run_compare):
    a = results(tmp_path / "a", {1: [100, 101, 99], 4: [200, 202, 198]})
    b = results(tmp_path / "b", {1: [100, 101, 99], 4: [200, 202, 198]})
    out = run_compare(a, b)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 regression(s)" in out.stdout and "gate: pass" in out.stdout


def test_a_30_percent_drop_beyond_the_noise_fails(tmp_path, run_compare):
    a = results(tmp_path / "a", {1: [100, 101, 99], 4: [200, 202, 198]})
    b = results(tmp_path / "b", {1: [100, 101, 99], 4: [140, 141, 139]})
    out = run_compare(a, b)
    assert out.returncode == 1
    assert "REGRESSION" in out.stdout and "1 regression(s)" in out.stdout and "gate: FAIL" in out.stdout


def test_a_30_percent_drop_inside_a_noisy_spread_cannot_be_judged(tmp_path):
    a = results(tmp_path / "a", {4: [200, 120, 260]})
    b = results(tmp_path / "b", {4: [140, 250, 100]})
    text, status = gate(a, b, {})
    assert status == STATUS["cannot judge"] == 3
    assert "cannot judge yet: a 30% drop not ruled out" in text and "deciding needs" in text


def test_a_dip_within_the_noise_passes_where_a_30_percent_drop_is_ruled_out(tmp_path):
    """Two unchanged ci runs on 2 cores: a point 13% lower, its repeats within 3%: not a regression,
    and the gate can say a 30% drop did not happen."""
    a = results(tmp_path / "a", {1: [100, 103, 97], 2: [180, 185, 176]})
    b = results(tmp_path / "b", {1: [87, 90, 84], 2: [181, 178, 184]})
    text, status = gate(a, b, {})
    assert status == STATUS["pass"], text
    assert "worse, within noise; a 30% drop ruled out" in text
    text, status = gate(b, a, {})  # the other way round: 1.15x faster, not beyond the noise: said, not claimed
    assert status == STATUS["pass"] and "better, within noise" in text, text


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
    """A copy of a results folder with every images/s (median, geometric mean, min, max) times `factor`."""
    import shutil

    shutil.copytree(source, target)
    points = pd.read_csv(target / "points.csv", keep_default_na=False, na_values=[""])
    for column in ("train_img_s", "train_img_s_geo", "train_img_s_min", "train_img_s_max"):
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
    """The ci preset's gate on one machine: the absolute figures are gated, so a 30% or 70% drop
    of the default loader alone (keras w1) fails."""
    rates = {1: [100, 104, 97], 2: [180, 186, 175]}
    a = results(tmp_path / "a", rates)
    ci = {"metric": "train_img_s", "factor": 1.1}
    assert gate(a, results(tmp_path / "same", {1: [101, 98, 103], 2: [182, 176, 185]}), ci)[1] == STATUS["pass"]
    slow = results(tmp_path / "slow", {1: [r * (1 - drop) for r in rates[1]], 2: rates[2]})
    text, status = gate(a, slow, ci)
    assert status == STATUS["regression"], text
    assert text.count("REGRESSION") == 1


def test_one_repeat_is_judged_as_any_other_and_the_repeats_a_gate_needs_are_said(tmp_path):
    """`mine` runs each point once: better and worse are judged alike against the assumed noise;
    a 30% drop it cannot settle says how many repeats a gate needs; a 3x drop fails."""
    once = results(tmp_path / "once", {4: [200]})
    text, status = gate(once, scaled(once, tmp_path / "once_slow", 0.7), {})
    assert status == STATUS["cannot judge"] and "deciding needs" in text and "20% assumed" in text
    assert gate(once, scaled(once, tmp_path / "once_fast", 1.3), {})[1] == STATUS["pass"]  # not "better" either
    assert "| better |" not in gate(once, tmp_path / "once_fast", {})[0]  # said within the noise, not claimed
    assert "better, within noise" in gate(once, tmp_path / "once_fast", {})[0]
    assert gate(once, scaled(once, tmp_path / "once_3x", 0.3), {})[1] == STATUS["regression"]


def test_a_blank_knob_matches_its_default(tmp_path):
    """A baseline written before `cache` was filled in for keras (blank) matches a run that says False."""
    a = results(tmp_path / "a", {1: [100, 104, 97]})
    old = pd.read_csv(a / "points.csv", keep_default_na=False, na_values=[""])
    old["cache"] = None
    old.to_csv(tmp_path / "old.csv", index=False)
    text, status = gate(tmp_path / "old.csv", a, {})
    assert status == STATUS["pass"] and "only in" not in text


def test_a_baseline_saved_before_a_knob_existed_matches_the_points_at_its_default(tmp_path):
    """A knob added after the baseline was saved: its column is missing there, read as the default."""
    a = results(tmp_path / "a", {1: [100, 104, 97]})
    old = pd.read_csv(a / "points.csv", keep_default_na=False, na_values=[""]).drop(columns=["transfer"])
    old.to_csv(tmp_path / "old.csv", index=False)
    text, status = gate(tmp_path / "old.csv", a, {})
    assert status == STATUS["pass"] and "only in" not in text


def test_lower_is_better_metrics_gate_the_other_way(tmp_path, run_compare):
    a = results(tmp_path / "a", {4: [200, 202, 198]})
    b = results(tmp_path / "b", {4: [140, 141, 139]})  # slower: total_s up by 40%
    out = run_compare(a, b, "--metric", "total_s")
    assert out.returncode == 1 and "lower is better" in out.stdout


def test_missing_and_failed_configurations_are_reported(tmp_path, run_compare):
    a = results(tmp_path / "a", {1: [100, 100, 100], 4: [200, 200, 200]})
    b = results(tmp_path / "b", {1: [None], 2: [150, 150, 150]})
    out = run_compare(a, b)
    assert out.returncode == 0
    assert "only in baseline" in out.stdout and "only in current" in out.stdout and "failed in current" in out.stdout


def test_other_hardware_is_said_and_strict_refuses(tmp_path, run_compare):
    """One configuration on a CPU and on an H200: nothing in its run to hold it against, so nothing gated."""
    a = results(tmp_path / "a", {4: [200, 200, 200]})
    b = results(tmp_path / "b", {4: [900, 900, 900]}, env=GPU_ENV, label="h200")
    out = run_compare(a, b)
    assert out.returncode == 0 and "other hardware (cpu Test CPU vs Other CPU" in out.stdout
    assert "alone in its run" in out.stdout
    strict = run_compare(a, b, "--strict")
    assert strict.returncode == 2 and "other hardware" in strict.stderr


def test_against_its_run_a_slower_machine_cancels(tmp_path, run_compare):
    """Across machines each configuration is read against its run's geometric mean: a uniformly
    slower machine is no regression, a change that removes the workers' benefit is."""
    other = {**CPU_ENV, "cpu": "Slower CPU"}
    a = results(tmp_path / "a", {1: [100, 101, 99], 2: [200, 202, 198]})
    slower = results(tmp_path / "b", {1: [60, 61, 59], 2: [120, 121, 119]}, env=other)
    (tmp_path / "gate.toml").write_text('[knobs]\nbackbone = "tiny"\n[gate]\nmetric = "train_img_s"\nfactor = 1.25\n')
    out = run_compare(a, slower, "--preset", tmp_path / "gate.toml")
    assert out.returncode == 0, out.stdout
    assert "shown, not gated: other hardware" in out.stdout and "geometric mean of each run" in out.stdout
    flat = results(tmp_path / "c", {1: [60, 61, 59], 2: [66, 67, 65]}, env=other)
    out = run_compare(a, flat, "--preset", tmp_path / "gate.toml")
    assert out.returncode == 1 and out.stdout.split("## Absolute")[0].count("REGRESSION") == 1


def test_baseline_save_and_compare_against_it(tmp_path, run_compare):
    a = results(tmp_path / "a", {4: [200, 200, 200]}, preset="ci")
    baseline = tmp_path / "baselines" / "cpu" / "ci.csv"
    assert cli.main(["baseline", "save", str(a), "--out", str(baseline)]) == 0
    assert baseline.is_file() and baseline.with_suffix(".env.json").is_file()
    out = run_compare(baseline, a)
    assert out.returncode == 0 and "same hardware and software" in out.stdout


def test_compare_refuses_what_it_cannot_read(tmp_path, run_compare):
    out = run_compare(tmp_path / "nowhere", tmp_path / "nowhere")
    assert out.returncode == 2 and "no points.csv" in out.stderr
