"""The suite's measured fit against a plain `model.fit` of the same compiled model on the same
data, timed by epoch-level callbacks only, alternately in one process so that both see the same
machine. Run as `python -m tests.plain_fit KIND BACKEND TREE`; prints each one's images/s as JSON.

KIND `model`: the model alone: the synthetic feed against a plain fit on the same feed
(`plain`), and on the same tensors as NumPy arrays, which Keras slices every step (`numpy`).
KIND `loader`: the keras pipeline alone (the null model): its stamped PyDataset against a plain
PyDataset of the same reads (`plain`). Every fit validates after each epoch, as the suite's does.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

ROUNDS = 4


def main(kind: str, backend: str, tree: str) -> None:
    from bench import devices

    devices.prepare(backend, 1)
    import numpy as np

    import models
    from bench import training, worker
    from bench.record import RunRecord
    from bench.spec import RunSpec
    from bench.timing import EpochTimer
    from pipelines import BatchOrder, onehot
    from pipelines.dataset import scan
    from pipelines.pydataset import ImageFolderBatches
    from pipelines.reader import ImageReader

    index = scan(tree)
    if kind == "model":
        spec = RunSpec(backend=backend, backbone="tiny", input_size=96, pipeline="synthetic", batch=32, epochs=2,
                       steps_per_epoch=60)
    else:
        spec = RunSpec(backend=backend, backbone="null", input_size=32, pipeline="keras", batch=8, workers=2,
                       max_queue_size=4, epochs=2, steps_per_epoch=100)
    train_feed, val_feed = training.feeds(index, spec)
    model = training.compile_model(models.build(spec.backbone, (spec.input_size,) * 2 + (3,), len(index.classes)))
    val = val_feed.data  # validation after each epoch, as in the suite's fit: both time the steps without it
    plains = {"plain": lambda timer: model.fit(train_feed.data, validation_data=val, epochs=spec.epochs,
                                               callbacks=[timer], verbose=0)}
    if kind == "model":
        rng = np.random.default_rng(0)
        x = np.tile(rng.random((spec.batch, spec.input_size, spec.input_size, 3), dtype=np.float32),
                    (train_feed.steps, 1, 1, 1))
        y = onehot(rng.integers(0, len(index.classes), len(x)), len(index.classes))
        plains["numpy"] = lambda timer: model.fit(x, y, batch_size=spec.batch, epochs=spec.epochs, shuffle=False,
                                                  validation_data=val, callbacks=[timer], verbose=0)
    else:
        order = BatchOrder(index.count("train"), spec.batch, train_feed.images, shuffle=True)
        read = ImageReader(index.files["train"], spec.input_size, spec.interpolation, spec.transfer, cache=False)
        reads = ImageFolderBatches(read, index.labels["train"], len(index.classes), order, train_feed.steps,
                                   workers=spec.workers, use_multiprocessing=spec.use_multiprocessing,
                                   max_queue_size=spec.max_queue_size)
        plains["plain"] = lambda timer: model.fit(reads, validation_data=val, epochs=spec.epochs, callbacks=[timer],
                                                  verbose=0)

    rates = {name: [] for name in ["suite", *plains]}
    with tempfile.TemporaryDirectory() as scratch:
        for _ in range(ROUNDS):
            record = RunRecord()
            worker.measure(model, train_feed, val_feed, spec, record, Path(scratch) / "samples.csv", 0.5)
            rates["suite"].append(record.train_img_s)
            for name, plain in plains.items():
                timer = EpochTimer()
                plain(timer)
                rates[name].append(timer.summary(train_feed.steps, train_feed.images)["train_img_s"])
    print(json.dumps(rates))


if __name__ == "__main__":
    main(*sys.argv[1:4])
