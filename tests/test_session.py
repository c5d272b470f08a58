"""The sweep session's own mechanics, without a run: how often a sweep's report is rebuilt."""

from bench.session import REPORT_EVERY_S, Every


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_report_is_rebuilt_at_the_first_row_then_at_most_every_few_seconds():
    clock, rebuilt_at = FakeClock(), []
    on_row = Every(REPORT_EVERY_S, lambda row: rebuilt_at.append((clock.now, row)), clock)
    for row in range(2000):  # a row every second
        clock.now = float(row)
        on_row(row)
    assert rebuilt_at[0] == (0.0, 0)
    gaps = [b[0] - a[0] for a, b in zip(rebuilt_at, rebuilt_at[1:])]
    assert set(gaps) == {REPORT_EVERY_S} and len(rebuilt_at) == -(-2000 // REPORT_EVERY_S)
    clock.now += 0.5  # rows closer together than the interval are not each rebuilt
    on_row("late")
    assert rebuilt_at[-1][1] != "late"
