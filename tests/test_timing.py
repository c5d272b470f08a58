import pytest

from pipelines.feed import ReadyClock

# The timers are Keras callbacks: importing Keras (and TensorFlow) costs a `make test-fast` worker 4 s,
# so they are imported by the tests that run, not when the file is collected.
pytestmark = pytest.mark.slow


def timing():
    from bench.run import timing

    return timing


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def drive(timer, clock, epochs, wait=0.0, fetch_first=False, checkpoint=0.0):
    """Replays the hooks fit calls: each epoch is (step times, validation time or None). Every
    batch is ready `wait` seconds after the loop turns to it: inside the step after its begin hook
    (TensorFlow, JAX), or before the begin hook (torch: `fetch_first`). A checkpoint takes
    `checkpoint` seconds at each epoch's end."""
    ready = getattr(timer, "ready", None)
    ready = ready if isinstance(ready, ReadyClock) else None  # tensors in memory: nothing stamps them
    timer.on_train_begin()
    for e, (steps, val) in enumerate(epochs):
        timer.on_epoch_begin(e)
        for i, step in enumerate(steps):
            if fetch_first:
                clock.now += wait
                if ready is not None:
                    ready.times[i] = clock.now
            timer.on_train_batch_begin(i)
            if not fetch_first:
                clock.now += wait
                if ready is not None:
                    ready.times[i] = clock.now
            clock.now += step - wait
            timer.on_train_batch_end(i, {"loss": 0.5})
        if val is not None:
            timer.on_test_begin()
            clock.now += val
            timer.on_test_end()
        clock.now += checkpoint
        timer.on_epoch_end(e)
    timer.on_train_end()


def test_the_first_epoch_is_warm_up_and_the_rest_the_window():
    clock = FakeClock()
    timer = timing().EpochTimer(clock)
    drive(timer, clock, [([5.0, 1.0], 2.0), ([0.5, 0.5], 1.0), ([0.5, 1.5], 1.0)])
    s = timer.summary(steps=2, images=20)
    assert s["total_s"] == pytest.approx(13.0)
    assert s["first_epoch_s"] == pytest.approx(8.0)
    assert s["epoch_s_median"] == pytest.approx(2.5)  # epochs of 2.0 and 3.0
    assert s["val_s_total"] == pytest.approx(4.0)
    assert s["window_s"] == pytest.approx(3.0) and s["window_steps"] == 4 and s["window_images"] == 40
    assert s["train_img_s"] == pytest.approx(40 / 3.0)  # 2 epochs x 20 images in 1.0 + 2.0 s
    assert s["warmup_s"] == pytest.approx(8.0)
    assert s["step_ms_mean"] == pytest.approx(750.0)
    # the first epoch's 6 s of steps against 2 x 0.75 s steady, and 2 s of validation against 1 s
    assert s["compile_s"] == pytest.approx(6.0 - 1.5 + 1.0)
    assert s["epochs_timed"] == 3 and "data_wait_frac" not in s
    assert timer.window() == [(8.0, 9.0), (10.0, 12.0)]


def flat(spans):
    return [t for span in spans for t in span]


def test_marked_steps_open_the_window_after_the_warm_up_steps_of_the_first_epoch():
    """Compile in the first step, the loader's prefilled batches drained fast, then steady: the
    window opens at step 3 of the first epoch and takes in the second."""
    clock = FakeClock()
    timer = timing().StepTimer(Ready(), clock, warmup_steps=3)
    drive(timer, clock, [([5.0, 0.2, 0.2, 1.0, 1.0], 2.0), ([1.0] * 5, 1.0)], wait=0.1)
    s = timer.summary(steps=5, images=50)
    assert flat(timer.window()) == pytest.approx([5.4, 7.4, 9.4, 14.4])
    assert s["window_steps"] == 7 and s["window_s"] == pytest.approx(7.0)
    assert s["window_images"] == 70 and s["train_img_s"] == pytest.approx(10.0)
    assert s["warmup_s"] == pytest.approx(5.4) and s["warmup_steps"] == 3
    # 5.4 s for 3 steps against 3 x 1.0 s steady, 2 s of validation against 1 s, less the loader's 0.1 s start
    assert s["compile_s"] == pytest.approx(5.4 - 3.0 + 1.0 - 0.1)
    assert s["data_wait_frac"] == pytest.approx(0.1) and s["step_ms_p50"] == pytest.approx(1000.0)
    one = FakeClock()
    alone = timing().StepTimer(
        Ready(), one, warmup_steps=3
    )  # a single epoch: the window is its steps after the warm-up
    drive(alone, one, [([5.0, 0.2, 0.2, 1.0, 1.0], None)])
    assert flat(alone.window()) == pytest.approx([5.4, 7.4]) and alone.summary(steps=5, images=50)[
        "train_img_s"
    ] == pytest.approx(10.0)
    short = FakeClock()
    whole = timing().StepTimer(Ready(), short, warmup_steps=8)  # more warm-up steps than the epoch has: the whole epoch
    drive(whole, short, [([1.0] * 5, None)] * 2)
    assert whole.window() == [(5.0, 10.0)] and whole.summary(steps=5, images=5)["warmup_steps"] == 5


def test_a_single_epoch_is_its_own_window_and_has_no_compile_figure():
    clock = FakeClock()
    timer = timing().EpochTimer(clock)
    drive(timer, clock, [([1.0, 1.0], 2.0)])
    s = timer.summary(steps=2, images=10)
    assert s["train_img_s"] == pytest.approx(5.0) and s["warmup_s"] == 0.0 and s["compile_s"] is None


@pytest.mark.parametrize("val", [0.5, None], ids=["validated", "no validation"])
def test_checkpoint_time_is_kept_apart_from_training(val):
    clock = FakeClock()
    timer = timing().EpochTimer(clock)
    drive(timer, clock, [([1.0], val)] * 3, checkpoint=0.25)
    s = timer.summary(steps=1, images=10, checkpoint_s=[0.25] * 3)
    assert s["checkpoint_s_total"] == pytest.approx(0.75)
    assert s["train_img_s"] == pytest.approx(10.0) and s["window_s"] == pytest.approx(2.0)


def Ready(steps: int = 64) -> ReadyClock:
    return ReadyClock(steps)


@pytest.mark.parametrize("timer_class, fetch_first", [("StepTimer", False), ("FetchFirstStepTimer", True)])
def test_the_wait_for_data_counts_where_each_backend_fetches_the_batch(timer_class, fetch_first):
    """TensorFlow and JAX fetch a batch inside the step, torch before the step's begin hook: each
    timer marks where its backend's loop turns to the next batch, so both waits are seen."""
    clock = FakeClock()
    timer = getattr(timing(), timer_class)(Ready(), clock)
    drive(timer, clock, [([1.0] * 3, 0.5)] * 3, wait=0.3, fetch_first=fetch_first)
    s = timer.summary(steps=3, images=3)
    assert s["data_wait_frac"] == pytest.approx(0.3)
    assert s["step_ms_p50"] == pytest.approx(1000.0) and s["step_ms_p90"] == pytest.approx(1000.0)
    assert s["epoch_start_s_median"] == pytest.approx(0.3)  # the first batch's wait, kept apart
    assert s["loader_start_s"] == pytest.approx(0.3)
    assert s["train_img_s"] == pytest.approx(1.0)


def test_batches_ready_before_the_step_do_not_wait():
    clock = FakeClock()
    timer = timing().StepTimer(Ready(), clock)
    drive(timer, clock, [([1.0] * 4, 0.0)] * 2, wait=0.0)
    assert timer.summary(steps=4, images=4)["data_wait_frac"] == 0.0


def test_only_the_torch_timer_has_the_hook_that_makes_keras_wait_every_step():
    """Keras (CallbackList._configure_async_dispatch) reads every step's logs, which waits for
    the device, when a callback overrides a train-batch end hook; on JAX (and torch) a plain fit
    does not. The timers for TensorFlow and JAX have none; torch's needs one to see its fetch."""
    from keras.src.utils.python_utils import is_default

    for timer in (timing().EpochTimer(), timing().StepTimer(Ready())):
        assert is_default(timer.on_train_batch_end) and is_default(timer.on_batch_end)
    assert not is_default(timing().FetchFirstStepTimer(Ready()).on_train_batch_end)


def test_each_feed_gets_the_timer_that_fits_it():
    assert type(timing().timer_for("jax", None)) is timing().EpochTimer
    assert type(timing().timer_for("tensorflow", Ready())) is timing().StepTimer
    assert type(timing().timer_for("torch", Ready())) is timing().FetchFirstStepTimer


def test_a_torch_ceiling_is_timed_by_the_same_hooks_as_a_torch_pipeline_run():
    """On torch a pipeline run's timer waits for the device every step (its end hook); the model alone
    on tensors in memory is timed by the same timer, so both are synchronised alike, and never waits."""
    from keras.src.utils.python_utils import is_default

    ceiling, pipeline = timing().timer_for("torch", None), timing().timer_for("torch", Ready())
    assert type(ceiling) is type(pipeline) is timing().FetchFirstStepTimer
    assert not is_default(ceiling.on_train_batch_end)
    clock = FakeClock()
    ceiling.clock = clock
    drive(ceiling, clock, [([1.0] * 3, 0.5)] * 2, fetch_first=True)
    s = ceiling.summary(steps=3, images=3)
    assert s["data_wait_frac"] == 0.0 and s["step_ms_p50"] == pytest.approx(1000.0)
    assert s["train_img_s"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    "backend, loader_start, compile_s",
    [
        ("tensorflow", 0.1, 0.5),  # the first wait's 0.6 s beyond a later epoch's start is the trace
        ("jax", 0.7, 0.0),  # jax fetches before its compiled step: the first wait is the loader's
    ],
)
def test_on_tensorflow_the_trace_in_the_first_batch_wait_is_booked_as_compile(
    monkeypatch, backend, loader_start, compile_s
):
    """The smoke preset's tfdata at batch 8 read loader start 0.626 s and compile 0.096 s; later
    epochs started in 0.006 s. Here: 0.6 s of trace and 0.1 s of loader start before the first
    batch, then 0.1 s per epoch start, two steps of 0.1 s per epoch."""
    import bench.run.timing

    monkeypatch.setattr(bench.run.timing.keras.backend, "backend", lambda: backend)
    clock, ready = FakeClock(), Ready(2)
    timer = timing().StepTimer(ready, clock)
    timer.on_train_begin()
    for epoch, first_wait in enumerate((0.7, 0.1, 0.1)):
        timer.on_epoch_begin(epoch)
        for i, wait in enumerate((first_wait, 0.0)):
            timer.on_train_batch_begin(i)
            clock.now += wait
            ready.times[i] = clock.now
            clock.now += 0.1
        timer.on_epoch_end(epoch)
    timer.on_train_end()
    s = timer.summary(steps=2, images=16)
    assert s["epoch_start_s_median"] == pytest.approx(0.1)
    assert s["loader_start_s"] == pytest.approx(loader_start)
    assert s["compile_s"] == pytest.approx(compile_s, abs=1e-9)
