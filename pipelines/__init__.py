"""Input pipelines behind one signature: build(index, spec, split) -> a Feed that `fit` takes.

registry.py describes each pipeline (its loader knobs, their meaning, its depth and ceiling role),
epochs.py plans its epochs and measured window, feed.py is what a build hands over (its batches
stamped on a ReadyClock), batches.py the file order the keras and torch pipelines share; a module
per pipeline builds it, user.py and handover.py a user's.
"""

from __future__ import annotations

import importlib

from pipelines.feed import Feed
from pipelines.registry import describe


def build(index, spec, split: str, platform: str = "cpu") -> Feed:
    """The feed for one split ('train' or 'val') of `index`, as `spec` asks; `platform` (gpu, cpu,
    mps: where the backend trains) reaches the pipelines that decode there."""
    pipeline = describe(spec.pipeline)
    module = importlib.import_module(pipeline.module)
    return module.build(index, spec, split, platform) if pipeline.on_device else module.build(index, spec, split)
