"""`python -m bench.run.label`: the label --gpu auto gives a one-GPU run on this machine, or its
one-line refusal in its place (exit 2), never `cpu`: what `make regress` and `make gpu-check` file
their results under (bench/run/gate.py decides). Both on standard output, so that a caller's
$(...) holds either, and warnings a library prints on standard error pass it by."""

from __future__ import annotations

import sys

from bench.plan.knobs import SpecError
from bench.run import doctor, gate


def main() -> int:
    try:
        print(gate.auto_label(doctor.nvml()))
    except SpecError as e:
        print(e)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
