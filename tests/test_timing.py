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
