"""Where training runs: one process (``default``), the local devices (``mirrored``) or several
machines (``multiworker``, `tf.distribute.MultiWorkerMirroredStrategy`).

``multiworker`` reads the cluster from ``$TF_CONFIG``, the standard every launcher sets (the
Kubernetes TF operator / Kubeflow Training Operator, Vertex AI, or a hand-written variable)::

    {"cluster": {"worker": ["host0:12345", "host1:12345"]}, "task": {"type": "worker", "index": 0}}

Each worker reads its slice of every global batch (`AutoShardPolicy.DATA` after tf.distribute
rebatches the batch of ``batch_size`` rows by worker), so a step sees the same ``batch_size``
ratings as one process does; gradients are summed across workers with collective all-reduce
(IndexedSlices for the sparse embedding rows). ``keras.callbacks.BackupAndRestore`` keeps each
task's training state in its own folder of the checkpoint directory at the end of every epoch:
a job whose worker was lost is started again with the same command and resumes from the last
finished epoch. Only the chief (task ``chief``, else worker 0) writes the model version.

Reading ``$TF_CONFIG`` (`cluster_from_environ`) is plain Python; `make_distribution` imports
TensorFlow and must run before any other TensorFlow op of the process.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from catalog import PosterecError

STRATEGIES = ("default", "mirrored", "multiworker")
ENV = "TF_CONFIG"
TASK_TYPES = ("chief", "worker")  # the types that train (an "evaluator" or "ps" task is not supported)


class DistributeError(PosterecError):
    """A missing or malformed cluster description, or a strategy that cannot start."""


@dataclass(frozen=True)
class Cluster:
    """The cluster ``$TF_CONFIG`` describes, and which task this process is."""
    chief: tuple[str, ...]
    workers: tuple[str, ...]
    task_type: str
    task_index: int

    @property
    def n_workers(self) -> int:
        """Training tasks: the chief (if any) and the workers."""
        return len(self.chief) + len(self.workers)

    @property
    def is_chief(self) -> bool:
        """The task that writes the model version: ``chief``, or worker 0 when there is no chief."""
        if self.chief:
            return self.task_type == "chief"
        return self.task_type == "worker" and self.task_index == 0

    @property
    def task(self) -> str:
        return f"{self.task_type}-{self.task_index}"


def parse_cluster(text: str | None) -> Cluster:
    """A `Cluster` from the text of ``$TF_CONFIG``; `DistributeError` (one line) naming what is wrong."""
    example = ('e.g. TF_CONFIG=\'{"cluster": {"worker": ["host0:12345", "host1:12345"]}, '
               '"task": {"type": "worker", "index": 0}}\'')
    if text is None or not text.strip():
        raise DistributeError(f"--strategy multiworker needs ${ENV}, the cluster description every worker is "
                              f"started with, but it is not set; {example}")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DistributeError(f"${ENV} is not JSON ({exc.msg} at character {exc.pos}); {example}") from None
    if not isinstance(data, dict) or not isinstance(data.get("cluster"), dict) or not isinstance(data.get("task"), dict):
        raise DistributeError(f"${ENV} must be an object with \"cluster\" and \"task\" objects; {example}")
    cluster, task = data["cluster"], data["task"]
    lists = {}
    for key in TASK_TYPES:
        value = cluster.get(key, [])
        if not isinstance(value, list) or not all(isinstance(a, str) and a.rpartition(":")[2].isdigit()
                                                   for a in value):
            raise DistributeError(f"${ENV}: cluster.{key} must be a list of \"host:port\" strings, got {value!r}")
        lists[key] = tuple(value)
    if len(lists["chief"]) > 1:
        raise DistributeError(f"${ENV}: cluster.chief may hold one address, got {len(lists['chief'])}")
    if not lists["chief"] and not lists["worker"]:
        raise DistributeError(f"${ENV}: cluster lists no \"worker\" (or \"chief\") addresses; {example}")
    other = sorted(set(cluster) - set(TASK_TYPES))
    if other:
        raise DistributeError(f"${ENV}: cluster has {', '.join(other)} tasks; --strategy multiworker trains with "
                              f"\"chief\" and \"worker\" tasks only (no parameter servers or evaluator)")
    kind, index = task.get("type"), task.get("index")
    if kind not in TASK_TYPES:
        raise DistributeError(f"${ENV}: task.type must be \"worker\" or \"chief\", got {kind!r}")
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(lists[kind]):
        raise DistributeError(f"${ENV}: task.index must be a whole number from 0 to {len(lists[kind]) - 1} "
                              f"(cluster.{kind} has {len(lists[kind])} addresses), got {index!r}")
    return Cluster(lists["chief"], lists["worker"], kind, index)


def cluster_from_environ(environ=None) -> Cluster:
    environ = os.environ if environ is None else environ
    return parse_cluster(environ.get(ENV))


@dataclass
class Distribution:
    """The strategy a training run uses, with what the trainer needs of it.

    ``strategy`` is None for ``default`` (today's single-process path, untouched);
    ``backup_dir`` (multiworker only) is this task's `BackupAndRestore` folder.
    """
    name: str
    strategy: object = None
    cluster: Cluster | None = None
    backup_dir: Path | None = None

    @property
    def is_chief(self) -> bool:
        return self.cluster is None or self.cluster.is_chief

    @property
    def n_workers(self) -> int:
        return 1 if self.cluster is None else self.cluster.n_workers

    @property
    def loss(self):
        """The training loss: ``"mse"`` in one process; under a strategy the same mean squared
        error, but from per-rating squared errors. Keras scales a loss by 1 / replicas (the
        gradients are then summed across them) only when it averages per-sample values
        itself; Keras's ``"mse"`` averages the last axis, which for this model's 1-D ratings is
        the whole batch, so under a strategy it came out unscaled and each step moved the
        weights n_workers times too far (measured: twice, with two workers and SGD)."""
        if self.strategy is None:
            return "mse"
        from .layers import squared_error

        return squared_error

    def scope(self):
        """Where the model and its optimizer are created (the strategy's scope, or nothing)."""
        return contextlib.nullcontext() if self.strategy is None else self.strategy.scope()

    def shard(self, dataset):
        """``dataset`` (batched with the global batch size) set to shard by DATA: tf.distribute
        rebatches each global batch into one slice per worker, and each worker keeps its own.
        The pipeline holds no files, so FILE sharding (the AUTO default's first try) cannot apply."""
        if self.cluster is None:
            return dataset
        import tensorflow as tf

        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        return dataset.with_options(options)

    def prepare(self, model) -> None:
        """Make Keras's ``fit`` run ``model`` under the strategy: two workarounds, on this model only.

        Keras 3 (3.15 still; keras-team/keras#20585) does not run ``fit`` under
        `MultiWorkerMirroredStrategy`:

        - under any strategy it builds the loss and metric state from a first batch that it
          draws from a fresh pass over the data (so the real first epoch sees the shuffle's
          second order, not the first) and, under multiworker, reduces across workers with
          ``strategy.reduce`` on the whole (inputs, target) structure, which the strategy
          cannot do ("Attempt to convert a value ({'user': PerReplica...}) ... to a Tensor").
          Only shapes and dtypes matter there: this model builds from its own input and output
          specs instead (no data read, no collective), so the epochs see the same batches, in
          the same order, as one process does;
        - under multiworker it averages each step's logs across workers with
          ``strategy.reduce("MEAN", v, axis=0)``, which fails on the scalar losses and metrics
          ("Invalid reduction dimension 0 for input with 0 dimensions"). This model's steps
          return them as 1-element vectors, so the mean over axis 0 is the mean over the
          workers, a scalar as before.

        The epoch's logs (what ``history``, early stopping and the checkpoints see) are read
        from the metrics' state, summed across workers: the whole data's RMSE, as with one
        process. Drop both once Keras fixes the issue."""
        if self.strategy is None:
            return
        import keras
        from keras import ops, tree

        strategy = self.strategy
        specs = (model.input, keras.KerasTensor(model.output.shape, model.output.dtype))

        def maybe_symbolic_build(iterator=None, data_batch=None):
            with strategy.scope():
                model._symbolic_build(data_batch=specs)

        model._maybe_symbolic_build = maybe_symbolic_build
        if self.cluster is not None:
            def vector_logs(step):
                return lambda data: tree.map_structure(lambda v: ops.reshape(v, (1,)), step(data))

            model.train_step = vector_logs(model.train_step)
            model.test_step = vector_logs(model.test_step)

    def barrier(self) -> None:
        """Wait until every worker gets here (one tiny all-reduce): the workers finish together,
        after the chief has written the version, so a launcher sees the job end as one."""
        if self.cluster is None:
            return
        import tensorflow as tf

        strategy = self.strategy

        @tf.function
        def every_worker():
            return strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(lambda: tf.constant(1.0)), axis=None)

        every_worker()

    def callbacks(self) -> list:
        """`BackupAndRestore` into this task's own folder (multiworker), so that a run started again
        after a lost worker resumes from the last finished epoch; the folder is removed at the end."""
        if self.backup_dir is None:
            return []
        import keras

        return [keras.callbacks.BackupAndRestore(str(self.backup_dir))]


def checkpoint_root(home, run: dict) -> Path:
    """The default checkpoint directory of a run: ``<home>/checkpoints/train-<hash of what it trains>``;
    a different dataset, split, seed or config gets another folder, so no run restores another's state."""
    key = hashlib.sha256(json.dumps(run, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return Path(home) / "checkpoints" / f"train-{key}"


def make_distribution(name: str = "default", checkpoint_dir=None) -> Distribution:
    """The `Distribution` for ``--strategy name``. Builds the strategy now, so call it before any
    other TensorFlow op (collective ops are configured at the start of the TensorFlow runtime)."""
    if name not in STRATEGIES:
        raise DistributeError(f"unknown strategy {name!r}; use one of {', '.join(STRATEGIES)}")
    if name == "default":
        return Distribution(name)
    cluster = cluster_from_environ() if name == "multiworker" else None
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    if name == "mirrored":
        return Distribution(name, tf.distribute.MirroredStrategy())
    try:
        strategy = tf.distribute.MultiWorkerMirroredStrategy(
            cluster_resolver=tf.distribute.cluster_resolver.TFConfigClusterResolver())
    except (RuntimeError, ValueError) as exc:
        raise DistributeError(f"--strategy multiworker could not start ({' '.join(str(exc).split())}); build it "
                              f"before anything else runs TensorFlow, in a fresh process") from None
    backup = None
    if checkpoint_dir is not None:
        backup = Path(checkpoint_dir) / cluster.task
    return Distribution(name, strategy, cluster, backup)
