"""Every knob and command given a misspelt value: one line on standard error and exit status 2,
before any run starts. Each case runs bench.cli.main in this process; a run that starts fails the
test at once (the sweep loop and the peak probe are replaced by a failure)."""

import pytest

from bench import cli
from bench.cli.options import TRAIN_KNOBS
from bench.plan.knobs import KINDS, KNOBS
from bench.run import peak, processes, runner


def misspelt(name: str) -> str:
    """A value a hurried hand types for the knob: a shipped name with a letter off, a word for a
    number, a typo for true."""
    if bool in KINDS[name]:
        return "ture"
    allowed = KNOBS[name].metadata["allowed"]
    return f"{allowed[0]}x" if allowed else "ten"


@pytest.fixture
def no_run(tmp_path, monkeypatch):
    """A fresh current folder where no run can start: reaching one fails the test."""
    monkeypatch.chdir(tmp_path)

    def ran(*args, **kwargs):
        raise AssertionError("a run started")

    monkeypatch.setattr(runner, "sweep", ran)
    monkeypatch.setattr(peak, "measure_peaks", ran)
    monkeypatch.setattr(processes, "run_spec", ran, raising=False)
    return tmp_path


def refused(capsys, argv) -> str:
    """The one line a mistake gets, having asserted exit 2 and that nothing else was said."""
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, (argv, code, err)
    return lines[0]


SWEEPING = [["sweep", "--preset", "smoke"], ["sweep", "--preset", "quick", "--dry-run"], ["run"], ["tune"]]


@pytest.mark.parametrize("command", SWEEPING, ids=lambda c: " ".join(c))
@pytest.mark.parametrize("name", list(KNOBS))
def test_a_misspelt_knob_value_is_one_line_on_every_sweeping_command(no_run, capsys, command, name):
    line = refused(capsys, [*command, "--set", f"{name}={misspelt(name)}"])
    assert name in line and (misspelt(name) in line or "not by hand" in line)  # a knob the plan sets: said so


@pytest.mark.parametrize("name", list(KNOBS))
def test_a_misspelt_knob_value_in_a_preset_is_one_line(no_run, capsys, name):
    knobs = {"backbone": "tiny", "input_size": "32"} | {name: misspelt(name)}
    (no_run / "p.toml").write_text("[knobs]\n" + "".join(f'{k} = "{v}"\n' for k, v in knobs.items()))
    line = refused(capsys, ["sweep", "--preset", no_run / "p.toml"])
    assert name in line and (misspelt(name) in line or "not by hand" in line)


@pytest.mark.parametrize("name", list(TRAIN_KNOBS))
def test_a_misspelt_train_option_is_one_line(no_run, capsys, name):
    flag = "--" + name.replace("_", "-")
    argv = ["train", "--data", "d", "--out", "o"]
    if bool in KINDS[name]:  # a switch: --use-multiprocessing takes no value, so the typo is in its name
        line = refused(capsys, [*argv, flag + "s"])
        assert "unrecognized arguments" in line
    else:
        line = refused(capsys, [*argv, flag, misspelt(name)])
        assert misspelt(name) in line


@pytest.mark.parametrize(
    "argv, says",
    [
        (["sweep", "--preset", "quik"], "no preset 'quik'"),
        (["tune", "--preset", "quik"], "no preset 'quik'"),
        (["compare", "a", "b", "--preset", "quik"], "no preset 'quik'"),
        (["sweep", "--preset", "smoke", "--set", "pipline=keras"], "unknown knob 'pipline'"),
        (["sweep", "--preset", "smoke", "--set", "batch"], "expected KNOB=VALUE"),
        (["sweep", "--preset", "smoke", "--executor", "slurn"], "invalid choice: 'slurn'"),
        (["sweep", "--preset", "smoke", "--gpu", "my gpu"], "--gpu 'my gpu'"),
        (["sweep", "--preset", "smoke", "--data", "photoss"], "photoss"),
        (["run", "--set", "backbone=tiny", "--data", "photoss"], "photoss"),
        (["sweep", "--preset", "mine", "--set", "backbone=examples.models:small_cn"], "defines no function small_cn"),
        (["sweep", "--preset", "mine", "--set", "pipeline=examples.pipelines:tfdata_image"], "no function"),
        (["sweep", "--preset", "mine", "--set", "pipeline=exampels.pipelines:tfdata_images"], "no module exampels"),
        (["sweep", "--preset", "mine", "--set", "backbone=mdoel.keras"], "mdoel.keras: no such file"),
        (["fit", "--backbone", "vgg61"], "unknown backbone 'vgg61'"),
        (["fit", "--backbone", "tiny", "--precision", "bf16"], "unknown precision 'bf16'"),
        (["report", "reslts/cpu"], "reslts/cpu has no runs.jsonl"),
        (["export", "reslts/cpu"], "reslts/cpu has no runs.jsonl"),
        (["baseline", "sav", "reslts/cpu"], "invalid choice: 'sav'"),
        (["compare", "reslts/a", "reslts/b"], "reslts/a"),
        (["evaluate", "runs/vgg", "photos/test"], "runs/vgg"),
        (["predict", "runs/vgg", "photos/test"], "runs/vgg"),
        (["resume", "runs/vgg", "--epochs", "2"], "runs/vgg"),
        (["swep"], "invalid choice: 'swep'"),
    ],
)
def test_a_misspelt_name_on_any_command_is_one_line(no_run, capsys, argv, says):
    assert says in refused(capsys, argv)
