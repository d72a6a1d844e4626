"""`recipes.drums.fit_resumably` on a tiny Keras model: extending a finished run, from its
backup or its best checkpoint, early stopping that has ended a run, and the learning rate
reduced on a plateau, kept across a resumption."""

import csv
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

from loco_tf.recipes import drums

LEARNING_RATE = 0.01


def model_and_data():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(1, use_bias=False)(inputs))
    model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE), loss="mse")
    x = np.random.default_rng(0).normal(size=(16, 3)).astype(np.float32)
    train = tf.data.Dataset.from_tensor_slices((x, x @ [[1.0], [2.0], [3.0]])).batch(4).repeat()
    # Zero inputs: the validation loss is the same whatever the weights, so it never improves.
    zeros = np.zeros((8, 3), np.float32)
    validation = tf.data.Dataset.from_tensor_slices((zeros, np.ones((8, 1), np.float32))).batch(4)
    return model, train, validation


def fit(out, epochs, patience=10, reduce_lr_patience=0, messages=None):
    model, train, validation = model_and_data()
    seen = []

    class Epochs(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            seen.append(epoch)

    history = drums.fit_resumably(
        model, out, train, validation, epochs=epochs, steps_per_epoch=2, validation_steps=None,
        patience=patience, backup_every=None, tensorboard=False,
        reduce_lr_patience=reduce_lr_patience, callbacks=[Epochs()], verbose=0,
        log=(messages.append if messages is not None else lambda message: None),
    )  # fmt: skip
    return model, history, seen


def test_extending_a_finished_run_trains_on_from_its_backup(tmp_path):
    model, history, seen = fit(tmp_path, 2)
    weights = model.get_weights()
    assert seen == [0, 1] and (tmp_path / "backup").is_dir()
    again, history, seen = fit(tmp_path, 2)
    assert seen == []  # finished: nothing is fitted

    class Stop(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise KeyboardInterrupt  # a Ctrl-C once the extension's first epoch is backed up

    model, train, validation = model_and_data()
    with pytest.raises(KeyboardInterrupt):
        drums.fit_resumably(
            model, tmp_path, train, validation, epochs=4, steps_per_epoch=2,
            validation_steps=None, patience=10, backup_every=None, tensorboard=False,
            callbacks=[Stop()], verbose=0, log=lambda message: None,
        )  # fmt: skip
    assert not (tmp_path / "fit-complete.json").exists()  # unfinished again
    extended, history, seen = fit(tmp_path, 4)
    assert seen == [3]  # resumed after epoch 2, like any interrupted run
    assert int(extended.optimizer.iterations) == 8  # 2 steps x 4 epochs: Adam's state went on
    assert [int(row["epoch"]) for row in history] == [0, 1, 2, 3]
    assert not np.allclose(extended.get_weights()[0], weights[0])


def test_a_run_without_its_backup_extends_from_its_best_checkpoint(tmp_path):
    model, _, _ = fit(tmp_path, 2)
    best = keras.saving.load_model(tmp_path / "best.keras")
    shutil.rmtree(tmp_path / "backup")  # as in runs saved before backups were kept

    class Start(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.weights = [w.copy() for w in self.model.get_weights()]
            self.iterations = int(self.model.optimizer.iterations)

    model, train, validation = model_and_data()
    start, messages = Start(), []
    history = drums.fit_resumably(
        model, tmp_path, train, validation, epochs=3, steps_per_epoch=2, validation_steps=None,
        patience=10, backup_every=None, tensorboard=False, callbacks=[start], verbose=0,
        log=messages.append,
    )  # fmt: skip
    for restored, saved in zip(start.weights, best.get_weights(), strict=True):
        np.testing.assert_array_equal(restored, saved)
    assert start.iterations == int(best.optimizer.iterations) > 0
    assert [int(row["epoch"]) for row in history] == [0, 1, 2]
    assert any("best.keras" in message for message in messages)


def test_a_run_ended_by_early_stopping_is_not_extended(tmp_path):
    messages = []
    _, history, seen = fit(tmp_path, 5, patience=2, messages=messages)
    assert seen == [0, 1, 2]  # the validation loss never improves after epoch 0
    _, history, seen = fit(tmp_path, 8, patience=2, messages=messages)
    assert seen == []
    assert len(history) == 3
    assert any("raise --patience" in message for message in messages)
    _, history, seen = fit(tmp_path, 4, patience=3)  # with more patience, one more epoch
    assert seen == [3]


def test_the_learning_rate_halves_on_a_plateau_and_resumes_halved(tmp_path):
    model, history, seen = fit(tmp_path, 3, reduce_lr_patience=1)
    # Epoch 0 sets the best; epochs 1 and 2 do not improve: halved after each.
    assert float(model.optimizer.learning_rate) == pytest.approx(LEARNING_RATE / 4)
    model, history, seen = fit(tmp_path, 6, reduce_lr_patience=1)
    assert seen == [3, 4, 5]
    # From the backup's quarter on, and never below the floor of four halvings.
    assert float(model.optimizer.learning_rate) == pytest.approx(LEARNING_RATE / 16)
    with open(tmp_path / "history.csv", newline="") as file:
        rows = list(csv.reader(file))
    assert rows[0] == ["epoch", "loss", "val_loss"]
    assert all(len(row) == 3 for row in rows[1:]) and len(rows) == 7
