"""The seed's fine-tuning workflow end to end on a tiny tree: train, evaluate, predict, resume.

Training starts a process, as a user does (what it writes to standard error is the process's);
evaluate, predict and resume of what it trained run in this process (tests/conftest.py
in_process), which imports TensorFlow once for all of them."""

import csv
import io
import json
import os
import shutil
import sys

import pytest

from tests.conftest import gpubench, in_process

TRAIN = ["--backbone", "tiny", "--input-size", "16", "--batch", "4", "--workers", "2"]


@pytest.fixture(scope="session")
def trained(tmp_path_factory, tiny_tree):
    cwd = tmp_path_factory.mktemp("workflow")
    result = gpubench("train", "--data", tiny_tree, "--out", "run", "--epochs", "3", *TRAIN, cwd=cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    # no framework C++ log lines without --verbose ("E0000 ... failed call to cuInit" reads as an error)
    assert not [
        line for line in result.stderr.splitlines() if line[:5] in ("E0000", "W0000", "I0000") or "cuInit" in line
    ]
    return cwd / "run", json.loads(result.stdout[result.stdout.index("{") :])


@pytest.fixture
def here(monkeypatch):
    """`gpubench ARGS` in this process from `cwd` (in_process), and what a command sets up for its
    framework put back afterwards: the variables it sets and the frameworks it hides."""
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))
    before = dict(os.environ)
    yield lambda *args, cwd: in_process(*args, cwd=cwd)
    os.environ.clear()
    os.environ.update(before)


def _log(folder):
    with open(folder / "log.csv") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
@pytest.mark.xdist_group("trained")
def test_train_keeps_the_best_and_last_models_and_logs_every_epoch(trained):
    folder, summary = trained
    assert (folder / "best.keras").is_file() and (folder / "last.keras").is_file()
    log = _log(folder)
    assert [int(r["epoch"]) for r in log] == [0, 1, 2]
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"} <= set(log[0])
    settings = json.loads((folder / "train.json").read_text())
    assert settings["classes"] == ["class0", "class1"] and settings["spec"]["backbone"] == "tiny"
    assert summary["epochs"] == 3 and summary["checkpoint_s_total"] > 0
    best = max(float(r["val_accuracy"]) for r in log)
    assert summary["best_val_accuracy_this_run"] == pytest.approx(best, abs=1e-6)


@pytest.mark.slow
@pytest.mark.xdist_group("trained")
def test_evaluate_never_shuffles_and_counts_every_image(trained, tiny_tree, here):
    folder, _ = trained
    result = here("evaluate", folder / "best.keras", tiny_tree / "val", "--json", folder / "eval.json", cwd=folder)
    assert result.returncode == 0, result.stderr[-2000:]
    first = json.loads((folder / "eval.json").read_text())
    again = here("evaluate", folder, tiny_tree / "val", "--json", "-", cwd=folder)
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads(again.stdout) == first and not (folder / "-").exists()  # same order, same answer
    assert first["images"] == 4 and sum(map(sum, first["confusion"])) == 4
    assert sum(first["confusion"][i][i] for i in range(2)) / 4 == pytest.approx(first["accuracy"])
    assert set(first["per_class"]) == {"class0", "class1"}
    assert "confusion (rows: true, columns: predicted)" in result.stdout


@pytest.mark.slow
@pytest.mark.xdist_group("trained")
def test_predict_writes_one_row_per_readable_image_to_standard_output(trained, tiny_tree, tmp_path, here):
    folder, _ = trained
    images = shutil.copytree(tiny_tree / "val", tmp_path / "images")
    (images / "class0" / "broken.jpg").write_text("not an image")
    result = here("predict", folder / "best.keras", images, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "warning: 1 unreadable files skipped (first: " in result.stderr and "broken.jpg" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images"]  # nothing written into the current folder
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 4 and list(rows[0]) == ["file", "predicted", "p_class0", "p_class1"]
    for row in rows:
        assert float(row["p_class0"]) + float(row["p_class1"]) == pytest.approx(1.0, abs=1e-4)
        assert row["predicted"] == max(("class0", "class1"), key=lambda c: float(row[f"p_{c}"]))
    one = here("predict", folder, rows[0]["file"], "--out", folder / "one.csv", cwd=folder)
    assert one.stdout.strip() == str(folder / "one.csv")
    assert one.returncode == 0 and len((folder / "one.csv").read_text().splitlines()) == 2


@pytest.mark.slow
@pytest.mark.xdist_group("trained")
def test_resume_goes_on_from_the_last_epoch_with_the_optimizer_state_and_the_best_so_far(trained, tmp_path, here):
    import keras

    folder = shutil.copytree(trained[0], tmp_path / "run")  # its own copy: resuming rewrites the models and the log
    steps_before = int(keras.saving.load_model(folder / "last.keras").optimizer.iterations.numpy())
    log = _log(folder)
    log[0]["val_accuracy"] = "1.0"  # a best so far no resumed epoch can beat: best.keras must stay
    with open(folder / "log.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(log[0]))
        writer.writeheader()
        writer.writerows(log)
    best_before = (folder / "best.keras").read_bytes()
    result = here("resume", folder, "--epochs", "2", cwd=folder)
    assert result.returncode == 0, result.stderr[-2000:]
    assert [int(r["epoch"]) for r in _log(folder)] == [0, 1, 2, 3, 4]
    assert (folder / "best.keras").read_bytes() == best_before
    steps_after = int(keras.saving.load_model(folder / "last.keras").optimizer.iterations.numpy())
    assert steps_before == 9 and steps_after == 15  # 3 steps an epoch: 12 images, batch 4


def test_workflow_errors_are_one_line(tmp_path, tiny_tree, cli):
    again = cli("train", "--data", tiny_tree, "--out", tmp_path, "--backbone", "octresnet50", "--input-size", "48")
    assert again.returncode == 2 and "multiple of 32" in again.stderr
    missing = cli("evaluate", tmp_path / "nothing.keras", tiny_tree / "val")
    assert missing.returncode == 2 and "nothing.keras: no such file or folder" in missing.stderr
