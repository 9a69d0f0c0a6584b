"""`posterec train --strategy multiworker`: two worker processes on 127.0.0.1, each with its own
TF_CONFIG, train the planted fixture with MultiWorkerMirroredStrategy.

Every subprocess runs under a timeout, so a hung collective fails the test instead of hanging CI.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from text_model_helpers import TINY

from catalog import ModelStore, fetch_dataset
from text_model.distribute import DistributeError, parse_cluster

REPO = Path(__file__).resolve().parents[1]
RUN_TIMEOUT = 300  # seconds for one two-worker run; measured about 60-120 s on 2 loaded cores
# dropout off: each worker would draw its own dropout masks, so one process and two could not
# see the same network on a step; with it off they see the same batches, in the same order,
# from the same initial weights (see the tolerance below)
CONFIG = {**TINY.to_dict(), "dropout": 0.0, "batch_size": 128}
EPOCHS = 2
# The two-worker test RMSE differs from one process's only by float summation order and by the
# last, partial batch of each epoch (1,579 training ratings = 12 x 128 + 43: tf.distribute gives
# its slices to the workers unevenly and each worker's mean weighs as much). Measured with this
# config: |delta| = 0.00019, 0.00011, 0.00004 for seeds 0, 1, 2, while the seed alone moves the
# one-process RMSE from 0.61 to 0.69. 0.01 is 50x the measured gap and an eighth of that spread.
TOLERANCE = 0.01


# -- $TF_CONFIG -----------------------------------------------------------------------------------
def _tf_config(workers, kind="worker", index=0, chief=()):
    cluster = {"worker": list(workers)}
    if chief:
        cluster["chief"] = list(chief)
    return json.dumps({"cluster": cluster, "task": {"type": kind, "index": index}})


@pytest.mark.parametrize("text, says", [
    (None, "not set"),
    ("", "not set"),
    ("{not json", "not JSON"),
    ("[]", '"cluster" and "task"'),
    (json.dumps({"cluster": {"worker": ["a:1"]}}), '"cluster" and "task"'),
    (json.dumps({"cluster": {"worker": "a:1"}, "task": {"type": "worker", "index": 0}}), "list of \"host:port\""),
    (json.dumps({"cluster": {"worker": ["a"]}, "task": {"type": "worker", "index": 0}}), "list of \"host:port\""),
    (json.dumps({"cluster": {}, "task": {"type": "worker", "index": 0}}), "no \"worker\""),
    (json.dumps({"cluster": {"worker": ["a:1"], "ps": ["b:2"]}, "task": {"type": "worker", "index": 0}}), "ps tasks"),
    (json.dumps({"cluster": {"worker": ["a:1"]}, "task": {"type": "evaluator", "index": 0}}), "task.type"),
    (_tf_config(["a:1", "b:2"], index=2), "from 0 to 1"),
    (_tf_config(["a:1"], index="0"), "task.index"),
])
def test_a_missing_or_malformed_tf_config_is_one_line_naming_it(text, says):
    with pytest.raises(DistributeError) as err:
        parse_cluster(text)
    message = str(err.value)
    assert "TF_CONFIG" in message and says in message and "\n" not in message


def test_the_chief_is_the_chief_task_else_worker_0():
    assert parse_cluster(_tf_config(["a:1", "b:2"], index=0)).is_chief
    assert not parse_cluster(_tf_config(["a:1", "b:2"], index=1)).is_chief
    with_chief = parse_cluster(_tf_config(["a:1"], kind="chief", chief=["c:3"]))
    assert with_chief.is_chief and with_chief.n_workers == 2 and with_chief.task == "chief-0"
    assert not parse_cluster(_tf_config(["a:1"], index=0, chief=["c:3"])).is_chief


def test_the_command_refuses_multiworker_without_tf_config(tmp_path, monkeypatch, capsys):
    from posterec.cli import main

    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert main(["--home", str(tmp_path), "train", "--dataset", "ml-100k", "--strategy", "multiworker"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "$TF_CONFIG" in err[0] and "not set" in err[0]
    monkeypatch.setenv("TF_CONFIG", "{oops")
    assert main(["--home", str(tmp_path), "train", "--dataset", "ml-100k", "--strategy", "multiworker"]) == 1
    assert "$TF_CONFIG is not JSON" in capsys.readouterr().err
    assert not (tmp_path / "models").exists()


def test_the_cli_strategies_are_the_library_ones():
    import argparse

    from posterec.commands.model import register
    from text_model.distribute import STRATEGIES

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    action = next(a for a in parser._subparsers._group_actions[0].choices["train"]._actions
                  if "--strategy" in a.option_strings)
    assert tuple(action.choices) == STRATEGIES and action.default == "default"


# -- two processes ----------------------------------------------------------------------------------
def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _env(tf_config):
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    env.update(PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "tests")]), TF_CONFIG=tf_config,
               TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="-1", PYTHONUNBUFFERED="1")
    return env


def _start(argv, logs: Path, n=2):
    """``n`` workers running ``argv`` (a command line after ``python``), each with its TF_CONFIG."""
    workers = [f"127.0.0.1:{p}" for p in _free_ports(n)]
    procs = []
    for i in range(n):
        with open(logs / f"worker-{i}.log", "w") as out:
            procs.append(subprocess.Popen([sys.executable, *argv], env=_env(_tf_config(workers, index=i)), cwd=REPO,
                                          stdout=out, stderr=subprocess.STDOUT, start_new_session=True))
    return procs


def _kill(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # its own session: the worker and nothing else
    except ProcessLookupError:
        pass
    proc.wait()


def _finish(procs, logs: Path, timeout=RUN_TIMEOUT):
    """Wait for every worker; kill them all and fail, with their logs, past ``timeout``."""
    deadline = time.monotonic() + timeout
    try:
        for p in procs:
            p.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        for p in procs:
            _kill(p)
        pytest.fail(f"the workers did not finish in {timeout} s (a hung collective?)\n{_logs(logs)}")
    return [p.returncode for p in procs]


def _logs(logs: Path) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(logs.glob("worker-*.log")))


def _train_argv(home, config, epochs=EPOCHS):
    return ["-m", "posterec", "--home", str(home), "train", "--dataset", "ml-100k", "--split", "random-80-20",
            "--config", str(config), "--epochs", str(epochs), "--progress", "2", "--strategy", "multiworker"]


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """A home holding the planted fixture, and the config file the runs train with."""
    from movielens_fixture import write_ml100k

    root = tmp_path_factory.mktemp("multiworker")
    fetch_dataset(root / "home", "ml-100k", source=write_ml100k(root / "src"))
    config = root / "tiny.json"
    config.write_text(json.dumps(CONFIG))
    return root, config


def _copy_home(planted, name):
    import shutil

    root, _ = planted
    home = root / name
    shutil.copytree(root / "home", home)
    return home


@pytest.fixture(scope="module")
def one_process(planted):
    """The test RMSE of the same training in one process (the default strategy)."""
    from posterec.pipeline import train

    home = _copy_home(planted, "one")
    result = train(home, "ml-100k", split="random-80-20", seed=0, config=str(planted[1]), epochs=EPOCHS,
                   verbose=0, announce=lambda *_: None)
    assert "strategy" not in result.version.stage("train")  # the default path records nothing new
    return result.metrics["rmse"]


@pytest.mark.slow
def test_two_workers_train_like_one_process_and_only_the_chief_writes(planted, one_process, tmp_path):
    home = _copy_home(planted, "two")
    procs = _start(_train_argv(home, planted[1]), tmp_path)
    codes = _finish(procs, tmp_path)
    assert codes == [0, 0], _logs(tmp_path)
    store = ModelStore(home)
    assert len(store.versions()) == 1, store.versions()  # the chief's, and only it
    assert not list(store.root.glob(".staging-*"))
    version = store.open_current()
    info = version.stage("train")
    assert info["strategy"] == {"name": "multiworker", "workers": 2}
    assert info["epochs_run"] == EPOCHS
    chief, other = (tmp_path / "worker-0.log").read_text(), (tmp_path / "worker-1.log").read_text()
    assert f"model version {version.name}" in chief and "as worker-0 of 2 workers" in chief
    assert "worker-1: trained; the chief writes the model version" in other and version.name not in other
    rmse = info["metrics"]["rmse"]
    print(f"test RMSE: two workers {rmse:.5f}, one process {one_process:.5f}, delta {rmse - one_process:+.5f}")
    assert abs(rmse - one_process) < TOLERANCE
    assert version.has("ranking")  # the chief fit the ranking model after the rating model
    assert info["ranking"]["name"] == TINY.ranking_model  # what one process fits too
    assert not (home / "checkpoints").exists() or not any((home / "checkpoints").iterdir())


def _backed_up(home: Path, epoch: int) -> bool:
    """Has every worker backed up the state after ``epoch`` epochs?"""
    found = list(home.glob("checkpoints/train-*/worker-*/training_metadata.json"))
    try:
        return len(found) == 2 and all(json.loads(p.read_text())["epoch"] >= epoch for p in found)
    except (OSError, ValueError, KeyError):
        return False  # being written


@pytest.mark.slow
def test_a_job_that_lost_a_worker_resumes_from_the_backups(planted, one_process, tmp_path):
    home = _copy_home(planted, "resume")
    epochs = EPOCHS
    first = tmp_path / "first"
    first.mkdir()
    procs = _start(_train_argv(home, planted[1], epochs), first)
    deadline = time.monotonic() + RUN_TIMEOUT
    while not _backed_up(home, 1):
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
            for p in procs:
                _kill(p)
            pytest.fail(f"no backup of the first epoch (or a worker ended)\n{_logs(first)}")
        time.sleep(0.2)
    _kill(procs[1])  # a machine is lost; the launcher then restarts the whole job
    _kill(procs[0])
    store = ModelStore(home)
    assert store.versions() == []
    second = tmp_path / "second"
    second.mkdir()
    codes = _finish(_start(_train_argv(home, planted[1], epochs), second), second)
    assert codes == [0, 0], _logs(second)
    assert len(store.versions()) == 1
    info = store.open_current().stage("train")
    # the second run started after the backed-up epochs: it ran only the rest
    assert 1 <= info["epochs_run"] < epochs
    # not the uninterrupted run's numbers (the resumed epochs reshuffle from the start of the
    # shuffle's sequence), but as good: within the spread a different seed gives
    assert abs(info["metrics"]["rmse"] - one_process) < 0.08
    assert not any((home / "checkpoints").glob("train-*/worker-*"))  # removed once the run ended


# -- one step, by hand -------------------------------------------------------------------------------
STEP = """
import json, os, sys
from text_model.distribute import make_distribution
dist = make_distribution(sys.argv[1])
import keras, numpy as np, tensorflow as tf
x = np.arange(8, dtype=np.float32).reshape(8, 1)
y = (3 * x[:, 0] + 1).astype(np.float32)
data = dist.shard(tf.data.Dataset.from_tensor_slices(({"x": x}, y)).batch(8))
with dist.scope():
    inp = keras.Input((1,), name="x")
    dense = keras.layers.Dense(1, kernel_initializer="ones", kernel_regularizer=keras.regularizers.L2(0.5))
    model = keras.Model({"x": inp}, keras.layers.Reshape(())(dense(inp)))
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss=dist.loss)
    model.optimizer.build(model.trainable_variables)
dist.prepare(model)
model.fit(data, epochs=1, verbose=0)
print("WEIGHTS", json.dumps([float(np.ravel(w)[0]) for w in model.get_weights()]))
"""


@pytest.mark.slow
def test_one_sgd_step_on_two_workers_moves_the_weights_as_one_process(tmp_path):
    """y = 3x + 1 on x = 0..7, from w = 1, b = 0, SGD at 0.01 with L2 0.5 on w, one batch of 8:
    d(mse)/dw = mean(2 (x - 3x - 1) x) = -77, d(mse)/db = mean(2 (-2x - 1)) = -16, d(L2)/dw = 1,
    so w = 1 + 0.01 * 76 = 1.76 and b = 0.16. Each worker holds half the batch; the gradients
    of their halves summed must be the whole batch's (Keras's "mse" on 1-D targets made it twice)."""
    procs = _start(["-c", STEP, "multiworker"], tmp_path)
    assert _finish(procs, tmp_path, timeout=120) == [0, 0], _logs(tmp_path)
    for i in range(2):
        line = next(s for s in (tmp_path / f"worker-{i}.log").read_text().splitlines() if s.startswith("WEIGHTS"))
        w, b = json.loads(line.split(" ", 1)[1])
        assert w == pytest.approx(1.76, abs=1e-5) and b == pytest.approx(0.16, abs=1e-5)
