"""LocoLoss and CountDistribution inside a model that is not ours: a small Transformer encoder
over a user's own features, trained, saved as .keras and loaded back."""

import keras
import numpy as np
from reference import batch_log_pmf

import loco_tf

FRAMES, BINS, CLASSES, K_MAX = 48, 12, 2, 7


def transformer_counter():
    """Self-attention encoder block -> per-frame event probabilities -> count distribution."""
    features = keras.Input((FRAMES, BINS), name="features")
    x = keras.layers.Dense(32)(features)
    attention = keras.layers.MultiHeadAttention(num_heads=2, key_dim=16)(x, x)
    x = keras.layers.LayerNormalization()(x + attention)
    x = keras.layers.LayerNormalization()(x + keras.layers.Dense(32, activation="relu")(x))
    p = loco_tf.EventProbabilities(CLASSES, sequence_length=FRAMES, name="p")(x)
    pmf = loco_tf.CountDistribution(k_max=K_MAX, name="pmf")(p)
    return keras.Model(features, {"p": p, "pmf": pmf})


def data(n=96, seed=0):
    """Bursts of energy in random frames; the label is only how many per class."""
    rng = np.random.default_rng(seed)
    x = 0.1 * rng.standard_normal((n, FRAMES, BINS)).astype("float32")
    counts = rng.integers(0, 4, size=(n, CLASSES))
    for i in range(n):
        for c in range(CLASSES):
            frames = rng.choice(FRAMES, counts[i, c], replace=False)
            x[i, frames, c * 6 : c * 6 + 6] += 2.0
    return x, counts


def test_loco_objects_train_save_and_load_inside_a_transformer(tmp_path):
    keras.utils.set_random_seed(0)
    model = transformer_counter()
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss={"p": loco_tf.LocoLoss(k_max=K_MAX), "pmf": None},
    )
    x, counts = data()
    before = model.evaluate(x, {"p": counts}, verbose=0, return_dict=True)["loss"]
    model.fit(x, {"p": counts}, epochs=15, batch_size=32, verbose=0)
    outputs = model.predict(x[:8], verbose=0)

    # The loss is the NLL of the observed counts under the model's own count distribution,
    # which matches an independent float64 recursion.
    reference = np.exp(batch_log_pmf(outputs["p"].astype(np.float64), [FRAMES] * 8, K_MAX))
    np.testing.assert_allclose(outputs["pmf"], reference, atol=1e-5)
    after = model.evaluate(x, {"p": counts}, verbose=0, return_dict=True)["loss"]
    nll = -np.mean(
        np.sum(
            np.log(
                np.exp(
                    batch_log_pmf(
                        model.predict(x, verbose=0)["p"].astype(np.float64),
                        [FRAMES] * len(x),
                        K_MAX,
                    )
                )[np.arange(len(x))[:, None], np.arange(CLASSES)[None], counts]
            ),
            axis=1,
        )
    )
    assert after < 0.7 * before
    np.testing.assert_allclose(after, nll, rtol=1e-3)

    # Saved and loaded back with no custom_objects (in a fresh interpreter too:
    # test_keras_objects.py::test_keras_file_round_trip_without_custom_objects).
    path = tmp_path / "transformer.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.loss["p"], loco_tf.LocoLoss), loaded.loss
    got = loaded.predict(x[:8], verbose=0)["pmf"]
    np.testing.assert_allclose(got, outputs["pmf"], atol=1e-6)
