"""Names of choices that configurations check before TensorFlow is imported.

`loco_tf.distribute` (`loco_tf.streaming` for inference) is their public home; they live here
so that a configuration (and the `loco` command's `--help`, which shows its defaults) can be
built without importing TensorFlow.
"""

STRATEGIES = ("default", "mirrored", "multiworker")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
# Inference: the convolutions' dtype (`loco_tf.streaming.encoder_dtype_for`).
INFERENCE_PRECISIONS = ("auto", "float32", "bfloat16")
