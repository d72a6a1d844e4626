"""`python -m loco_tf` is the `loco` command."""

from loco_tf.recipes.cli import main

main()
