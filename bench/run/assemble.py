"""One run's model and feeds, in the order their shapes depend on each other: a user's pipeline
gives the shapes of the null model that takes its batches (its ceiling), a user's model gives
the shapes of the tensors in memory that are its ceiling; each batch a user's pipeline yields
is checked against the model before the first step; with hosts > 1, each process's share."""

from __future__ import annotations

import dataclasses

import models
from bench.plan.knobs import RunSpec
from bench.run import training
from models.user import is_user_model, null_like, tensors_like
from pipelines.epochs import split_plan
from pipelines.handover import images_in, keras_leaf
from pipelines.registry import is_model_alone, is_user_pipeline, reads_our_data
from pipelines.synthetic import feed_of
from pipelines.user import check_batch, check_labels, check_shapes, like_the_job, pass_plan


def model_and_feeds(spec: RunSpec, share, local: RunSpec, classes: int, scope):
    """(the model, compiled; the training feed; the validation feed). A user's pipeline's first batch
    shapes the model (its image size, and its labels' classes where it does not read the data folder)
    and, for its model-alone ceiling (`shaped_by`), the tensors in memory: the job that runs."""
    if spec.shaped_by:
        jobs = [like_the_job(share, local, split) for split in ("train", "val")]
        first = jobs[0][0][0]
        with scope:
            model = _model(spec, job_classes(first, classes, spec.shaped_by), first)
        check(first, model)
        feeds = []
        for (batches, n), split in zip(jobs, ("train", "val")):
            per_pass, steps, _ = pass_plan(local, split, n, images_in(batches[0]))
            feeds.append(feed_of(batches, steps, local, per_pass)._replace(first=batches[0]))
        return model, feeds[0], feeds[1]
    if is_model_alone(spec.pipeline) and is_user_model(spec.backbone):
        with scope:
            model = _model(spec, classes)
        x, y = tensors_like(model, local.batch, spec.input_size)
        feeds = [
            feed_of([(x, y)], split_plan(share.count(split), local, split)[0], local) for split in ("train", "val")
        ]
        return model, feeds[0], feeds[1]
    train_feed, val_feed = training.feeds(share, local)
    user_pipeline = is_user_pipeline(spec.pipeline)
    with scope:
        if models.is_pipeline_alone(spec.backbone) and user_pipeline:
            model = null_like(train_feed.first)
            training.compile_model(model, xla=spec.xla)
        elif user_pipeline:
            model = _model(spec, job_classes(train_feed.first, classes, spec.pipeline), train_feed.first)
        else:
            model = _model(spec, classes)
    if user_pipeline:
        check(train_feed.first, model)
    elif is_user_model(spec.backbone):  # a shipped pipeline's images into a user's model
        why = check_shapes([(spec.input_size,) * 2 + (3,)], model)
        if why:
            raise ValueError(why)
    return model, train_feed, val_feed


def job_classes(first, data_classes: int, pipeline: str) -> int:
    """The classes a model must give for the labels a user's pipeline yields: the data folder's
    where the pipeline reads it, else the width of one-hot labels or one more than the largest class
    number in its first batch. Labels of another width than the folder's are refused, naming both."""
    import numpy as np

    y = np.asarray(keras_leaf(first[1]))
    onehot = y.ndim > 1 and y.shape[-1] > 1
    seen = int(y.shape[-1]) if onehot else int(y.max()) + 1
    if not reads_our_data(pipeline):
        return seen
    if onehot and seen != data_classes:
        raise ValueError(
            f"pipeline {pipeline} yields one-hot labels of {seen} classes, but the data folder it reads has "
            f"{data_classes}"
        )
    return data_classes


def check(first, model) -> None:
    """A user pipeline's first batch against the model: its inputs' shapes and its labels' classes."""
    why = check_batch(first, model) or check_labels(first, model)
    if why:
        raise ValueError(why)


def host_share(index, spec, process_id: int):
    """(the index and spec of process `process_id`'s share of a run on `spec.hosts` processes): its
    own images and a batch of batch / hosts, for as many steps as the whole run plans, so that
    every process steps together and the global batch is `batch`."""
    if spec.hosts == 1:
        return index, spec
    train_steps, _ = split_plan(index.count("train"), spec, "train")
    val_steps, _ = split_plan(index.count("val"), spec, "val")
    local = dataclasses.replace(
        spec, batch=spec.batch // spec.hosts, steps_per_epoch=train_steps, validation_steps=val_steps, window="epochs"
    )
    return index.shard(process_id, spec.hosts), local


def _model(spec: RunSpec, classes: int, first=None):
    """The spec's model, compiled: at the image shape of a user pipeline's `first` batch where it gives
    one image tensor (the job's size), else at input_size."""
    leaf = None if first is None else keras_leaf(first[0])
    shape = tuple(leaf.shape[1:]) if leaf is not None and len(leaf.shape) == 4 else (spec.input_size,) * 2 + (3,)
    model = models.build(spec.backbone, shape, classes, spec.finetune, spec.transfer)
    return training.compile_model(model, xla=spec.xla)
