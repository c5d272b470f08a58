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
from pipelines.registry import is_model_alone, is_user_pipeline
from pipelines.synthetic import feed_of
from pipelines.user import check_batch, check_shapes


def model_and_feeds(spec: RunSpec, share, local: RunSpec, classes: int, scope):
    """(the model, compiled; the training feed; the validation feed)."""
    user_pipeline = is_user_pipeline(spec.pipeline)
    if is_model_alone(spec.pipeline) and is_user_model(spec.backbone):
        with scope:
            model = _model(spec, classes)
        x, y = tensors_like(model, local.batch, spec.input_size)
        feeds = [feed_of(x, y, split_plan(share.count(split), local, split)[0], local) for split in ("train", "val")]
        feeds = [f._replace(images=f.steps * local.batch) for f in feeds]
        return model, feeds[0], feeds[1]
    train_feed, val_feed = training.feeds(share, local)
    with scope:
        if models.is_pipeline_alone(spec.backbone) and user_pipeline:
            model = null_like(train_feed.first)
            training.compile_model(model, xla=spec.xla)
        else:
            model = _model(spec, classes)
    if user_pipeline:
        why = check_batch(train_feed.first, model)
    else:  # a shipped pipeline's images into a user's model
        why = is_user_model(spec.backbone) and check_shapes([(spec.input_size,) * 2 + (3,)], model)
    if why:
        raise ValueError(why)
    return model, train_feed, val_feed


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


def _model(spec: RunSpec, classes: int):
    model = models.build(spec.backbone, (spec.input_size,) * 2 + (3,), classes, spec.finetune, spec.transfer)
    return training.compile_model(model, xla=spec.xla)
