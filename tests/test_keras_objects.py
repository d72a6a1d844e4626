"""LocoLoss, the layers and the eq. 15 initializer as Keras objects."""

import math
import subprocess
import sys
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from reference import brute_force_pmf, log_pmf_recursion

import loco_tf
from loco_tf import CountDistribution, CountPriorBias, EventProbabilities, LocoLoss
from loco_tf.models import ConvLSTMConfig, build_conv_lstm


def _reference_nll(p, counts, k_max):
    return np.array(
        [
            -sum(
                log_pmf_recursion(p[b, :, c], k_max)[min(counts[b, c], k_max)]
                for c in range(p.shape[2])
            )
            for b in range(p.shape[0])
        ]
    )


@pytest.mark.parametrize("method", loco_tf.ops.LOG_LIKELIHOOD_METHODS)
def test_loco_loss_is_negative_log_likelihood_reduced_the_keras_way(method):
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 0.2, size=(4, 60, 3))
    counts = rng.integers(0, 8, size=(4, 3))
    weights = np.array([1.0, 0.0, 2.0, 0.5])
    per_sample = _reference_nll(p, counts, 12)
    loss = LocoLoss(k_max=12, method=method)
    assert float(loss(counts, p)) == pytest.approx(per_sample.mean(), rel=1e-5)
    weighted = float(loss(counts, p, sample_weight=weights))
    assert weighted == pytest.approx((per_sample * weights).mean(), rel=1e-5)
    summed = LocoLoss(k_max=12, method=method, reduction="sum")(counts, p)
    assert float(summed) == pytest.approx(per_sample.sum(), rel=1e-5)
    unreduced = LocoLoss(k_max=12, method=method, reduction=None)(counts, p)
    np.testing.assert_allclose(unreduced.numpy(), per_sample, rtol=1e-5)


def test_loco_loss_from_logits_equals_from_probabilities():
    rng = np.random.default_rng(1)
    logits = rng.normal(-3, 2, size=(2, 40, 2)).astype(np.float32)
    counts = np.array([[1, 0], [3, 2]])
    from_logits = LocoLoss(k_max=9, from_logits=True)(counts, logits)
    from_p = LocoLoss(k_max=9)(counts, tf.sigmoid(logits))
    assert float(from_logits) == pytest.approx(float(from_p), rel=1e-5)


def test_counts_above_k_max_use_the_tail_and_warn_once(monkeypatch):
    monkeypatch.setattr(loco_tf.losses, "_warned_about_tail", False)
    p = np.full((1, 30, 1), 0.5)
    with pytest.warns(UserWarning, match="exceeds k_max=4"):
        high = LocoLoss(k_max=4)([[9]], p)
    tail = log_pmf_recursion(p[0, :, 0], 4)[4]
    assert float(high) == pytest.approx(-tail, abs=1e-6)  # Pr(Y >= 4) ~ 1: log error = rel. error
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        LocoLoss(k_max=4)([[11]], p)  # a second time: silent
    assert not [w for w in caught if "exceeds k_max" in str(w.message)]


def test_loco_loss_rejects_wrong_shapes_with_a_clear_message():
    with pytest.raises(ValueError, match=r"y_true of shape \[batch, classes\]"):
        LocoLoss()(np.zeros((2, 3, 1)), np.zeros((2, 10, 3)))
    with pytest.raises(ValueError, match=r"y_pred of shape \[batch, time, classes\]"):
        LocoLoss()(np.zeros((2, 3)), np.zeros((2, 3)))


def test_event_probabilities_zero_padding_and_return_no_mask():
    features = np.random.default_rng(2).normal(size=(3, 10, 4)).astype(np.float32)
    lengths = np.array([10, 4, 0])
    head = EventProbabilities(2, sequence_length=10)
    p = head(features, lengths=lengths).numpy()
    assert (p[1, 4:] == 0).all() and (p[2] == 0).all() and (p[0] > 0).all()
    assert (p[1, :4] > 0).all()
    # The same through a Keras mask: Masking -> LSTM -> head, and no mask leaves the head.
    padded = features.copy()
    padded[1, 4:] = 0.0
    padded[2] = 0.0
    inputs = keras.Input((10, 4))
    hidden = keras.layers.LSTM(5, return_sequences=True)(keras.layers.Masking(0.0)(inputs))
    outputs = EventProbabilities(2, sequence_length=10)(hidden)
    model = keras.Model(inputs, outputs)
    masked = model(padded).numpy()
    assert (masked[1, 4:] == 0).all() and (masked[2] == 0).all() and (masked[0] > 0).all()
    assert getattr(model(padded), "_keras_mask", None) is None
    model.compile(loss=LocoLoss(k_max=5))
    loss = model.evaluate(padded, np.array([[1, 0], [2, 1], [0, 0]]), verbose=0)
    assert np.isfinite(loss)


def test_count_prior_bias_gives_omega_on_zero_count():
    for omega, frames in [(0.5, 400), (0.1, 10), (0.9, 10_000)]:
        bias = loco_tf.count_prior_bias(omega, frames)
        p = 1 / (1 + math.exp(-bias))
        assert (1 - p) ** frames == pytest.approx(omega, rel=1e-9)
        assert bias == pytest.approx(math.log((1 - omega ** (1 / frames)) / omega ** (1 / frames)))
    with pytest.raises(ValueError, match="omega"):
        loco_tf.count_prior_bias(1.0, 400)
    values = CountPriorBias(0.5, 400)((3,))
    np.testing.assert_allclose(values, loco_tf.count_prior_bias(0.5, 400), rtol=1e-6)


def test_fresh_network_starts_near_omega_on_zero_count():
    """eq. 15 through the real §6.1 network at initialisation: Pr(Y = 0) ~ omega."""
    keras.utils.set_random_seed(0)
    frames = 400
    model = build_conv_lstm(ConvLSTMConfig(sequence_length=frames, prior_zero_mass=0.3))
    features = np.random.default_rng(0).normal(size=(8, frames, 80, 2)).astype(np.float32)
    p = model({"features": features, "lengths": np.full(8, frames)})
    zero_mass = np.exp(loco_tf.ops.poisson_binomial_log_pmf(p, k_max=31).numpy()[..., 0])
    assert abs(zero_mass.mean() - 0.3) < 0.1, zero_mass


def test_count_distribution_layer_matches_enumeration_and_masks():
    rng = np.random.default_rng(3)
    p = rng.uniform(size=(2, 9, 2)).astype(np.float32)
    pmf = CountDistribution(k_max=4)(p, lengths=np.array([9, 5])).numpy()
    np.testing.assert_allclose(pmf[0, 1], brute_force_pmf(p[0, :, 1].astype(float), 4), rtol=1e-5)
    np.testing.assert_allclose(pmf[1, 0], brute_force_pmf(p[1, :5, 0].astype(float), 4), rtol=1e-5)
    log_pmf = CountDistribution(k_max=4, log_space=True)(p).numpy()
    np.testing.assert_allclose(np.exp(log_pmf[0]), pmf[0], rtol=1e-5)


def _tiny_model():
    features = keras.Input((None, 6), name="features")
    lengths = keras.Input((), dtype="int32", name="lengths")
    hidden = keras.layers.LSTM(8, return_sequences=True)(features)
    p = EventProbabilities(2, sequence_length=20, name="events")(hidden, lengths=lengths)
    counts = CountDistribution(k_max=6, name="counts")(p, lengths=lengths)
    return keras.Model({"features": features, "lengths": lengths}, {"p": p, "counts": counts})


def test_keras_file_round_trip_without_custom_objects(tmp_path):
    keras.utils.set_random_seed(1)
    model = _tiny_model()
    model.compile(
        optimizer="adam",
        loss={"p": LocoLoss(k_max=6, method="scan"), "counts": None},
    )
    inputs = {
        "features": np.random.default_rng(4).normal(size=(3, 20, 6)).astype(np.float32),
        "lengths": np.array([20, 11, 3], np.int32),
    }
    expected = model.predict(inputs, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    np.savez(tmp_path / "inputs.npz", **inputs)
    np.savez(tmp_path / "expected.npz", **expected)
    # A fresh interpreter that imports loco_tf and nothing else of ours.
    script = f"""
import numpy as np, keras, loco_tf
model = keras.saving.load_model({str(path)!r})
inputs = dict(np.load({str(tmp_path / "inputs.npz")!r}))
expected = np.load({str(tmp_path / "expected.npz")!r})
out = model.predict(inputs, verbose=0)
for key in ("p", "counts"):
    assert np.array_equal(out[key], expected[key]), key
loss = model.loss["p"] if isinstance(model.loss, dict) else model.loss
assert isinstance(loss, loco_tf.LocoLoss) and loss.k_max == 6 and loss.method == "scan", loss
print("round trip ok")
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert "round trip ok" in result.stdout, result.stderr[-3000:]


def test_configs_round_trip():
    for layer in [
        EventProbabilities(3, prior_zero_mass=0.2, sequence_length=99),
        CountDistribution(7),
    ]:
        clone = layer.__class__.from_config(layer.get_config())
        assert clone.get_config() == layer.get_config()
    loss = LocoLoss(k_max=17, from_logits=True, method="scan")
    assert LocoLoss.from_config(loss.get_config()).get_config() == loss.get_config()
    assert keras.saving.get_registered_name(LocoLoss) == "loco_tf>LocoLoss"


@pytest.mark.parametrize("jit_compile", [False, True])
def test_training_step_in_graph_and_xla(jit_compile):
    keras.utils.set_random_seed(2)
    model = _tiny_model()
    model.compile(
        optimizer="adam", loss={"p": LocoLoss(k_max=6), "counts": None}, jit_compile=jit_compile
    )
    rng = np.random.default_rng(5)
    inputs = {
        "features": rng.normal(size=(8, 20, 6)).astype(np.float32),
        "lengths": rng.integers(5, 21, 8).astype(np.int32),
    }
    counts = rng.integers(0, 3, size=(8, 2))
    history = model.fit(inputs, {"p": counts}, epochs=2, batch_size=4, verbose=0)
    assert np.isfinite(history.history["loss"]).all()


def test_mixed_precision_loss_stays_float32_and_close():
    rng = np.random.default_rng(6)
    inputs = {
        "features": rng.normal(size=(4, 20, 6)).astype(np.float32),
        "lengths": np.array([20, 15, 10, 5], np.int32),
    }
    counts = {"p": rng.integers(0, 3, size=(4, 2))}
    losses = {}
    for policy in ["float32", "mixed_float16", "mixed_bfloat16"]:
        keras.config.set_dtype_policy(policy)
        try:
            keras.utils.set_random_seed(3)
            model = _tiny_model()
            model.compile(optimizer="sgd", loss={"p": LocoLoss(k_max=6), "counts": None})
            assert model.loss["p"].dtype == "float32"
            assert model(inputs)["p"].dtype == "float32"
            losses[policy] = model.evaluate(inputs, counts, verbose=0)
            history = model.fit(inputs, counts, epochs=1, verbose=0)
            assert np.isfinite(history.history["loss"]).all()
        finally:
            keras.config.set_dtype_policy("float32")
    assert losses["mixed_float16"] == pytest.approx(losses["float32"], rel=2e-2)
    assert losses["mixed_bfloat16"] == pytest.approx(losses["float32"], rel=5e-2)


def test_tail_warning_also_comes_from_a_compiled_training_step(monkeypatch):
    monkeypatch.setattr(loco_tf.losses, "_warned_about_tail", False)
    inputs = keras.Input((20, 3))
    hidden = keras.layers.LSTM(4, return_sequences=True)(inputs)
    model = keras.Model(inputs, EventProbabilities(1, sequence_length=20)(hidden))
    model.compile("adam", loss=LocoLoss(k_max=3))
    with pytest.warns(UserWarning, match="A count of 9 exceeds k_max=3"):
        model.fit(np.zeros((4, 20, 3), "float32"), np.array([[1], [9], [2], [0]]), verbose=0)
