"""Training on TensorFlow's own distribution engine (`tf.distribute`) and in mixed precision.

Strategies by name (`make_strategy`), as `loco train ... --strategy` takes them:

``default``
    one device (`tf.distribute.get_strategy()`, no replication).
``mirrored``
    `tf.distribute.MirroredStrategy` over every GPU of this machine or, without GPUs, over every
    logical CPU device (`split_cpu` makes several of one CPU: that is how the tests and
    `bench/distribute_bench.py` run it on a CPU-only machine).
``multiworker``
    `tf.distribute.MultiWorkerMirroredStrategy` across the processes named in the `TF_CONFIG`
    environment variable (one per machine, or several on one machine): every process runs the
    same command with its own `TF_CONFIG` task. It must be created before TensorFlow does
    anything else, which `loco train` does first thing.

The batch size a recipe is given is the GLOBAL batch: each of the N replicas computes 1/N of it,
and Keras scales each replica's loss so that the summed gradients are those of the global batch
(`keras.losses.Loss` under `tf.distribute`: `scale_loss_for_distribution`); the tests check that
the same data gives the same loss and weights after a step on one device and on two.

Input: `tf.data`'s auto-sharding splits the training TFRecord files among workers
(`AutoShardPolicy.FILE`: each worker reads its own shards; a set needs at least as many shard
files as workers) and evaluation data by element (`DATA`), with a fixed number of steps so that
every worker runs the same number of batches.

Files: only the chief writes the run folder (checkpoints, history, the model); every other
worker writes its backups to a folder of its own (`worker_dir`), since all workers hold the same
state and must each restore it after a failure.

Mixed precision (`--mixed-precision mixed_float16` or `mixed_bfloat16`): `set_precision`
sets Keras's global dtype policy; `EventProbabilities` returns float32 and `LocoLoss` computes in
float32 whatever its input, and Keras wraps the optimizer in a `LossScaleOptimizer` for float16.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import keras
import tensorflow as tf

from loco_tf._choices import PRECISIONS, STRATEGIES


def split_cpu(devices: int) -> None:
    """Makes `devices` logical CPU devices of the physical CPU (for `mirrored` without GPUs).

    Must run before TensorFlow initialises its devices (before the first op).

    Raises:
        RuntimeError: TensorFlow's devices are already initialised (the message says so).
    """
    if devices < 1:
        raise ValueError(f"devices must be >= 1, got {devices}")
    (cpu,) = tf.config.list_physical_devices("CPU")[:1]
    configuration = [tf.config.LogicalDeviceConfiguration() for _ in range(devices)]
    try:
        tf.config.set_logical_device_configuration(cpu, configuration)
    except RuntimeError as error:
        current = len(tf.config.list_logical_devices("CPU"))
        if current == devices:
            return
        raise RuntimeError(
            f"cannot split the CPU into {devices} devices: TensorFlow is already initialised "
            f"with {current}; call split_cpu first thing in the process"
        ) from error


_MADE: dict[str, tf.distribute.Strategy] = {}


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The strategy called `name` (one of `STRATEGIES`).

    A process gets one strategy per name: a second call (a second training in one Python session)
    returns the first call's strategy. TensorFlow configures a multi-worker strategy's collective
    ops once per process; making another one reconfigures them ("Enabling collective ops after
    program startup may cause error when accessing previously created tensors").
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name not in _MADE:
        _MADE[name] = _make(name)
    return _MADE[name]


def _make(name: str) -> tf.distribute.Strategy:
    if name == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        # NCCL all-reduce is for GPUs; CPU replicas reduce on one device.
        reduce = None if devices[0].device_type == "GPU" else tf.distribute.ReductionToOneDevice()
        return tf.distribute.MirroredStrategy(
            devices=[device.name for device in devices], cross_device_ops=reduce
        )
    if name == "multiworker":
        if not os.environ.get("TF_CONFIG"):
            raise ValueError(
                "--strategy multiworker needs the TF_CONFIG environment variable on every worker, "
                'e.g. TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                '"task": {"type": "worker", "index": 0}}\' (index 1 on the second machine)'
            )
        return _MultiWorkerMirroredStrategy()
    raise ValueError(f"unknown strategy {name!r}; use one of {', '.join(STRATEGIES)}")


class _MultiWorkerMirroredStrategy(tf.distribute.MultiWorkerMirroredStrategy):
    """`MultiWorkerMirroredStrategy` whose `reduce` accepts what Keras 3's `Model.fit` gives it.

    Keras 3.15's TensorFlow trainer calls the multi-worker strategy's `reduce` in two ways it
    does not support (keras-team/keras#20585, open): with a nested `(x, y)` batch, to learn its
    shapes before the first step ("Attempt to convert a value ({'features': PerReplica...}) ...
    to a Tensor"), and with `axis=0` on the scalar per-replica logs (loss, metrics) after each
    step ("Invalid reduction dimension 0 for input with 0 dimensions"). This subclass reduces a
    structure leaf by leaf and a scalar over replicas only, which is what the single-machine
    `MirroredStrategy` path of the same trainer computes. Nothing else changes.
    """

    def reduce(self, reduce_op, value, axis):
        parent = super()

        def leaf(v):
            components = self.experimental_local_results(v)
            scalar = all(getattr(c, "shape", None) is not None and c.shape.rank == 0
                         for c in components)  # fmt: skip
            return parent.reduce(reduce_op, v, None if scalar else axis)

        return tf.nest.map_structure(leaf, value)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run's files: always, except for a multi-worker task
    that is not the chief (the `chief` task, or worker 0 when there is none)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or resolver is None:
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type in (None, "chief"):
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "worker" and task_id == 0 and not has_chief


def worker_dir(out: os.PathLike | str, strategy: tf.distribute.Strategy) -> Path:
    """Where this process writes: `out` for the chief, `out/.worker-<type>-<id>` otherwise."""
    if is_chief(strategy):
        return Path(out)
    resolver = strategy.cluster_resolver
    return Path(out) / f".worker-{resolver.task_type}-{resolver.task_id}"


def num_workers() -> int:
    """Workers in `TF_CONFIG`'s cluster (1 without it)."""
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    cluster = config.get("cluster", {})
    return max(1, len(cluster.get("worker", [])) + len(cluster.get("chief", [])))


def shard_by(dataset: tf.data.Dataset, policy: str) -> tf.data.Dataset:
    """`dataset` with tf.data's auto-shard policy `"FILE"` or `"DATA"` for multi-worker input."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = getattr(
        tf.data.experimental.AutoShardPolicy, policy
    )
    return dataset.with_options(options)


@contextlib.contextmanager
def precision(policy: str) -> Iterator[None]:
    """Keras's global dtype policy set to `policy` (one of `PRECISIONS`) for the block."""
    if policy not in PRECISIONS:
        raise ValueError(f"unknown precision {policy!r}; use one of {', '.join(PRECISIONS)}")
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)
