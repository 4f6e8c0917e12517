"""The command-line programs as a user meets them: help, logs, Ctrl-C, packaging."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
APPS = ("train", "export", "evaluate", "reproduce")


def _environment():
    return {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}


@pytest.mark.parametrize("app", APPS)
def test_help_answers_without_tensorflow_and_shows_each_default_once(app, tmp_path):
    script = (
        "import json, sys\n"
        f"from keras_glr_apps import {app} as app\n"
        "text = app.build_parser().format_help()\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras'))\n"
        "print(json.dumps({'help': text, 'loaded': loaded}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, env=_environment(), timeout=60
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["loaded"] == []
    options = re.split(r"\n  (?=-)", result["help"])
    for option in options[1:]:
        assert option.count("(default:") <= 1, option
        assert "(default: None)" not in option and "(default: False)" not in option, option
    if app == "train":
        for default in (
            "(default: mnist5k)",
            "(default: 20; with --arch rnn: 64; with --arch snn: 128; with --arch transformer: 32)",
            "(default: 100; with --arch cnn: 232; with --arch resnet: 320; with --arch rnn: 300; with --arch snn: 64)",
            "(default: even; with --arch cnn: 1,2,4; with --arch resnet: 1,1,1,1,1,1,1,3)",
            "(default: 32; with --arch resnet: 64)",
            "(default: output; with --arch cnn: pre-activation)",
            "(default: 0.01; with --arch rnn: 0.003)",
            "(default: saved_models)",
        ):
            assert default in " ".join(result["help"].split()), default


def test_tensorflow_start_up_logs_are_silenced(tmp_path):
    command = [sys.executable, "-m", "keras_glr_apps.train", "--copies", "1", "--out", str(tmp_path)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, env=_environment(), timeout=120)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "glr-train: error: The leave-one-out baseline needs at least two copies per example (copies >= 2). "
        "Received: --copies 1. Increase --copies, or pass --baseline 'none'."
    ]


def _wait_for(condition, process, seconds=120):
    deadline = time.time() + seconds
    while not condition():
        assert process.poll() is None and time.time() < deadline, "the run ended before the moment to interrupt it"
        time.sleep(0.05)


@pytest.mark.parametrize(
    "moment, said, kept",
    [
        ("loading", "Nothing was written.", []),
        ("tracing", "No epoch had finished, so nothing was kept.", []),
        pytest.param(
            "training",
            "Finished epochs are saved: add --resume to the same command to continue.",
            ["run"],
            marks=pytest.mark.slow,
        ),  # 14 s: the default suite stays under 10 minutes on 2 cores
    ],
)
def test_ctrl_c_at_any_moment_prints_one_line_that_says_what_was_kept(moment, said, kept, tmp_path):
    out, run_dir = tmp_path / "runs", tmp_path / "runs" / "run"
    command = [
        sys.executable,
        "-m",
        "keras_glr_apps.train",
        "--out",
        str(out),
        "--run-name",
        "run",
        "--epochs",
        "200",
        "--copies",
        "8",
        "--hidden",
        "8",
        "--quiet",
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=_environment()
    )
    try:
        if moment == "loading":
            time.sleep(0.5)
        elif moment == "tracing":
            _wait_for(lambda: (run_dir / "config.json").exists(), process)
        else:
            _wait_for(lambda: (run_dir / "checkpoint" / "state.json").exists(), process)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130
    assert [line for line in err.splitlines() if line.strip()] == [f"glr-train: interrupted. {said}"]
    assert sorted(os.listdir(out)) == kept if out.exists() else kept == []  # no lock file, no empty run folder


def test_the_programs_install_under_the_project_name(tmp_path):
    script = (
        "import importlib.util, json\n"
        "print(json.dumps([importlib.util.find_spec(n) is not None for n in ('apps', 'keras_glr_apps', "
        "'keras_glr_apps.train')]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, env=_environment(), timeout=60
    )
    assert json.loads(done.stdout) == [False, True, True]
    tomllib = pytest.importorskip("tomllib")
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        project = tomllib.load(f)
    listed = set(project["tool"]["setuptools"]["packages"])
    folders = {
        os.path.relpath(folder, ROOT).replace(os.sep, ".")
        for folder, _, files in os.walk(os.path.join(ROOT, "keras_glr"))
        if "__init__.py" in files
    }
    assert listed == folders | {"keras_glr_apps"}
    assert all(script.startswith("keras_glr_apps.") for script in project["project"]["scripts"].values())
