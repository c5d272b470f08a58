"""The CLI's manners (issue 20): a user's mistake is one line and exit 2 before any work, Ctrl-C
one line and 130, nothing of the user's overwritten, `-` is standard output, and the commands
that say where one is (--version, presets, knobs, a sweep's ETA and closing line). Each case runs
bench.cli.main in this process and fails before any worker starts."""

import json
from pathlib import Path

import pandas as pd
import pytest
from rich.console import Console

from bench import cli, finetune
from bench.cli import catalogue, commands, options
from bench.output import compare
from bench.plan.grid import build_grid, ceiling_probes, check_spec, expand, run_counts, said_runs
from bench.plan.knobs import KNOBS, RunSpec, SpecError
from bench.plan.presets import load_preset
from bench.results.record import RunRecord
from bench.results.store import ResultStore, foreign_files
from bench.run import runner
from bench.run.runner import Interrupted
from bench.run.settings import Options
from tests.conftest import session_of
from tests.tables import table
from tests.test_compare import results

REFERENCE_CI = Path(__file__).resolve().parent.parent / "results" / "reference" / "cpu" / "ci"
TINY = '[knobs]\nbackbone = "tiny"\ninput_size = 32\npipeline = "keras"\nbatch = 4\nworkers = 1\nepochs = 2\n'


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def here(tmp_path, monkeypatch):
    """A fresh current folder: whatever a command leaves behind shows there."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


PRESET_MISTAKES = [
    ('repeat = "two"\n', "repeat = 'two': expected a whole number"),
    ("repeat = 0\n", "repeat = 0: must be more than 0"),
    ('timeout_s = "x"\n', "timeout_s = 'x': expected a number"),
    ("timeout_s = -5\n", "timeout_s = -5: must be more than 0"),
    ('ceilings = "no"\n', "ceilings = 'no': expected true or false"),
    ("installed_only = 1\n", "installed_only = 1: expected true or false"),
    ("description = 3\n", "description = 3: expected a string"),
]
DATA_MISTAKES = [
    ('train = "x"\n', "[data] train = 'x': expected a whole number"),
    ("classes = 0\n", "[data] classes = 0: must be more than 0"),
    ('image_size = "big"\n', "image size 'big' is not WIDTHxHEIGHT"),
    ("colour = true\n", "[data]: unknown field(s) ['colour']"),
]


@pytest.mark.parametrize("text, message", PRESET_MISTAKES + [("[data]\n" + t, m) for t, m in DATA_MISTAKES])
def test_preset_fields_are_type_and_range_checked(here, capsys, text, message):
    top, _, data = text.partition("[data]\n")
    (here / "p.toml").write_text(top + TINY + ("[data]\n" + data if data else ""))
    code, out, err = run_cli(capsys, "sweep", "--preset", here / "p.toml", "--no-ceilings")
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert sorted(p.name for p in here.iterdir()) == ["p.toml"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--timeout", "-5"], "argument --timeout: -5: must be more than 0"),
        (["--timeout", "x"], "argument --timeout: 'x' is not a number"),
        (["--interval", "0"], "argument --interval: 0: must be more than 0"),
        (["--max-parallel", "0"], "argument --max-parallel: 0: must be more than 0"),
        (["--set", "batch="], "--set 'batch=': a value is missing"),
        (["--set", "workers="], "--set 'workers=': a value is missing"),
        (["--set", "batch=4,"], "--set 'batch=4,': a value is missing"),
        (["--set", "workers=none"], "workers=None: must be 0 or more"),
        (["--set", "precision=half"], "unknown precision 'half'; expected one of: float32, mixed_float16"),
        (["--repeat", "0"], "--repeat 0"),
        (["--out", "a_file.txt"], "--out a_file.txt is a file"),
        (["--out", "mine"], "--out mine holds files gpubench did not write (report.md, runs.csv)"),
    ],
)
def test_bad_sweep_options_are_one_line_before_any_work(here, capsys, args, message):
    (here / "a_file.txt").write_text("mine\n")
    (here / "mine").mkdir()
    (here / "mine" / "report.md").write_text("my report\n")
    (here / "mine" / "runs.csv").write_text("my,csv\n")
    code, out, err = run_cli(capsys, "sweep", "--preset", "smoke", "--set", "pipeline=keras", "--no-ceilings", *args)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert (here / "mine" / "report.md").read_text() == "my report\n"
    assert sorted(p.name for p in here.iterdir()) == ["a_file.txt", "mine"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "--out", "mine", "--set", "backbone=tiny"], "--out mine holds files gpubench did not write"),
        (["fit", "--backbone", "tiny", "--out", "a_file.txt"], "--out a_file.txt is a file"),
        (["evaluate", "model", "data", "--batch", "0"], "argument --batch: 0: must be more than 0"),
        (["predict", "model", "data", "--batch", "-1"], "argument --batch: -1: must be more than 0"),
        (["train", "--data", "d", "--out", "o", "--epochs", "0"], "argument --epochs: epochs=0: must be at least 1"),
        (
            ["train", "--data", "d", "--out", "o", "--workers", "x"],
            "argument --workers: workers='x': expected a whole number",
        ),
        (["train", "--data", "d", "--out", "o", "--finetune", "all"], "unknown finetune 'all'; expected one of: head"),
        (["resume", "o", "--epochs", "0"], "argument --epochs: 0: must be more than 0"),
        (["data", "d", "--classes", "0"], "argument --classes: 0: must be more than 0"),
        (["nonsense"], "invalid choice: 'nonsense'"),
    ],
)
def test_other_commands_refuse_bad_input_in_one_line(here, capsys, argv, message):
    (here / "a_file.txt").write_text("mine\n")
    (here / "mine").mkdir()
    (here / "mine" / "notes.txt").write_text("mine\n")
    code, out, err = run_cli(capsys, *argv)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_a_folder_is_gpubenchs_when_it_holds_env_json_or_runs_jsonl_or_only_a_started_sweep(tmp_path):
    assert foreign_files(tmp_path / "new") == []
    (tmp_path / "started" / "samples").mkdir(parents=True)
    (tmp_path / "started" / ".lock").write_text("")
    assert foreign_files(tmp_path / "started") == []
    (tmp_path / "started" / "report.md").write_text("mine")
    assert foreign_files(tmp_path / "started") == ["report.md"]
    (tmp_path / "started" / "env.json").write_text("{}")
    assert foreign_files(tmp_path / "started") == []


def swept(store, grid, record, console, before=0):
    """runner.sweep of `grid` into `store` by a stand-in executor whose run `number` gives `record(number, point)`."""

    class Jobs:
        def run(self, specs, args):
            for number, point in enumerate(specs):
                yield point, record(number, point)

    session = session_of(store, store.root / "none.json", commit="c")
    runner.sweep(grid, session, Options(timeout_s=60), jobs=Jobs(), console=console, before=before)


def test_ctrl_c_in_a_sweep_keeps_the_rows_and_says_so(tmp_path):
    """The runs finished before Ctrl-C stay in the store; the sweep ends with Interrupted."""
    grid = expand({"backbone": ["tiny"], "batch": [4, 8, 16]})

    def record(number, point):
        if number == 1:
            raise KeyboardInterrupt
        return RunRecord.for_spec(point, status="error", error="boom").to_dict()

    store = ResultStore(tmp_path / "out").create()
    with pytest.raises(
        Interrupted, match=r"1 of 3 runs finished, kept in .*out; the same command again runs the other 2"
    ):
        swept(store, grid, record, Console(file=open("/dev/null", "w")))
    assert [r["batch"] for r in store.records()] == [4]


@pytest.mark.parametrize(
    "raised, message",
    [
        (Interrupted("interrupted: 3 of 8 runs finished, kept in out"), "gpubench: interrupted: 3 of 8 runs"),
        (KeyboardInterrupt(), "gpubench: interrupted; nothing was left running"),
    ],
)
def test_ctrl_c_is_one_line_and_exit_130(here, capsys, monkeypatch, raised, message):
    from bench import session

    def interrupted(*args, **kwargs):
        raise raised

    monkeypatch.setattr(session, "run", interrupted)
    code, out, err = run_cli(capsys, "sweep", "--preset", "smoke", "--no-ceilings", "--out", "out")
    assert code == 130 and err.strip().splitlines() == [err.strip()] and err.startswith(message)


def test_version_and_help_texts(capsys):
    code, out, _ = run_cli(capsys, "--version")
    assert code == 0 and out.startswith("gpubench ")
    code, out, _ = run_cli(capsys, "sweep", "--help")
    assert code == 0 and "results/<gpu>/<host>/<preset>" in " ".join(out.split())
    code, out, _ = run_cli(capsys, "train", "--help")
    help_text = " ".join(out.split())
    assert (
        code == 0 and f"(default: {options.TRAIN_KNOBS['epochs'][0]})" in help_text and "(default: vgg16)" in help_text
    )
    assert f"16 at most (the seed's 16) (default: {options.TRAIN_KNOBS['workers'][0]})" in help_text
    assert "--epochs EPOCHS epochs trained, every one kept; a first try" in help_text and "warm-up" not in help_text


def test_knobs_lists_every_knob_from_its_metadata(capsys):
    code, out, _ = run_cli(capsys, "knobs")
    rows = {row["knob"]: row for row in table(out)}
    assert code == 0 and list(rows) == list(KNOBS)
    assert rows["batch"] == {
        "knob": "batch",
        "default": "16",
        "allowed": "a whole number, 1 or more",
        "meaning": "images per training step (blank: a pipeline of yours that makes its own)",
    }
    assert rows["shaped_by"]["allowed"] == "package.module:function"
    assert rows["precision"]["allowed"] == "float32, mixed_float16, mixed_bfloat16"
    assert rows["use_multiprocessing"]["default"] == "false"


@pytest.mark.parametrize("name", [n for n, f in KNOBS.items() if f.metadata["allowed"]])
def test_check_spec_refuses_what_a_knobs_metadata_does_not_allow(name):
    assert KNOBS[name].metadata["help"]
    with pytest.raises(SpecError, match=f"unknown {name} 'bogus'"):
        check_spec(RunSpec(**{name: "bogus"}))


def test_presets_shows_runs_and_the_time_recorded_on_this_host(tmp_path):
    folder = ResultStore(tmp_path / "results" / "cpu" / "h" / "smoke").create()
    for batch, host in ((4, "h"), (8, "h"), (16, "other")):
        folder.append(
            RunRecord.for_spec(RunSpec(batch=batch), status="ok", wall_s=6.0 if host == "h" else 600.0).to_dict()
            | {"host": host}
        )
    (folder.root / "sweep.json").write_text(json.dumps({"preset": "smoke"}))
    rows = {row["preset"]: row for row in table(catalogue.presets(tmp_path / "results", host="h"))}
    smoke = load_preset("smoke")
    grid, _ = build_grid(smoke.knob_sets(), [], smoke.repeat, smoke.installed_only)
    runs = len(grid) + len(ceiling_probes(grid))
    assert rows["smoke"]["runs"] == str(runs)
    assert rows["smoke"]["time on h"] == f"about {6 * runs / 60:.0f} min"
    assert rows["quick"]["time on h"] == "" and rows["smoke"]["description"].startswith("A few points")


def test_presets_the_dry_run_and_the_sweep_say_the_planners_run_count(here, capsys):
    from bench import session

    code, out, _ = run_cli(capsys, "presets")
    counts = {row["preset"]: row["runs"] for row in table(out)}
    for name in ("quick", "smoke", "mine"):
        preset = load_preset(name)
        grid, _ = build_grid(preset.knob_sets(), [], preset.repeat, preset.installed_only)
        said = said_runs(run_counts(grid, ceiling_probes(grid), preset.repeat_as_needed))
        assert counts[name] == said.removesuffix(" runs")
        assert run_cli(capsys, "sweep", "--preset", name, "--dry-run")[1].startswith(said)
        assert session.planned(grid, ceiling_probes(grid), preset.repeat_as_needed).startswith(said)
    assert counts["quick"] == "26 to 156"


def test_the_eta_comes_from_the_runs_done():
    assert runner.eta(elapsed_s=120.0, ran=4, left=6) == 180.0
    assert runner.eta(elapsed_s=3.0, ran=0, left=6) is None  # only skipped so far
    assert [runner.clock(s) for s in (5, 125, 3723)] == ["0:05", "2:05", "1:02:03"]


def test_a_log_numbers_runs_across_passes_and_gives_each_line_an_eta(tmp_path):
    """Output to a file shows no progress bar: each run's line then says the time left; a later pass
    numbers its runs on from the earlier ones, towards the count the sweep announced."""
    import io

    grid = expand({"backbone": ["tiny"], "batch": [4, 8]})
    log = io.StringIO()
    ok = RunRecord.for_spec(grid[0], status="ok", total_s=1.0, train_img_s=9.0).to_dict()
    swept(ResultStore(tmp_path / "out").create(), grid, lambda n, p: {**ok, "run_id": p.run_id}, Console(file=log), 26)
    lines = log.getvalue().split("\n")[:2]
    assert [line.split()[0] for line in lines] == ["[27/28]", "[28/28]"]
    assert lines[0].endswith(tuple(f"; ETA 0:0{s}" for s in range(10))) and lines[1].endswith("; ETA 0:00")


def test_a_skip_reason_is_printed_whole():
    reason = ("needs jax, which is not installed here (pip install 'gpubench[jax]'); " * 5).strip()
    console = Console(record=True, width=60, file=open("/dev/null", "w"))
    console.print(runner._summary({"status": "skipped", "error": reason}), soft_wrap=True)
    assert console.export_text().strip() == f"skipped: {reason}"


def test_a_sweep_ends_with_one_summary_line(tmp_path):
    report = tmp_path / "report.md"
    rows = [{"status": s, "error": "", "run_id": f"p-r{i}"} for i, s in enumerate(("ok", "ok", "skipped"))]
    assert commands.closing_line(rows, 125.4, report, "2 input-bound of 2 configurations.") == (
        f"3 runs (2 ok, 1 skipped, 0 failed) in 2:05; report: {report}; verdict: 2 input-bound of 2 configurations."
    )
    assert commands.closing_line(rows, 125.4, report, "") == (
        f"3 runs (2 ok, 1 skipped, 0 failed) in 2:05; report: {report}"
    )
    rows += [
        {"status": "error", "error": "boom", "run_id": "q-r0"},
        {"status": "timeout", "error": "late", "run_id": "q-r1"},
    ]
    assert commands.closing_line(rows, 125.4, report, "").splitlines()[-1] == (
        "first error (1 failed; 1 other failure; see runs.csv): error in run q-r0: boom. Fix it and run the same "
        "command again: the failed runs run again."
    )


def test_machines_report_goes_beside_the_results_not_into_the_current_folder(tmp_path, monkeypatch, capsys):
    a = results(tmp_path / "res" / "cpu" / "t", {4: [200, 200]})
    b = results(tmp_path / "res" / "other" / "t", {4: [300, 300]})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    code, out, err = run_cli(capsys, "report", a, b)
    assert code == 0 and out.strip() == str(tmp_path / "res" / "machines-t.md")
    assert (tmp_path / "res" / "machines-t.md").is_file() and list(elsewhere.iterdir()) == []


def test_baseline_save_needs_force_to_replace_and_writes_beside_the_checkout(tmp_path, monkeypatch, capsys):
    a = results(tmp_path / "a", {4: [200, 200]}, preset="ci")
    monkeypatch.setattr(compare, "BASELINES", tmp_path / "baselines")
    monkeypatch.chdir(tmp_path / "a")
    code, out, _ = run_cli(capsys, "baseline", "save", a)
    target = tmp_path / "baselines" / "cpu" / "ci.csv"
    assert code == 0 and out.strip() == str(target) and target.is_file()
    target.write_text("kept\n")
    code, _, err = run_cli(capsys, "baseline", "save", a)
    assert code == 2 and "exists: --force replaces it" in err and target.read_text() == "kept\n"
    code, _, _ = run_cli(capsys, "baseline", "save", a, "--force")
    assert code == 0 and target.read_text() == (a / "points.csv").read_text()


def test_export_to_standard_output(tmp_path, monkeypatch, capsys):
    a = results(tmp_path / "a", {4: [200, 200]})
    monkeypatch.chdir(tmp_path)
    code, out, _ = run_cli(capsys, "export", a, "--out", "-")
    document = json.loads(out)
    assert code == 0 and document["points"][0]["workers"] == 4 and len(document["runs"]) == 2
    assert not (tmp_path / "-").exists() and not (a / "results.json").exists()


@pytest.mark.slow  # runs a framework in this process
def test_resume_starts_from_the_best_validation_accuracy_in_the_log():
    log = [{"val_accuracy": "0.5"}, {"val_accuracy": "0.75"}, {"val_accuracy": "nan"}, {"val_accuracy": ""}]
    assert finetune.best_so_far(log) == 0.75
    assert finetune.best_so_far([]) is None
    from bench.run import training

    assert training.TimedCheckpoint("best.keras", best=0.75).best == 0.75  # Keras saves only above it


def test_an_empty_utilisation_cell_stays_empty():
    from bench.output.report import _util_cell

    point = pd.Series(
        {
            "repeats_ok": 1,
            "cpu_util_mean": float("nan"),
            "cpu_util_p90": float("nan"),
            "gpu_util_mean": 80.0,
            "gpu_util_p90": 90.0,
            "gpu_mem_peak_mb": 1000.0,
        }
    )
    assert _util_cell(point) == "GPU 80% (p90 90%), 1000 MB"
    assert _util_cell(point.drop(["gpu_util_mean"])) == ""


@pytest.mark.parametrize(
    "command",
    [
        ["export", "{a}", "--out", "{mine}"],
        ["report", "{a}", "{b}", "--out", "{mine}"],
        ["predict", "no-model.keras", "{a}", "--out", "{mine}"],
        ["evaluate", "no-model.keras", "{a}", "--json", "{mine}"],
    ],
)
def test_a_file_of_yours_is_refused_in_one_line_before_any_work_unless_forced(here, capsys, command):
    a = results(here / "res" / "cpu" / "t", {4: [200, 200]})
    b = results(here / "res" / "other" / "t", {4: [300, 300]})
    mine = here / "notes.txt"
    mine.write_text("my notes\n")
    argv = [w.format(a=a, b=b, mine=mine) for w in command]
    code, out, err = run_cli(capsys, *argv)
    assert code == 2 and err.strip() == (
        f"gpubench: error: {mine} exists and gpubench overwrites nothing of yours: "
        "name another file, or add --force to replace it"
    )
    assert mine.read_text() == "my notes\n" and not list(here.glob("notes.png"))
    if command[0] in ("export", "report"):
        assert run_cli(capsys, *argv, "--force")[0] == 0 and mine.read_text() != "my notes\n"
        assert not list(here.glob("notes.png"))  # the figure only where asked (--plot)


def test_report_says_where_it_wrote(tmp_path, capsys):
    import shutil

    folder = shutil.copytree(REFERENCE_CI, tmp_path / "ci")
    code, out, err = run_cli(capsys, "report", folder)
    assert code == 0 and out.strip() == str(folder / "report.md") and not err
