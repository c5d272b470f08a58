"""Which points are skipped rather than run, known before starting them: what this machine or
backend cannot do (GPUs, multi-device and multi-host limits, uneven splits, a missing plugin), and
batches on a ladder above one that ran out of memory."""

from __future__ import annotations

from bench.plan.backends import BACKENDS
from bench.plan.grid import installed
from bench.plan.knobs import KNOBS, RunSpec, knobs_of
from bench.run.devices import multi_host_refusal
from models.user import is_user_model
from pipelines.epochs import split_plan
from pipelines.registry import describe

LADDER_KNOBS = knobs_of("model", "schedule", "device")  # what a point's device memory depends on, but its batch


def why_skipped(spec: RunSpec, gpus_present: int, index) -> str | None:
    """Why a point cannot run here, known before starting it."""
    backend = BACKENDS[spec.backend]
    if gpus_present and spec.gpus > gpus_present:
        return f"needs {spec.gpus} GPUs, {gpus_present} present"
    if spec.gpus > 1 and backend.one_device:
        return backend.one_device
    if spec.data_format == "channels_first" and backend.channels_first_on_cpu and not gpus_present:
        return backend.channels_first_on_cpu
    if spec.hosts > 1:
        if why := multi_host_refusal(spec.backend):
            return why
        if spec.batch % (spec.hosts * spec.gpus):
            return (
                f"batch {spec.batch} does not split evenly over {spec.hosts} hosts of {spec.gpus} device(s): "
                f"each host feeds an equal share of every batch"
            )
    plugin, why = describe(spec.pipeline).plugins.get(spec.backend, (None, None))
    if plugin and not installed(plugin):
        return why
    if is_user_model(spec.backbone) and (why := user_model_cannot(spec)):
        return why
    if spec.gpus > 1:
        for split in ("train", "val"):
            steps, images = split_plan(index.count(split), spec, split)
            last = images - (steps - 1) * spec.batch
            if spec.batch % spec.gpus or last % spec.gpus:
                return (
                    f"batch {spec.batch} ({split} ends with {last}) does not split evenly over {spec.gpus} "
                    f"devices: data parallelism gives each an equal share"
                )
    return None


def user_model_cannot(spec: RunSpec) -> str | None:
    """What a user's model, built as they made it, does not let the sweep change."""
    if spec.data_format != "channels_last":
        return f"a user's model keeps the layout it was built in; data_format={spec.data_format} cannot apply"
    if spec.backbone.endswith(".keras") and spec.precision != "float32":
        return (
            f"a saved .keras model keeps the dtype policy it was saved with; precision={spec.precision} cannot "
            "apply (give a model function instead, which is built under the policy)"
        )
    return None


class BatchLadders:
    """The smallest batch that ran out of memory on each ladder: the knobs a point's device
    memory depends on besides its batch (not its loader's). A larger batch on the same ladder
    would run out too, so it is skipped rather than run."""

    def __init__(self, rows=()):
        self.oom: dict[tuple, int] = {}
        for row in rows:
            self.note(row)

    @staticmethod
    def key(knobs: dict) -> tuple:
        """The ladder of a point: its LADDER_KNOBS values."""
        return tuple(knobs.get(k, KNOBS[k].default) for k in LADDER_KNOBS)

    def note(self, row: dict) -> None:
        """Remember a row that ran out of memory on its ladder."""
        if row["status"] == "oom":
            key = self.key(row)
            self.oom[key] = min(row["batch"], self.oom.get(key, row["batch"]))

    def stopped(self, spec: RunSpec) -> str | None:
        """Why this point is skipped: a batch as large or larger ran out of memory on its ladder; else None."""
        smallest = self.oom.get(self.key(spec.knobs()))
        if smallest is not None and spec.batch >= smallest:
            return f"batch ladder stopped: batch {smallest} ran out of memory with this model and precision"
        return None
