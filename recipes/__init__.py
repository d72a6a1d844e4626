"""Experiment assembly (drums, piano, digits) and the `loco` command line.

Installed as `loco_tf.recipes`.
"""
