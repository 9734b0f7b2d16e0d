"""The loop shared by `ich-edge train` and `ich-edge qat`: one owner of the validation fraction,
the batch check, the epoch bookkeeping and the run summary."""

from __future__ import annotations

import pytest

from ich_edge.errors import ConfigError
from ich_edge.training import loop


def test_validation_fraction_has_one_owner():
    from ich_edge.training.train import TrainConfig

    assert TrainConfig().val_fraction == loop.VAL_FRACTION == 0.2


def test_batch_must_divide_among_the_devices():
    class TwoDevices:
        num_replicas_in_sync = 2

    loop.check_batch(TwoDevices(), 4)
    with pytest.raises(ConfigError, match="batch_size 3 must be divisible by the 2 devices/workers"):
        loop.check_batch(TwoDevices(), 3)


def test_improves_and_epoch_line():
    assert loop.improves(None, 1.0) and loop.improves(1.0, 0.9) and not loop.improves(1.0, 1.0)
    assert not loop.improves(1.0, 0.99995, 1e-4) and loop.improves(1.0, 0.9998, 1e-4)
    entry = {"epoch": 2, "loss": 0.51234, "val_loss": 0.4, "seconds": 3.04}
    assert loop.epoch_line("qat epoch 2", entry, best=True) == "qat epoch 2: loss 0.5123, val_loss 0.4000, 3.0 s (best)"
    assert loop.epoch_line("epoch 2/3", entry, ", lr 1e-3") == "epoch 2/3: loss 0.5123, val_loss 0.4000, 3.0 s, lr 1e-3"


def test_run_summary_keys_and_means():
    history = [{"seconds": 2.0, "cpu_seconds": 4.0}, {"seconds": 4.0, "cpu_seconds": 6.0}]
    summary = loop.run_summary(history, 3, 2, "epochs", 1, 0.5, 6.0, 7.0)
    assert list(summary) == ["epochs_planned", "epochs_run", "stopped", "best_epoch", "best_val_loss", "train_seconds",
                             "mean_epoch_seconds", "total_seconds_this_call"]
    assert summary["mean_epoch_seconds"] == 3.0
    with_cpu = loop.run_summary(history, 3, 2, "epochs", 1, 0.5, 6.0, 7.0, cpu=True)
    assert with_cpu["mean_epoch_cpu_seconds"] == 5.0 and list(with_cpu)[-2:] == ["mean_epoch_cpu_seconds", "total_seconds_this_call"]
    assert loop.run_summary([], 3, 0, None, 0, None, 0.0, 1.0, cpu=True)["mean_epoch_cpu_seconds"] is None
