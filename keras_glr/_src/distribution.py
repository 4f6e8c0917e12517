"""Training on several devices or machines: the strategy, and who writes.

    none          the default strategy: one device
    mirrored      tf.distribute.MirroredStrategy: every local device
    multi-worker  tf.distribute.MultiWorkerMirroredStrategy: the workers named
                  in TF_CONFIG, each running the same command

A GLR step needs nothing special under either strategy: every example reads
the noise rows of its index in the global batch (`copies.replica_share`), so
the estimate equals the one-process estimate for the same global batch and
seed. The chief alone writes the run directory; the other workers write to
temporary folders they remove, as TensorFlow's multi-worker guide prescribes
(saving may run collective operations, so every worker must save).
"""

import json
import os
import socket

from keras_glr._src import keras_private

STRATEGIES = ("none", "mirrored", "multi-worker")


def read_tf_config(environ=os.environ):
    """The cluster TF_CONFIG describes, checked: returns the parsed dict.

    Raises ValueError saying what is missing or malformed and what a valid
    TF_CONFIG looks like.
    """
    example = (
        'e.g. TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
        '"task": {"type": "worker", "index": 0}}\' on the first machine and index 1 on the second'
    )
    text = environ.get("TF_CONFIG")
    if not text:
        raise ValueError(
            f"--strategy multi-worker needs the TF_CONFIG environment variable, and it is not set; {example}."
        )
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"TF_CONFIG is not valid JSON ({error.msg} at character {error.pos}); {example}.") from None
    cluster = config.get("cluster") if isinstance(config, dict) else None
    task = config.get("task") if isinstance(config, dict) else None
    if not isinstance(cluster, dict) or not cluster or not all(isinstance(v, list) and v for v in cluster.values()):
        raise ValueError(f"TF_CONFIG has no cluster of addresses; received {text!r}; {example}.")
    if not isinstance(task, dict) or task.get("type") not in cluster:
        raise ValueError(f"TF_CONFIG's task type must be one of {sorted(cluster)}; received task {task!r}; {example}.")
    index = task.get("index")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(cluster[task["type"]]):
        raise ValueError(
            f"TF_CONFIG's task index must be an integer from 0 to {len(cluster[task['type']]) - 1}; "
            f"received {index!r}; {example}."
        )
    return config


def make_strategy(name):
    """The `tf.distribute.Strategy` called `name` (one of STRATEGIES).

    Create it before any other TensorFlow work: a multi-worker strategy must
    set up the cluster before the runtime starts.
    """
    import tensorflow as tf

    if name not in STRATEGIES:
        raise ValueError(f"Invalid `strategy`: {name!r}. Expected one of {list(STRATEGIES)}.")
    if name == "none":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    read_tf_config()
    return tf.distribute.MultiWorkerMirroredStrategy()


def is_chief(strategy):
    """True for the process that writes: the only one, or the chief (worker 0 if no chief)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not keras_private.in_multi_worker_mode(strategy):
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    return (
        task_type is None
        or task_type == "chief"
        or (task_type == "worker" and task_id == 0 and "chief" not in resolver.cluster_spec().as_dict())
    )


def local_cluster(workers):
    """TF_CONFIG values for `workers` workers on 127.0.0.1, one per worker, on free ports.

    For trying multi-worker training on one machine: run the same command
    `workers` times, each with its own TF_CONFIG.
    """
    sockets = [socket.socket() for _ in range(workers)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    addresses = [f"127.0.0.1:{s.getsockname()[1]}" for s in sockets]
    for s in sockets:
        s.close()
    cluster = {"worker": addresses}
    return [json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}) for i in range(workers)]
