"""The parent side of a sweep: the points not yet measured, each run (processes.py) or skipped
(skips.py) in its turn, its row appended as it ends, and the progress line with its ETA."""

from __future__ import annotations

import textwrap
from pathlib import Path

import psutil
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn
from rich.text import Text

from bench.plan.knobs import BUSY_PCT, RunSpec
from bench.results.machine import identity as machine_identity
from bench.results.record import RunRecord, others_share
from bench.run.failures import AfterFailures, explained
from bench.run.failures import finished as finished_row
from bench.run.processes import run_point
from bench.run.settings import Options, Prepared
from bench.run.skips import BatchLadders, why_skipped
from pipelines.dataset import DatasetIndex


class Interrupted(Exception):
    """Ctrl-C during a sweep: the rows finished are kept; the message says where, and how to go on."""


def clock(seconds: float) -> str:
    """1:02:03, 2:03 or 0:05: a duration as a clock reads."""
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def eta(elapsed_s: float, ran: int, left: int) -> float | None:
    """Seconds the `left` runs will take at the pace so far: `elapsed_s` over the `ran` runs that
    ran (a skipped one takes no time and is not counted), or None before the first has ended."""
    return elapsed_s / ran * left if ran else None


class EtaColumn(ProgressColumn):
    """The time left, from the runs done (rich's own estimate needs a finish within its last 30 s)."""

    def render(self, task) -> Text:
        left = eta(task.elapsed or 0.0, task.fields["ran"], task.total - task.completed)
        return Text("ETA " + ("-:--" if left is None else clock(left)), style="progress.remaining")


def wait_for_quiet(share: float, console: Console, limit_s: float, busy_now=None) -> tuple[float, bool]:
    """After a run during which other work took over BUSY_PCT of the CPU, wait until it takes less (each
    look: the machine's use over 2 s, nothing of the sweep's running) or `limit_s` has passed, so that the
    next runs are measured quiet where the machine allows; (the seconds waited, whether it is quiet now).
    Said on the console."""
    if share <= BUSY_PCT or limit_s <= 0:
        return 0.0, share <= BUSY_PCT
    busy_now = busy_now or (lambda: psutil.cpu_percent(interval=2.0))
    console.print(
        f"other work took {share:.0f}% of the CPU during that run: waiting up to {limit_s:.0f} s for it to drop "
        f"under {BUSY_PCT:.0f}% (its figures are judged under load: the report says so)",
        highlight=False,
    )
    waited, now = 0.0, share
    while waited < limit_s and now > BUSY_PCT:
        now = busy_now()
        waited += 2.0
    return waited, now <= BUSY_PCT


def _summary(record: dict) -> str:
    """A run's console line: a skip's reason whole, an error's first 300 characters cut at a word."""
    if record["status"] == "skipped":
        return f"skipped: {escape(record['error'])}"
    if record["status"] != "ok":
        return f"[red]{record['status']}[/red] {escape(textwrap.shorten(record['error'], 300, placeholder=' ...'))}"
    return f"ok {record['total_s']:.1f} s, {record['train_img_s']:.1f} img/s"


def sweep(
    specs: list[RunSpec],
    prepared: Prepared,
    options: Options,
    on_row=None,
    console: Console | None = None,
    jobs=None,
    before: int = 0,
) -> list[dict]:
    """Run the points this code (and on this machine, unless `jobs` run them elsewhere) has not yet
    measured in the session's store (all with its `force`); append each row as its run ends, stamped with
    the machine that ran it (bench.results.machine.identity of env.json), and hand it to `on_row`.
    `jobs` (bench.run.executors.Submitit) runs the points as jobs; by default they run here, one after
    another; the progress lines number the runs on from `before`, those of the sweep's earlier passes.
    A point asking for more GPUs than are present (with no GPU at all, gpus=N trains on N
    logical CPU devices), or for a batch at least as large as one that ran out of memory on its
    ladder, is a `skipped` row, and so is one a failure made pointless (bench/run/failures.py); a
    failed run of an earlier sweep runs again. Each run's processes are given the session's variables
    (doctor.check's) on top of this process's environment. Returns the new rows."""
    console = console or Console(stderr=True)
    store, index_path, gpus_present, given = (
        prepared.store,
        prepared.index_path,
        prepared.env["gpu_count"],
        prepared.given,
    )
    timeout_s, interval = options.timeout_s, options.interval
    identity = machine_identity(prepared.env)
    measured_by = {k: identity[k] for k in ("commit",)} if jobs else identity  # jobs land on other machines
    index = DatasetIndex.load(index_path) if Path(index_path).is_file() else None
    previous = {} if prepared.force else {r["run_id"]: r for r in store.latest(measured_by)}
    todo = [s for s in specs if not (s.run_id in previous and finished_row(previous[s.run_id]))]
    again = sum(s.run_id in previous for s in todo)
    if len(todo) < len(specs):
        console.print(
            f"{len(specs) - len(todo)} of {len(specs)} runs already in {store.root}: skipped (--force reruns "
            f"them)" + (f"; the {again} that failed before run again" if again else "")
        )
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), EtaColumn())
    ladders = BatchLadders(previous.values())
    after_failures = AfterFailures(specs)
    new = []
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("sweep", total=before + len(todo), completed=before, ran=0)

        def finish(spec: RunSpec, record: dict) -> None:
            record.update({k: v for k, v in identity.items() if not record.get(k)})  # skipped rows: ours
            store.append(explained(record, index))
            ladders.note(record)
            after_failures.note(record)
            if on_row:
                on_row(record)
            new.append(record)
            if record["status"] != "skipped":
                progress.update(task, ran=progress.tasks[0].fields["ran"] + 1)
            progress.advance(task)
            role = ", ceiling" if spec.role == "ceiling" else ""
            number = f"\\[{before + len(new)}/{before + len(todo)}]"
            # a log (not a terminal) shows no bar: each line then carries its ETA
            left = None if progress.console.is_terminal else EtaColumn().render(progress.tasks[0])
            progress.console.print(
                f"{number} {spec.label()} (r{spec.repeat}{role}): {_summary(record)}" + (f"; {left}" if left else ""),
                highlight=False,
                soft_wrap=True,
            )

        def runnable():
            """The points to run, each decided when its turn comes: a ladder may stop it."""
            for spec in todo:
                progress.update(task, description=spec.label())
                why = why_skipped(spec, gpus_present, index) or ladders.stopped(spec) or after_failures.stopped(spec)
                if why:
                    finish(spec, RunRecord.for_spec(spec, status="skipped", error=why).to_dict())
                else:
                    yield spec

        def locally():
            """Each run here in turn; after one that other work slowed, a wait for quiet (wait_for_quiet),
            until a wait finds none."""
            limit = options.quiet_wait_s
            for spec in runnable():
                record = run_point(spec, index_path, store, timeout_s, interval, options.mem_limit_mb, given)
                yield spec, record
                share = others_share(record.get("cpu_util_mean"), record.get("proc_cpu_pct_mean"), psutil.cpu_count())
                waited, quiet = wait_for_quiet(0.0 if share is None else float(share), progress.console, limit)
                if waited and not quiet:  # a machine busy for all that while stays so: no more waits
                    progress.console.print(
                        f"the machine stayed busy for {waited:.0f} s: the sweep waits no more, and the report says "
                        "which figures ran under load",
                        highlight=False,
                    )
                    limit = 0.0

        if jobs is None:
            results = locally()
        else:
            results = jobs.run(runnable(), (str(index_path), str(store.root), timeout_s, interval, given))
        try:
            for spec, record in results:
                finish(spec, record)
        except KeyboardInterrupt:
            raise Interrupted(
                f"interrupted: {len(new)} of {len(todo)} runs finished, kept in {store.root}; "
                f"the same command again runs the other {len(todo) - len(new)}"
            ) from None
    return new
