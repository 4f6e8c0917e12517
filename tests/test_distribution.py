"""Several workers: TF_CONFIG checks, and two glr-train workers on 127.0.0.1 against one process."""

import json
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_glr._src import distribution

OPTIONS = [
    "--epochs",
    "3",
    "--copies",
    "8",
    "--hidden",
    "8",
    "--batch-size",
    "20",
    "--lr",
    "0.03",
    "--noisy-passes",
    "2",
    "--quiet",
    "--run-name",
    "run",
]


@pytest.mark.parametrize(
    "value, message",
    [
        (None, "needs the TF_CONFIG environment variable"),
        ("{cluster", "not valid JSON"),
        ('{"task": {"type": "worker", "index": 0}}', "no cluster of addresses"),
        (
            '{"cluster": {"worker": ["a:1"]}, "task": {"type": "ps", "index": 0}}',
            "task type must be one of \\['worker'\\]",
        ),
        (
            '{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 2}}',
            "integer from 0 to 1; received 2",
        ),
    ],
)
def test_a_bad_tf_config_is_a_clear_error(value, message):
    environ = {} if value is None else {"TF_CONFIG": value}
    with pytest.raises(ValueError, match=message):
        distribution.read_tf_config(environ)


def test_a_local_cluster_names_distinct_free_ports():
    configs = [distribution.read_tf_config({"TF_CONFIG": c}) for c in distribution.local_cluster(3)]
    addresses = configs[0]["cluster"]["worker"]
    assert len(set(addresses)) == 3 and all(a.startswith("127.0.0.1:") for a in addresses)
    assert [c["task"]["index"] for c in configs] == [0, 1, 2] and all(
        c["cluster"] == configs[0]["cluster"] for c in configs
    )


def test_a_good_tf_config_and_the_single_process_chief():
    text = '{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 1}}'
    assert distribution.read_tf_config({"TF_CONFIG": text})["task"]["index"] == 1
    assert distribution.is_chief(tf.distribute.get_strategy())
    with pytest.raises(ValueError, match="Invalid `strategy`"):
        distribution.make_strategy("ring")


def _start_workers(out, temp, extra=()):
    workers = []
    for config in distribution.local_cluster(2):
        env = {**os.environ, "TMPDIR": str(temp), "TF_CONFIG": config}
        command = [
            sys.executable,
            "-m",
            "keras_glr_apps.train",
            "--strategy",
            "multi-worker",
            "--out",
            str(out),
            *OPTIONS,
            *extra,
        ]
        workers.append(subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    return workers


def _finish(workers, seconds=240):
    try:
        outputs = [worker.communicate(timeout=seconds)[0] for worker in workers]
    finally:
        for worker in workers:
            worker.kill()
    for worker, output in zip(workers, outputs):
        assert worker.returncode == 0, output[-3000:]


@pytest.mark.slow  # two worker processes (about 50 s); keeps the default suite well under 10 minutes on 2 cores
def test_two_workers_train_what_one_process_trains_and_resume_after_a_stop(tmp_path):
    """Global batch 20 split 10 + 10 over two worker processes: the final weights equal one
    process's, also when both workers are stopped after the first epoch and restarted with --resume."""
    temp = tmp_path / "temp"
    temp.mkdir()
    single = subprocess.run(
        [sys.executable, "-m", "keras_glr_apps.train", "--out", str(tmp_path / "single"), *OPTIONS],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert single.returncode == 0, single.stdout[-2000:] + single.stderr[-2000:]

    workers = _start_workers(tmp_path / "multi", temp)
    state = tmp_path / "multi" / "run" / "checkpoint" / "state.json"
    deadline = time.time() + 240
    try:
        while not state.exists():
            assert time.time() < deadline and all(w.poll() is None for w in workers), (
                "the workers ended before an epoch"
            )
            time.sleep(0.02)
        workers[1].send_signal(signal.SIGKILL)  # a worker is lost...
        workers[0].send_signal(signal.SIGKILL)  # ...and the job is stopped
    finally:
        for worker in workers:
            worker.wait(timeout=60)
    assert json.loads(state.read_text())["epochs_done"] in (1, 2)

    left_by_the_stop = {name for name in os.listdir(temp) if name.startswith("keras_glr_worker_")}
    _finish(_start_workers(tmp_path / "multi", temp, ["--resume"]))
    summary = json.loads((tmp_path / "multi" / "run" / "run.json").read_text())
    assert summary["status"] == "finished" and summary["resumed_from_epoch"] in (1, 2)
    assert sorted(os.listdir(tmp_path / "multi")) == ["run"]  # the chief alone wrote
    assert {
        name for name in os.listdir(temp) if name.startswith("keras_glr_worker_")
    } == left_by_the_stop  # the other worker cleans up
    one = keras.saving.load_model(tmp_path / "single" / "run" / "model.keras")
    two = keras.saving.load_model(tmp_path / "multi" / "run" / "model.keras")
    for a, b in zip(one.weights, two.weights):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6, err_msg=a.path)
