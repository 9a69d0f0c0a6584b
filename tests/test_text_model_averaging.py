"""Weight averaging (``ema_epochs``): the fitted model holds the moving average of the raw
weights that training stepped through, at the epoch early stopping keeps."""
import numpy as np
import pytest

from catalog import load_dataset, make_split
from text_model import TextModelConfig
from text_model_helpers import TINY

pytest.importorskip("keras")


@pytest.mark.parametrize("bad", [-0.1, float("nan")])
def test_negative_or_nan_ema_epochs_are_refused(bad):
    with pytest.raises(ValueError, match="ema_epochs must be >= 0"):
        TextModelConfig(ema_epochs=bad)


def test_the_window_in_epochs_sets_the_per_step_momentum():
    from text_model.trainer import ema_momentum

    assert ema_momentum(TINY.with_overrides(ema_epochs=1.5), 67) == pytest.approx(1 - 1 / 100.5)
    assert ema_momentum(TINY.with_overrides(ema_epochs=0.5), 1) == 0.0  # a window under one step: no averaging


def test_ema_epochs_round_trips_through_a_config_file(tmp_path):
    import json

    from text_model import get_config

    path = tmp_path / "tuned.json"
    path.write_text(json.dumps({"name": "tuned", "ema_epochs": 2.5}))
    assert get_config(str(path)).ema_epochs == 2.5


def _recording_timer(monkeypatch, record):
    """Replace the trainer's epoch timer (a callback after the averaging one) by one that also
    records the raw trainable weights after every step and at every epoch's start."""
    import text_model.trainer as trainer

    real = trainer._EpochTimer

    def timer():
        t = real()
        step_end, epoch_begin = t.on_train_batch_end, t.on_epoch_begin

        def on_train_batch_end(batch, logs=None):
            step_end(batch, logs)
            record["steps"].append([np.array(v.numpy()) for v in t.model.trainable_variables])

        def on_epoch_begin(epoch, logs=None):
            epoch_begin(epoch, logs)
            record["starts"].append([np.array(v.numpy()) for v in t.model.trainable_variables])
            record["epoch_of_step"].append(len(record["steps"]))

        t.on_train_batch_end, t.on_epoch_begin = on_train_batch_end, on_epoch_begin
        return t

    monkeypatch.setattr(trainer, "_EpochTimer", timer)


@pytest.mark.parametrize("patience", [0, 1])
def test_the_fitted_weights_are_the_moving_average_at_the_kept_epoch(monkeypatch, planted_home, patience):
    from text_model.trainer import fit_text_model

    dataset = load_dataset(planted_home, "ml-100k")
    train = make_split(dataset.ratings, "random-80-20", 0).train
    config = TINY.with_overrides(epochs=8, ema_epochs=1.0, early_stopping_patience=patience,
                                 learning_rate=3e-2, ranking_factors=(), rating_weights=(1.0,))
    record = {"steps": [], "starts": [], "epoch_of_step": []}
    _recording_timer(monkeypatch, record)
    tm = fit_text_model(dataset, train, config, seed=0, verbose=0, run_eagerly=True)

    steps = record["epoch_of_step"][1]
    momentum = 1 - 1 / (1.0 * steps)
    # the moving average of the raw weights, step by step, as Keras' optimizer EMA defines it
    # (the first step's average is that step's weights), and its value at each epoch's end
    ends = [n - 1 for n in record["epoch_of_step"][1:]] + [len(record["steps"]) - 1]
    average, at_end = None, []
    for k, weights in enumerate(record["steps"]):
        average = weights if average is None else [momentum * a + (1 - momentum) * w
                                                   for a, w in zip(average, weights)]
        if k in ends:
            at_end.append(average)
    # each epoch trains on from the raw weights, not from the average the epoch's end swapped in
    for epoch in range(1, len(record["starts"])):
        last_raw = record["steps"][record["epoch_of_step"][epoch] - 1]
        for start, raw in zip(record["starts"][epoch], last_raw):
            np.testing.assert_array_equal(start, raw)
    epochs_run = len(tm.history["loss"])
    if patience:  # early stopping ended the fit before its last planned epoch
        assert epochs_run < config.epochs
    kept = int(np.argmin(tm.history["val_rmse"])) if patience else epochs_run - 1
    fitted = [v.numpy() for v in tm.model.trainable_variables]
    for got, want in zip(fitted, at_end[kept]):
        np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-6)
    # the id tables' averages moved lazily (`SparseAdam`: only the rows each step looked up), the
    # dense layers' as Keras moves them; both match the step-by-step average above
    lazy = {tm.model.optimizer._trainable_variables[k].name for k in tm.model.optimizer._sparse_averages}
    assert "embeddings" in lazy and len(lazy) < len(fitted)
    # and the average is not the raw weights: the knob changed what was fitted
    assert max(float(np.abs(g - r).max()) for g, r in zip(fitted, record["steps"][ends[kept]])) > 1e-4


def test_without_averaging_the_fitted_weights_are_the_last_raw_ones(monkeypatch, planted_home):
    from text_model.trainer import fit_text_model

    dataset = load_dataset(planted_home, "ml-100k")
    train = make_split(dataset.ratings, "random-80-20", 0).train
    config = TINY.with_overrides(epochs=2, ranking_factors=(), rating_weights=(1.0,))
    record = {"steps": [], "starts": [], "epoch_of_step": []}
    _recording_timer(monkeypatch, record)
    tm = fit_text_model(dataset, train, config, seed=0, verbose=0, run_eagerly=True)
    for got, want in zip([v.numpy() for v in tm.model.trainable_variables], record["steps"][-1]):
        np.testing.assert_array_equal(got, want)


def test_the_memory_estimate_counts_the_average():
    from text_model import memory

    off = memory.estimate(1_000_000, 10_000, 5_000, TINY)["network"]
    on = memory.estimate(1_000_000, 10_000, 5_000, TINY.with_overrides(ema_epochs=1.5))["network"]
    assert on == pytest.approx(off * 6 / 4)
