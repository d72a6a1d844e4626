"""The audio front end as a Keras layer: waveform -> log-mel + causal difference, in-graph."""

from __future__ import annotations

import keras
import tensorflow as tf

from loco_tf.features import FeatureConfig, mel_filterbank


@keras.saving.register_keras_serializable(package="loco_tf")
class LogMelFrontEnd(keras.layers.Layer):
    """Computes `loco_tf.features.compute_features` in the graph, with stock TF ops only.

    `tf.signal.stft` (periodic Hann window, no padding: frame t covers samples
    `[t * hop, t * hop + n_fft)`), squared magnitude, librosa's Slaney mel matrix for the same
    `FeatureConfig` as a constant, `10 * log10(max(S, amin))`, then the causal difference as a
    second channel. An exported model carries it, so that TF Serving clients send audio, not
    features; nothing here needs tensorflow-io or a custom op.

    Masking: returns no mask; use the `frame_lengths` helper for each waveform's frame count.

    Args:
        feature_config: a `FeatureConfig` or its `to_dict()`.
        **kwargs: standard layer arguments.

    Call arguments:
        waveform: `[batch, samples]` mono float audio at `feature_config.sample_rate`.

    Returns:
        `[batch, frames, n_mels, 2]` float32.
    """

    def __init__(self, feature_config: FeatureConfig | dict | None = None, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if feature_config is None:
            feature_config = FeatureConfig()
        elif isinstance(feature_config, dict):
            feature_config = FeatureConfig.from_dict(feature_config)
        self.feature_config = feature_config
        self._mel = tf.constant(mel_filterbank(feature_config).T, tf.float32)  # [bins, mels]

    def call(self, waveform):
        config = self.feature_config
        waveform = tf.cast(waveform, tf.float32)
        spectrum = tf.signal.stft(
            waveform,
            frame_length=config.n_fft,
            frame_step=config.hop_length,
            fft_length=config.n_fft,
            window_fn=tf.signal.hann_window,
            pad_end=False,
        )
        power = tf.math.square(tf.abs(spectrum))
        mel = tf.tensordot(power, self._mel, axes=1)
        log_mel = 10.0 * tf.math.log(tf.maximum(mel, config.amin)) / tf.math.log(10.0)
        difference = log_mel - tf.concat([log_mel[:, :1], log_mel[:, :-1]], axis=1)
        return tf.stack([log_mel, difference], axis=-1)

    def frame_lengths(self, sample_lengths):
        """Valid frames per waveform: `(samples - n_fft) // hop + 1`, at least 0."""
        config = self.feature_config
        frames = (tf.cast(sample_lengths, tf.int32) - config.n_fft) // config.hop_length + 1
        return tf.maximum(frames, 0)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], None, self.feature_config.n_mels, 2)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(feature_config=self.feature_config.to_dict())
        return config
