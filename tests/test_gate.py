"""The regression gate's cases, each on constructed results folders through the command line
in-process: hardware told from software, each metric with its own noise, a saved baseline's noise,
load, and the gate that measures again (bench/regress.py) with the sweep's session stood in for."""

import subprocess
from pathlib import Path

import pytest
import yaml

from bench import cli
from bench.analyse import points
from tests.constructed import CI, ENV, ci_rates, folder, noisy, row, spec

ROOT = Path(__file__).resolve().parents[1]
OTHER_CPU = {**ENV, "cpu": "Other CPU", "cpu_threads": 8}


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """The ci preset's four configurations, six repeats 3% apart: the baseline most cases compare against."""
    return folder(tmp_path_factory.mktemp("gate") / "base", ci_rates())


def gate(capsys, *argv) -> tuple[int, str]:
    code = cli.main(["compare", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out + err


def test_a_framework_upgrade_on_the_same_hardware_is_gated_and_named(tmp_path, capsys, base):
    """Every configuration 30% slower after TensorFlow 2.21 -> 2.22: the ratios within a run cancel
    it, the absolute figures do not, and the same hardware lets them be gated."""
    upgraded = folder(tmp_path / "up", ci_rates({c: 0.7 for c in CI}, seed=10), env={**ENV, "tensorflow": "2.22.0"})
    code, text = gate(capsys, base, upgraded, "--preset", "ci")
    assert code == 1, text
    assert text.count("REGRESSION") == 4 and "same hardware, other software (tensorflow 2.21.0 vs 2.22.0)" in text
    code, text = gate(capsys, base, folder(tmp_path / "same", ci_rates(seed=20)), "--preset", "ci")
    assert code == 0 and "same hardware and software" in text, text


def test_the_base_configuration_slower_on_other_hardware_fails(tmp_path, capsys, base):
    """keras w1, the base of the old pairwise ratios, 30% slower on another CPU that is 0.8x as fast:
    against the run's geometric mean it is caught, and the absolute figures are shown, not gated."""
    slower = {c: 0.8 * (0.7 if c == ("keras", 1) else 1) for c in CI}
    other = folder(tmp_path / "other", ci_rates(slower, seed=10), env=OTHER_CPU)
    code, text = gate(capsys, base, other, "--preset", "ci")
    assert code == 1, text
    assert "other hardware (cpu Test CPU vs Other CPU; cpu_threads 2 vs 8)" in text
    assert "## Absolute (shown, not gated: other hardware)" in text
    gated = text.split("## Absolute")[0]
    assert gated.count("REGRESSION") == 1 and "| keras      |         1 |" in gated.split("REGRESSION")[0]


@pytest.mark.parametrize("preset", [[], ["--preset", "ci"]])
def test_absolute_rates_are_not_gated_across_hardware_without_the_flag(tmp_path, capsys, base, preset):
    """Unchanged code on a machine 0.8x as fast passes; one configuration 30% slower on a machine 2x
    as fast fails; --across-hardware gates the absolute figures, and the slower machine then fails."""
    slower = folder(tmp_path / "slower", ci_rates({c: 0.8 for c in CI}, seed=10), env=OTHER_CPU)
    code, text = gate(capsys, base, slower, *preset)
    assert code == 0 and "REGRESSION" in text.split("## Absolute")[1], text  # shown, not gated
    faster = folder(tmp_path / "faster", ci_rates({c: 2 * (0.7 if c == CI[3] else 1) for c in CI}, seed=20), OTHER_CPU)
    assert gate(capsys, base, faster, *preset)[0] == 1
    code, text = gate(capsys, base, slower, *preset, "--across-hardware")
    assert code == 1 and "gated too (--across-hardware)" in text


def test_strict_refuses_other_hardware_but_not_other_software(tmp_path, capsys, base):
    other = folder(tmp_path / "other", ci_rates(), env=OTHER_CPU)
    code, text = gate(capsys, base, other, "--strict")
    assert code == 2 and "--strict: the two results come from other hardware" in text
    upgraded = folder(tmp_path / "up", ci_rates(), env={**ENV, "keras": "3.16.0"})
    assert gate(capsys, base, upgraded, "--strict")[0] == 0


def with_ceilings(path, pipeline_alone, model_alone, sd=0.1):
    """keras w1 six times (`sd` apart), its two ceilings measured as given."""
    rates = {("keras", 1): noisy(100, 6, sd, 1)}
    return folder(path, rates, ceilings={("keras", 1): (pipeline_alone, model_alone)})


@pytest.mark.parametrize(
    "metric, before, after",
    [("pipeline_img_s", (200, 400), (150, 400)), ("model_img_s", (400, 200), (400, 150)),
     ("efficiency", (200, 400), (800 / 3, 400))],  # efficiency 0.5 -> 0.375: the pipeline ceiling up
)  # fmt: skip
def test_a_ceiling_is_judged_with_its_own_repeats(tmp_path, capsys, metric, before, after):
    """A figure 25% lower with ceilings measured once beside a point of six repeats: one repeat of a
    ceiling cannot tell that from the noise (efficiency: both of its rates' repeats); six can."""
    once = [with_ceilings(tmp_path / name, [pl], [m]) for name, (pl, m) in (("a", before), ("b", after))]
    code, text = gate(capsys, *once, "--metric", metric)
    assert code == 3 and "cannot judge yet" in text, text
    six = [
        with_ceilings(tmp_path / name, noisy(pl, 6, 0.05, 2), noisy(m, 6, 0.05, 3), sd=0.05)
        for name, (pl, m) in (("c", before), ("d", after))
    ]
    code, text = gate(capsys, *six, "--metric", metric)
    assert code == 1, text


@pytest.mark.parametrize("metric", ["total_s", "first_epoch_s", "epoch_s_median"])
def test_a_time_is_judged_with_its_own_spread(tmp_path, capsys, metric):
    """Rates 1% apart, but a time that varies 20% run to run (start-up, a cold cache): 25% longer is
    within its own noise; the same 25% with a time 1% apart is a regression."""
    steady = {c: noisy(300, 6, 0.01, i) for i, c in enumerate(CI)}

    def times(spread, scale, seed):
        wide = {c: noisy(10.0 * scale, 6, spread, seed + i) for i, c in enumerate(CI)}
        return lambda config, repeat: {metric: wide[config][repeat]}

    base = folder(tmp_path / "a", steady, per_run=times(0.2, 1, 0))
    slow = folder(tmp_path / "b", steady, per_run=times(0.2, 1.25, 10))
    code, text = gate(capsys, base, slow, "--metric", metric)
    assert code == 3 and "lower is better" in text, text
    base = folder(tmp_path / "c", steady, per_run=times(0.01, 1, 0))
    slow = folder(tmp_path / "d", steady, per_run=times(0.01, 1.25, 10))
    assert gate(capsys, base, slow, "--metric", metric)[0] == 1


def test_a_saved_baseline_keeps_its_noise_and_repeats(tmp_path, capsys):
    a = folder(tmp_path / "a", ci_rates(sd=0.1))
    assert cli.main(["baseline", "save", str(a), "--out", str(tmp_path / "base.csv")]) == 0
    saved = points.read_csv(tmp_path / "base.csv")
    assert (saved.noise_df == 20).all() and (saved.repeats_ok == 6).all() and saved.noise_sd.notna().all()
    assert len((tmp_path / "base.runs.jsonl").read_text().splitlines()) == 24
    b = folder(tmp_path / "b", ci_rates({CI[1]: 0.7}, sd=0.1, seed=10))
    cli.main(["baseline", "save", str(b), "--out", str(tmp_path / "slow.csv")])
    capsys.readouterr()
    code, text = gate(capsys, tmp_path / "base.csv", tmp_path / "slow.csv")
    assert code == 1 and "assumed" not in text and "40 degrees of freedom" in text, text


def test_a_baseline_saved_before_the_noise_columns_reads_its_noise_from_the_ranges(tmp_path, capsys):
    """The ci baseline as committed before the noise columns (tests/ci_baseline_3_repeats.csv: each point's
    min and max of 3 repeats, no noise_sd, no runs file): two such files are judged at the spread their
    ranges give, not an assumed 20%."""
    table = points.read_csv(ROOT / "tests" / "ci_baseline_3_repeats.csv")
    assert "noise_sd" not in table and "train_img_s_geo" not in table
    table.to_csv(tmp_path / "old.csv", index=False)
    for column in ("train_img_s", "train_img_s_min", "train_img_s_max"):
        table[column] *= 0.7
    table.to_csv(tmp_path / "slow.csv", index=False)
    code, text = gate(capsys, tmp_path / "old.csv", tmp_path / "slow.csv")
    assert code == 1 and "assumed" not in text and "a run, pooled" in text, text
    assert gate(capsys, tmp_path / "old.csv", tmp_path / "old.csv")[0] == 0


def test_figures_measured_under_load_are_not_passed(tmp_path, capsys):
    """A current measured while other work took 75% of the CPU and slower: not a pass, not a regression
    (measured again by --remeasure); a baseline measured under load cannot vouch for a pass."""
    quiet, busy = dict(cpu_util_mean=52.0, proc_cpu_pct_mean=100.0), dict(cpu_util_mean=100.0, proc_cpu_pct_mean=50.0)
    base = folder(tmp_path / "a", ci_rates(), **quiet)
    loaded = folder(tmp_path / "b", ci_rates({c: 0.5 for c in CI}, seed=10), **busy)
    code, text = gate(capsys, base, loaded)
    assert code == 3 and "worse, cannot judge (current: other work took 75% of the CPU)" in text, text
    code, text = gate(capsys, folder(tmp_path / "c", ci_rates(), **busy), folder(tmp_path / "d", ci_rates(), **quiet))
    assert code == 3 and "save it again on a machine left to the sweep" in text, text


class Session:
    """bench.session.run stood in for: each run asked for is a row of `rate(point_id, repeat)`
    images/s (a run asked again replaces its row), points.csv rewritten; what was asked is kept."""

    def __init__(self, rate, **figures):
        self.rate, self.figures, self.asked = rate, figures, []

    def run(self, grid, preset_name, data_spec, options):
        from bench.results.store import ResultStore

        store = ResultStore(options.out)
        done = store.done()
        todo = [s for s in grid if options.force or s.run_id not in done]
        self.asked.append(([s.run_id for s in todo], options.force))
        rows = [row(s, self.rate(s.point_id, s.repeat), **self.figures) for s in todo]
        for r in rows:
            store.append(r)
        points.write_csv(options.out)
        return Path(options.out) / "report.md", rows


def test_remeasure_measures_the_undecided_configuration_until_it_decides(tmp_path, capsys, monkeypatch):
    """A configuration 20% lower, its six repeats 10% apart: neither a regression nor a 30% drop ruled
    out. The gate measures it to 9 repeats, then 12; a fourth configuration's runs stay as they were."""
    from bench import session

    base = folder(tmp_path / "base", ci_rates(sd=0.1))
    rates = ci_rates({CI[0]: 0.8}, sd=0.1, seed=10)
    cur = folder(tmp_path / "cur", rates)
    assert gate(capsys, base, cur, "--preset", "ci")[0] == 3
    stand_in = Session(lambda pid, repeat: 160.0)  # keras w1 goes on at 0.8x
    monkeypatch.setattr(session, "run", stand_in.run)
    code, text = gate(capsys, base, cur, "--preset", "ci", "--remeasure")
    keras_w1 = spec(*CI[0]).point_id
    assert [asked for asked, _ in stand_in.asked][0] == [f"{keras_w1}-r{r}" for r in (6, 7, 8)]
    assert code in (0, 1) and "Measured again: " in text and f"{keras_w1} to 9 repeats" in text, text
    assert {run.rsplit("-r", 1)[0] for asked, _ in stand_in.asked for run in asked} == {keras_w1}


def test_remeasure_says_cannot_judge_with_the_repeats_it_would_need_once_its_budget_is_spent(
    tmp_path, capsys, monkeypatch
):
    """Each new repeat lands on the line between a regression and a pass: at 12 runs the gate stops and
    CI fails (exit 3), naming the repeats a decision needs."""
    from bench import session

    base = folder(tmp_path / "base", ci_rates(sd=0.15))
    cur = folder(tmp_path / "cur", ci_rates({CI[0]: 0.77}, sd=0.15, seed=10))
    stand_in = Session(lambda pid, repeat: 200 * 0.77 * (1.2 if repeat % 2 else 1 / 1.2))
    monkeypatch.setattr(session, "run", stand_in.run)
    code, text = gate(capsys, base, cur, "--preset", "ci", "--remeasure")
    assert code == 3 and "to 12 repeats" in text and "deciding needs" in text, text
    assert len(stand_in.asked) == 2  # 6 -> 9 -> 12, then the budget is spent


def test_remeasure_measures_a_loaded_configuration_again_and_its_quiet_runs_replace_the_loaded(
    tmp_path, capsys, monkeypatch
):
    from bench import session

    quiet, busy = dict(cpu_util_mean=52.0, proc_cpu_pct_mean=100.0), dict(cpu_util_mean=100.0, proc_cpu_pct_mean=50.0)
    base = folder(tmp_path / "base", ci_rates(), **quiet)
    cur = folder(tmp_path / "cur", ci_rates({CI[2]: 0.5}, seed=10), **busy)
    stand_in = Session(lambda pid, repeat: [200, 300, 250, 400][[spec(*c).point_id for c in CI].index(pid)], **quiet)
    monkeypatch.setattr(session, "run", stand_in.run)
    code, text = gate(capsys, base, cur, "--preset", "ci", "--remeasure")
    assert stand_in.asked == [([f"{spec(*CI[2]).point_id}-r{r}" for r in range(6, 12)], False)]
    assert code == 0 and "to 12 repeats (under load)" in text, text


def test_remeasure_needs_a_preset_with_a_budget_and_a_results_folder(tmp_path, capsys, base):
    assert gate(capsys, base, base, "--remeasure")[0] == 2
    (tmp_path / "nobudget.toml").write_text('[knobs]\nbackbone = "tiny"\n[gate]\nfactor = 1.2\n')
    code, text = gate(capsys, base, base, "--preset", tmp_path / "nobudget.toml", "--remeasure")
    assert code == 2 and "states no max_repeats" in text


@pytest.mark.parametrize("exit_code, fails", [(0, False), (1, True), (3, True)])
def test_the_workflow_fails_on_a_regression_and_on_cannot_judge(tmp_path, exit_code, fails):
    """The gate step of .github/workflows/ci.yml run by bash with `make` standing in: exit 3
    ("cannot judge") fails CI as a regression does."""
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
    step = next(s for job in workflow["jobs"].values() for s in job["steps"] if "make regress" in s.get("run", ""))
    (tmp_path / "make").write_text(f"#!/bin/sh\necho 'gate: something'\nexit {exit_code}\n")
    (tmp_path / "make").chmod(0o755)
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin"}
    done = subprocess.run(["bash", "-c", step["run"]], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert (done.returncode != 0) == fails, done.stdout + done.stderr
