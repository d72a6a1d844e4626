"""loco-tf: learn where events happen in time from labels that only say how many happened.

LoCo (Localization through Counting; Schroeter, Sidorov and Marshall, ICML 2019) as Keras 3 /
TensorFlow objects: the exact log-space count loss, the layers around it, and the eq. 15 bias.
"""

from loco_tf import _startup
from loco_tf._version import __version__

__all__ = [
    "CountDistribution",
    "CountPriorBias",
    "EventProbabilities",
    "LocoLoss",
    "__version__",
    "count_prior_bias",
    "events",
    "hilbert",
    "metrics",
    "models",
    "ops",
]

if not _startup.is_command_line():
    # A program that imports the package gets all of it now, TensorFlow included, and Keras
    # knows its serializable layers, loss and initializer (`keras.models.load_model` finds
    # them). The `loco` command instead imports it when a command runs, quietly
    # (`_startup.start_command`), so that `loco --help` does not wait for TensorFlow.
    from loco_tf._api import (
        CountDistribution,
        CountPriorBias,
        EventProbabilities,
        LocoLoss,
        count_prior_bias,
        events,
        hilbert,
        metrics,
        models,
        ops,
    )
elif _startup.is_worker_process():
    # A worker the command started (e.g. `loco prepare`'s spawned renderers) imports TensorFlow
    # through the modules it runs, before any command callback could: so, quietly, now.
    _startup.start_command()


def __getattr__(name: str):
    if name in __all__:
        from loco_tf import _api

        return getattr(_api, name)
    raise AttributeError(f"module 'loco_tf' has no attribute {name!r}")
