"""Beam-free preprocessing: dataset readers, rendering, features, TFRecords, tf.data input.

Installed as `loco_tf.pipelines`. Pipelines never import recipes.
"""
