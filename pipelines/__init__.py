"""Beam-free preprocessing: dataset readers, rendering, features, TFRecords, tf.data input.

Installed as `loco_tf.pipelines`. Pipelines never import recipes.
"""

import contextlib as _contextlib
import io as _io

# pretty_midi imports pyfluidsynth, whose import prints "'fluidsynth' was found at ..." on
# stdout whenever the environment has CI set (its debug switch; continuous-integration
# services set CI). A command's stdout is its output (`loco --version`, a table, a CSV), so the
# package loads pyfluidsynth once here with that line held back; pretty_midi, imported by the
# modules below, then finds it loaded. A missing or unloadable libfluidsynth is left to the
# places that need it (pretty_midi and the renderer report it).
with _contextlib.redirect_stdout(_io.StringIO()):
    try:
        import fluidsynth as _fluidsynth  # noqa: F401
    except (ImportError, OSError):
        pass
