"""The tuner's whole walk (bench/analyse/moves.py `walk`), simulated with the rule `gpubench tune`
uses (bench/tune.py `better`: the noise pooled over every rate the folder holds, the first
setting's ceilings included) on a stand-in whose rates are a known function of the knobs:
`python -m tests.walk_sim` prints how often a walk on a plateau ends somewhere not truly better
than where it began, and how often a change worth 30% is kept."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.analyse import moves, noise
from bench.analyse.bounds import bound

START = {
    "backbone": "tiny",
    "pipeline": "keras",
    "batch": 16,
    "workers": 1,
    "use_multiprocessing": False,
    "max_queue_size": 10,
    "cache": False,
    "transfer": "float32",
    "precision": "float32",
    "xla": "auto",
}


class Folder:
    """A tune folder: every setting's rates drawn around `truth(knobs)` with lognormal noise `sd`,
    the first setting's two ceilings measured as often as it is, all kept for the pooled noise."""

    def __init__(self, truth, sd: float, seed: int, repeat: int, max_runs: int):
        self.truth, self.sd, self.repeat, self.max_runs = truth, sd, repeat, max_runs
        self.rng, self.rates = np.random.default_rng(seed), {}

    def draw(self, key, rate: float, n: int) -> list[float]:
        new = list(rate * np.exp(self.rng.normal(0, self.sd, n)))
        self.rates.setdefault(key, []).extend(new)
        return new

    def __call__(self, knobs: dict, why: str, n: int = 1) -> moves.Step:
        train = self.truth(knobs)
        rates = self.draw(moves._key(knobs), train, n)
        limit = bound({"train_img_s": float(np.median(rates)), "pipeline_img_s": train * 1.05, "model_img_s": 1e4})[0]
        return moves.Step(knobs, rates, train * 1.05, 1e4, limit, why)

    def first(self) -> moves.Step:
        self.draw("pipeline alone", self.truth(START) * 1.05, self.repeat)
        self.draw("model alone", 1e4, self.repeat)
        return self(START, "your setting", self.repeat)

    def more(self, step: moves.Step) -> moves.Step:
        return step._replace(rates=step.rates + self.draw(moves._key(step.knobs), self.truth(step.knobs), 1))

    def better(self, new: list[float], old: list[float]) -> bool:
        keys = [i for i, rates in enumerate(self.rates.values()) for _ in rates]
        frame = pd.DataFrame({"point_id": keys, "train_img_s": np.concatenate(list(self.rates.values()))})
        return noise.faster(new, old, moves.judged(noise.pooled(frame), self.max_runs))


def walk(truth, sd: float = 0.08, seed: int = 0, repeat: int = 2, max_runs: int = 12):
    """(whether the walk ended away from the start, the truth at its end over the truth at the
    start, the runs it took, ceilings included)."""
    folder = Folder(truth, sd, seed, repeat, max_runs)
    path, best, _ = moves.walk(
        folder.first(), folder, folder.better, {"tfdata"}, max_runs=max_runs, say=lambda line: None, more=folder.more
    )
    return best.knobs != START, truth(best.knobs) / truth(START), sum(len(r) for r in folder.rates.values())


def plateau(knobs: dict) -> float:
    return 100.0


def worth_30(knobs: dict) -> float:
    """More workers (the first move an input-bound setting tries) gives 30% more; nothing else helps."""
    return 130.0 if knobs["workers"] > 1 else 100.0


def rates(walks: int = 1000, sd: float = 0.08) -> dict[str, float]:
    """Over `walks` walks of each: the share on a plateau that end away from the start (no setting
    is truly better), the share that keep a change worth 30%, and the runs a walk takes."""
    flat = [walk(plateau, sd, seed) for seed in range(walks)]
    found = [walk(worth_30, sd, seed) for seed in range(walks)]
    return {
        "plateau: ended not better than the start": float(np.mean([moved for moved, _, _ in flat])),
        "+30% kept": float(np.mean([gain >= 1.3 for _, gain, _ in found])),
        "runs a walk, plateau": float(np.mean([runs for _, _, runs in flat])),
        "runs a walk, +30%": float(np.mean([runs for _, _, runs in found])),
    }


if __name__ == "__main__":
    print(rates())
