import pytest

from bench.timing import TimingCallback


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def drive(timer, clock, epochs):
    """Replays the hooks fit calls: each epoch is (step times, validation time)."""
    timer.on_train_begin()
    for e, (steps, val) in enumerate(epochs):
        timer.on_epoch_begin(e)
        for i, step in enumerate(steps):
            timer.on_train_batch_begin(i)
            clock.now += step
            timer.on_train_batch_end(i, {"loss": 0.5})
        timer.on_test_begin()
        clock.now += val
        timer.on_test_end()
        timer.on_epoch_end(e)
    timer.on_train_end()


def test_first_epoch_is_left_out_of_the_steady_state():
    clock = FakeClock()
    timer = TimingCallback(clock)
    drive(timer, clock, [([5.0, 1.0], 2.0), ([0.5, 0.5], 1.0), ([0.5, 1.5], 1.0)])
    s = timer.summary(images_per_epoch=20)
    assert s["total_s"] == pytest.approx(13.0)
    assert s["first_epoch_s"] == pytest.approx(8.0)
    assert s["epoch_s_median"] == pytest.approx(2.5)  # epochs of 2.0 and 3.0
    assert s["val_s_total"] == pytest.approx(4.0)
    assert s["train_img_s"] == pytest.approx(40 / 3.0)  # 2 epochs x 20 images in 1.0 + 2.0 s
    assert s["step_ms_p50"] == pytest.approx(500.0)
    assert s["epochs_timed"] == 3


def test_a_single_epoch_is_its_own_steady_state():
    clock = FakeClock()
    timer = TimingCallback(clock)
    drive(timer, clock, [([1.0, 1.0], 2.0)])
    assert timer.summary(images_per_epoch=10)["train_img_s"] == pytest.approx(5.0)


def test_checkpoint_time_is_kept_apart_from_training():
    clock = FakeClock()
    timer = TimingCallback(clock)
    drive(timer, clock, [([1.0], 0.5), ([1.0], 0.5), ([1.0], 0.5)])  # checkpoints below add nothing to the clock
    s = timer.summary(images_per_epoch=10, checkpoint_s=[0.0, 0.25, 0.25])
    assert s["checkpoint_s_total"] == pytest.approx(0.5)
    assert s["train_img_s"] == pytest.approx(20 / 1.5)  # (1.5 - 0.5 - 0.25) s per steady epoch


def test_the_wait_for_data_counts_where_any_backend_fetches_the_batch():
    """TensorFlow and JAX fetch a batch inside the step, torch before the step's begin hook:
    a step's span starts where the previous step ended, so both waits are seen."""

    class Ready:
        def __getitem__(self, batch):
            return times[batch]

    for fetch_in_step in (True, False):
        clock = FakeClock()
        timer = TimingCallback(clock, ready=Ready())
        times = {}
        timer.on_train_begin()
        timer.on_epoch_begin(0)
        for i in range(3):
            if not fetch_in_step:  # torch: the loader is waited on before the begin hook
                clock.now += 0.3
                times[i] = clock.now
            timer.on_train_batch_begin(i)
            if fetch_in_step:
                clock.now += 0.3
                times[i] = clock.now
            clock.now += 0.7  # the step's compute
            timer.on_train_batch_end(i, {})
        timer.on_epoch_end(0)
        timer.on_train_end()
        s = timer.summary(images_per_epoch=3)
        assert s["data_wait_frac"] == pytest.approx(0.3) and s["step_ms_p50"] == pytest.approx(1000.0)
        assert s["epoch_start_s_median"] == pytest.approx(0.3)  # the first batch's wait, kept apart
