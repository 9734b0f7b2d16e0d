"""Which tf.distribute strategy trains, and which process writes the run folder.

* One machine (no ``TF_CONFIG``): ``MirroredStrategy`` over the local devices (all GPUs, or
  the CPU). The global batch is split between the devices.
* Several machines: ``MultiWorkerMirroredStrategy``, chosen when ``TF_CONFIG`` describes a
  cluster with more than one task. Launch the same command on every worker, each with its
  own ``TF_CONFIG`` (same ``cluster``, its own ``task``)::

      # machine A (the chief: worker 0 writes RUN_DIR)
      TF_CONFIG='{"cluster": {"worker": ["hostA:12345", "hostB:12345"]},
                  "task": {"type": "worker", "index": 0}}' \\
          ich-edge train --data CACHE --out RUN_DIR
      # machine B
      TF_CONFIG='{"cluster": {"worker": ["hostA:12345", "hostB:12345"]},
                  "task": {"type": "worker", "index": 1}}' \\
          ich-edge train --data CACHE --out RUN_DIR

  Every worker needs the cache (any mount path: runs are identified by the cache's
  content, not its path). ``--batch-size`` is the global batch and must be divisible by the
  number of devices; ``--lr-scaling linear`` scales the learning rate with it. Each worker
  reads only its share of every global batch of the seeded window plan
  (``distribute_datasets_from_function``; see :func:`ich_edge.training.data.worker_share`).

  RUN_DIR must be on a filesystem every worker sees at the same path (NFS, a cluster
  filesystem): checkpoints are written there by the chief and read by every worker on
  resume. Workers that would resume from different epochs (RUN_DIR not shared) refuse to
  start with a clear error instead of training out of step.

Only the chief (task ``chief``, or ``worker`` 0 when the cluster has no chief) writes
RUN_DIR. The other workers still take part in every save (saving reads variables with
collective ops) but write into a temporary folder they delete afterwards: the standard
Keras multi-worker pattern.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from ich_edge.errors import ConfigError
from ich_edge.training.keras import tf


def cluster_spec() -> dict | None:
    """The parsed ``TF_CONFIG`` when it names more than one task, else ``None``."""
    raw = os.environ.get("TF_CONFIG", "").strip()
    if not raw:
        return None
    try:
        config = json.loads(raw)
        tasks = sum(len(addresses) for addresses in config.get("cluster", {}).values())
    except (json.JSONDecodeError, AttributeError, TypeError) as err:
        raise ConfigError(f"TF_CONFIG is not valid JSON with a 'cluster' mapping: {err}") from err
    return config if tasks > 1 else None


def choose_strategy():
    """``MultiWorkerMirroredStrategy`` when ``TF_CONFIG`` lists a cluster, else ``MirroredStrategy``.

    Create it before any other TensorFlow work: the multi-worker strategy must start its
    collective runtime first.
    """
    if cluster_spec() is not None:
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.MirroredStrategy()


def num_workers(strategy) -> int:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return 1
    return len(resolver.cluster_spec().as_dict().get("worker", [])) + len(resolver.cluster_spec().as_dict().get("chief", []))


def is_chief(strategy) -> bool:
    """True for the one process that writes RUN_DIR (always true on one machine)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or resolver.task_type is None:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


class WriteDir:
    """Where this process writes: RUN_DIR on the chief, a private temp folder elsewhere.

    Use as a context manager; a worker's temp folder is deleted on exit.
    """

    def __init__(self, run_dir: str | Path, strategy) -> None:
        self.chief = is_chief(strategy)
        self.path = Path(run_dir) if self.chief else Path(tempfile.mkdtemp(prefix="ich-edge-worker-"))

    def __enter__(self) -> "WriteDir":
        return self

    def __exit__(self, *exc) -> None:
        if not self.chief:
            shutil.rmtree(self.path, ignore_errors=True)


def any_worker(strategy, flag: bool) -> bool:
    """True on every worker when ``flag`` is true on at least one (keeps stopping in step)."""
    if num_workers(strategy) == 1:
        return bool(flag)
    value = strategy.run(lambda: tf.constant(1.0 if flag else 0.0))
    return bool(strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None).numpy() > 0)


def gather_ints(strategy, value: int) -> list[int]:
    """``value`` of every replica of every worker (one entry per replica; collective on several workers)."""
    if num_workers(strategy) == 1:
        return [int(value)]
    per_replica = strategy.run(lambda: tf.constant([int(value)], tf.int64))
    return [int(v) for v in strategy.gather(per_replica, axis=0).numpy()]
