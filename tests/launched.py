"""A run for tests/test_processes.py's launcher test: says how it pools processes, where it runs
and how many of the server's objects its garbage collector leaves alone (frozen), waits until the
file named on its command line exists, then fails (exit status 3, its traceback and a last line
left in its output buffer in its log)."""

import gc
import multiprocessing
import sys
import time
from pathlib import Path

print(f"start method {multiprocessing.get_start_method()} in {Path.cwd()}", flush=True)
print(f"frozen {gc.get_freeze_count()}", flush=True)
while not Path(sys.argv[1]).exists():
    time.sleep(0.05)
try:
    raise RuntimeError("released")
except RuntimeError:
    import traceback

    traceback.print_exc()
    print("leaves with status 3")  # not flushed: a forked run's exit flushes it
    sys.exit(3)
