"""The seed's fine-tuning workflow as commands: train, resume, evaluate, predict.

A training folder holds best.keras (best validation accuracy), last.keras (to resume from),
log.csv (one row per epoch) and train.json (the run's settings and class names).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
from pathlib import Path

import numpy as np

from bench.plan.grid import frameworks
from bench.plan.knobs import RunSpec
from bench.run import devices
from pipelines.dataset import DatasetError, find_images, readable, scan, scan_folder

SETTINGS = "train.json"


def _load_settings(model_path: Path) -> tuple[Path, dict]:
    """The training folder of a model file (or the folder itself) and its train.json."""
    if not model_path.exists():
        raise DatasetError(f"{model_path}: no such file or folder (give the --out folder of gpubench train)")
    folder = model_path if model_path.is_dir() else model_path.parent
    settings = folder / SETTINGS
    if not settings.is_file():
        raise DatasetError(f"{folder} has no {SETTINGS}: not a folder written by gpubench train")
    return folder, json.loads(settings.read_text())


def prepare(model_path: str | Path) -> tuple[Path, dict]:
    """The environment a trained model's backend starts in (its backend and `gpus`), set before
    anything imports it; returns its training folder and train.json."""
    folder, settings = _load_settings(Path(model_path))
    spec = RunSpec(**settings["spec"])
    devices.prepare(spec.backend, spec.gpus, frameworks(spec))
    return folder, settings


def check_device(spec: RunSpec, gpu: str = "auto") -> str:
    """train's, resume's and evaluate's check, the sweep's own (bench/run/doctor.py): the label of
    the GPUs `spec` would train on, refused in one line where the backend would miss them."""
    from bench.run import doctor, gate

    label = gate.auto_label(doctor.nvml(), spec.gpus, spec.backend) if gpu == "auto" else gpu
    _, given = doctor.check(label, [spec.backend], True, spec.gpus, switch="--gpu cpu (or CUDA_VISIBLE_DEVICES=-1)")
    os.environ.update(given)  # this process trains: it is the worker the variables are for
    return label


def trained_on(spec: RunSpec, command: str) -> dict:
    """Where this process trains `spec`, as a row says it: the device, CUDA and cuDNN the backend loaded."""
    from bench.run import doctor

    facts = doctor.where(spec.backend, spec.gpus)
    return {
        "command": command,
        "train_device": doctor.train_device(facts),
        "train_cuda": facts["cuda"],
        "train_cudnn": facts["cudnn"],
    }


def _log(folder: Path) -> list[dict]:
    with open(folder / "log.csv") as f:
        return list(csv.DictReader(f))


def best_so_far(log: list[dict]) -> float | None:
    """The best validation accuracy in a training log (None before any epoch finished)."""
    values = [float(row["val_accuracy"]) for row in log if row.get("val_accuracy") not in (None, "")]
    values = [v for v in values if not math.isnan(v)]
    return max(values) if values else None


def _train_loop(
    model, spec: RunSpec, index, out: Path, initial_epoch: int, tensorboard: bool, best: float | None = None
) -> dict:
    """Training for real: epochs as asked (window=epochs), never lengthened for a measured window.
    best.keras is replaced only by a model better than `best` (the best so far when resuming)."""
    from bench.run import training
    from bench.run.timing import EpochTimer

    timer = EpochTimer()
    train_feed, val_feed = training.feeds(index, dataclasses.replace(spec, window="epochs"))
    callbacks, checkpoint = training.workflow_callbacks(out, tensorboard, best)
    history = training.fit(model, train_feed, val_feed, spec.epochs, callbacks + [timer], initial_epoch, verbose=2)
    best = max(history.history.get("val_accuracy", [float("nan")]))
    return {
        "epochs": initial_epoch + spec.epochs,
        "best_val_accuracy_this_run": best,
        **timer.summary(train_feed.steps, train_feed.images, checkpoint.seconds),
    }


def train(spec: RunSpec, data: str, out: str | Path, tensorboard: bool = False) -> dict:
    """`gpubench train`: fine-tune a new model on `data`, into a fresh training folder `out`."""
    import models
    from bench.run import training

    out = Path(out)
    if (out / SETTINGS).exists():
        raise DatasetError(f"{out} already holds a training run; resume it or choose another --out")
    index = scan(data)
    out.mkdir(parents=True, exist_ok=True)
    scope, _ = devices.setup(spec.backend, spec.gpus)
    where = trained_on(spec, "train")
    with scope:
        model = models.build(spec.backbone, (spec.input_size,) * 2 + (3,), len(index.classes), spec.finetune)
        training.compile_model(model)
    settings = {
        "spec": dataclasses.asdict(spec),
        "data": str(Path(data).resolve()),
        "classes": index.classes,
        "trained_on": [where],
    }
    (out / SETTINGS).write_text(json.dumps(settings, indent=2))
    return {**_train_loop(model, spec, index, out, 0, tensorboard), **where}


def resume(model_path: str | Path, epochs: int, data: str | None = None, tensorboard: bool = False) -> dict:
    """Go on from last.keras: its optimizer state (momentum, learning rate, step count), the
    epoch count and the best validation accuracy in log.csv carry over, and so does the backend
    it trained on and its devices (`gpus`); train.json lists where each part trained."""
    folder, settings = prepare(model_path)
    spec = dataclasses.replace(RunSpec(**settings["spec"]), epochs=epochs)
    import keras

    import models  # noqa: F401  (registers the custom layers that loading needs)

    index = scan(data or settings["data"])
    if index.classes != settings["classes"]:
        raise DatasetError(f"classes {index.classes} differ from the model's {settings['classes']}")
    scope, _ = devices.setup(spec.backend, spec.gpus)
    where = trained_on(spec, "resume")
    with scope:
        model = keras.saving.load_model(folder / "last.keras")
    settings["trained_on"] = settings.get("trained_on", []) + [where]
    (folder / SETTINGS).write_text(json.dumps(settings, indent=2))
    log = _log(folder)
    return {**_train_loop(model, spec, index, folder, len(log), tensorboard, best_so_far(log)), **where}


def _predict(model_path: Path, files: list[str], batch: int):
    """(probabilities, class names): the keras pipeline's reader, in file order, no shuffle."""
    folder, settings = prepare(model_path)
    spec = RunSpec(**settings["spec"])
    import keras

    import models  # noqa: F401
    from pipelines.batches import BatchOrder
    from pipelines.pydataset import ImageFolderBatches
    from pipelines.reader import ImageReader

    model = keras.saving.load_model(model_path if model_path.is_file() else folder / "best.keras")
    steps = -(-len(files) // batch)
    plan = BatchOrder(len(files), batch, len(files), shuffle=False)
    read = ImageReader(files, spec.input_size, spec.interpolation, "float32", cache=False)
    batches = ImageFolderBatches(read, [0] * len(files), len(settings["classes"]), plan, steps)
    return model.predict(batches, verbose=0), settings["classes"]


def evaluate(model_path: str | Path, data: str | Path, batch: int = 16) -> dict:
    """Accuracy overall and per class, and the confusion matrix (rows: true class)."""
    _, settings = _load_settings(Path(model_path))
    classes, files, labels, skipped, _ = scan_folder(data, settings["classes"])
    probabilities, _ = _predict(Path(model_path), files, batch)
    predicted = probabilities.argmax(axis=1)
    truth = np.asarray(labels)
    confusion = np.zeros((len(classes), len(classes)), dtype=int)
    np.add.at(confusion, (truth, predicted), 1)
    per_class = {
        c: (float(confusion[i, i] / confusion[i].sum()) if confusion[i].sum() else None) for i, c in enumerate(classes)
    }
    return {
        "images": len(files),
        "skipped": len(skipped),
        "accuracy": float((predicted == truth).mean()),
        "device": trained_on(RunSpec(**settings["spec"]), "evaluate")["train_device"],
        "per_class": per_class,
        "classes": classes,
        "confusion": confusion.tolist(),
    }


def predict(model_path: str | Path, target: str | Path, batch: int = 16) -> tuple[str, list[str]]:
    """(a CSV of file, predicted class and one probability per class; "path: reason" of the
    unreadable files skipped, as sweep and evaluate skip them)."""
    target = Path(target)
    if target.is_file():
        found = [target]
    elif target.is_dir():
        found = find_images(target)[0]
    else:
        raise DatasetError(f"{target} does not exist")
    if not found:
        raise DatasetError(f"{target} has no images")
    good, skipped = readable(found, verify=True)
    if not good:
        raise DatasetError(f"{target} has no readable images (first: {skipped[0]})")
    files = list(map(str, good))
    probabilities, classes = _predict(Path(model_path), files, batch)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["file", "predicted"] + [f"p_{c}" for c in classes])
    for path, p in zip(files, probabilities):
        writer.writerow([path, classes[int(p.argmax())]] + [f"{v:.6f}" for v in p])
    return text.getvalue(), skipped


def evaluation_markdown(result: dict) -> str:
    """`gpubench evaluate`'s printout: accuracy overall and per class, and the confusion matrix, as markdown."""
    classes = result["classes"]
    lines = [
        f"accuracy {result['accuracy']:.4f} on {result['images']} images"
        + (f" ({result['skipped']} unreadable skipped)" if result["skipped"] else ""),
        "",
        "| class | accuracy |",
        "|---|---|",
    ]
    lines += [f"| {c} | {'' if a is None else f'{a:.4f}'} |" for c, a in result["per_class"].items()]
    lines += [
        "",
        "confusion (rows: true, columns: predicted)",
        "",
        "| true \\ predicted | " + " | ".join(classes) + " |",
        "|---" * (len(classes) + 1) + "|",
    ]
    lines += [f"| {c} | " + " | ".join(map(str, row)) + " |" for c, row in zip(classes, result["confusion"])]
    return "\n".join(lines)
