"""glr-train and glr-export end to end, on real mnist5k digits."""

import json
import os
import re
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_glr import runs
from keras_glr._src import build
from keras_glr_apps import export as export_app
from keras_glr_apps import train as train_app

FAST = [
    "--epochs",
    "1",
    "--copies",
    "8",
    "--hidden",
    "8",
    "--batch-size",
    "100",
    "--lr",
    "0.03",
    "--noisy-passes",
    "4",
    "--quiet",
]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    assert train_app.main(FAST + ["--out", str(out), "--run-name", "short"]) == 0
    return out / "short"


def test_one_epoch_leaves_a_complete_run_directory(finished_run):
    for name in (
        "model.keras",
        "run.json",
        "training_log.csv",
        "training_curves.png",
        "saved_model/1/saved_model.pb",
        "checkpoint/model.keras",
    ):
        assert (finished_run / name).exists(), name
    assert any((finished_run / "tensorboard").rglob("*tfevents*"))
    summary = json.loads((finished_run / "run.json").read_text())
    assert summary["status"] == "finished" and summary["seed"] == 0
    assert summary["config"]["hidden"] == [8] and summary["config"]["copies"] == 8
    assert 0.3 < summary["metrics"]["test_accuracy"] <= 1.0
    assert {"tensorflow", "keras", "keras_glr"} <= set(summary["versions"]) and summary["wall_time_seconds"] > 0
    assert summary["saved_model"] == os.path.join("saved_model", "1")


@pytest.mark.slow  # a fresh process (10 s): the default suite stays under 10 minutes on 2 cores
def test_saved_model_serves_in_a_fresh_process_without_keras_glr(finished_run, tmp_path):
    x = np.random.default_rng(0).uniform(size=(16, 196)).astype("float32")
    np.save(tmp_path / "x.npy", x)
    script = (
        "import sys, numpy as np, tensorflow as tf\n"
        f"m = tf.saved_model.load({str(finished_run / 'saved_model' / '1')!r})\n"
        f"x = np.load({str(tmp_path / 'x.npy')!r})\n"
        "p = m.signatures['serving_default'](inputs=x)['output_0'].numpy()\n"
        "q = m.signatures['serve_noisy'](inputs=x)['output_0'].numpy()\n"
        "assert 'keras_glr' not in sys.modules\n"
        "assert np.allclose(p.sum(1), 1, atol=1e-5) and np.allclose(q.sum(1), 1, atol=1e-5)\n"
        f"np.save({str(tmp_path / 'classes.npy')!r}, p.argmax(1))\n"
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    subprocess.run([sys.executable, "-c", script], check=True, env=env, cwd=str(tmp_path))
    model = keras.saving.load_model(finished_run / "model.keras")
    np.testing.assert_array_equal(np.load(tmp_path / "classes.npy"), model.predict(x, verbose=0).argmax(1))


class _InterruptAfter(keras.callbacks.Callback):
    def __init__(self, epochs):
        super().__init__()
        self.epochs = epochs

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epochs:
            raise KeyboardInterrupt


@pytest.mark.slow  # three trainings (28 s): the default suite stays under 10 minutes on 2 cores
def test_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(tmp_path):
    config = dict(hidden=(8,), copies=8, epochs=3, batch_size=100, noisy_passes=2)
    runs.train(runs.RunConfig(run_name="whole", **config), str(tmp_path), verbose=0)
    with pytest.raises(KeyboardInterrupt):
        runs.train(runs.RunConfig(run_name="cut", **config), str(tmp_path), verbose=0, callbacks=[_InterruptAfter(2)])
    assert json.loads((tmp_path / "cut/checkpoint/state.json").read_text())["epochs_done"] == 2
    assert not (tmp_path / "cut/run.json").exists()
    result = runs.train(runs.RunConfig(run_name="cut", **config), str(tmp_path), resume=True, verbose=0)
    assert result.resumed_from_epoch == 2
    # A finished run given more epochs continues as if it had been started with them.
    runs.train(runs.RunConfig(run_name="short", **dict(config, epochs=2)), str(tmp_path), verbose=0)
    longer = runs.train(runs.RunConfig(run_name="short", **config), str(tmp_path), resume=True, verbose=0)
    assert longer.resumed_from_epoch == 2
    assert json.loads((tmp_path / "short/run.json").read_text())["epochs"] == 3
    assert json.loads((tmp_path / "short/config.json").read_text())["epochs"] == 3
    whole = keras.saving.load_model(tmp_path / "whole/model.keras")
    for name in ("cut", "short"):
        other = keras.saving.load_model(tmp_path / name / "model.keras")
        for a, b in zip(whole.weights, other.weights):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7, err_msg=f"{name}: {a.path}")
        assert len((tmp_path / name / "training_log.csv").read_text().strip().splitlines()) == 4


def test_glr_export_writes_numbered_versions_for_tf_serving(finished_run, tmp_path, capsys):
    base = tmp_path / "served"
    assert export_app.main([str(finished_run), "--out", str(base)]) == 0
    printed = capsys.readouterr().out
    assert "serving_default" in printed and "serve_noisy" in printed and (base / "1" / "saved_model.pb").exists()
    assert f"--model_base_path={base}" in printed
    assert export_app.main([str(finished_run / "model.keras"), "--out", str(base)]) == 0  # the next version
    assert export_app.main([str(finished_run), "--out", str(base), "--version", "7"]) == 0
    assert sorted(p.name for p in base.iterdir()) == ["1", "2", "7"]
    before = os.path.getmtime(base / "7" / "saved_model.pb")
    assert export_app.main([str(finished_run), "--out", str(base), "--version", "7"]) == 2
    assert (
        "Version 7 already exists" in capsys.readouterr().err
        and os.path.getmtime(base / "7" / "saved_model.pb") == before
    )
    assert export_app.main([str(finished_run), "--out", str(base), "--version", "7", "--overwrite"]) == 0
    assert sorted(p.name for p in base.iterdir()) == ["1", "2", "7"]
    with pytest.raises(SystemExit):
        export_app.main([str(finished_run), "--version", "0"])
    assert "expected a positive integer" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--dataset", "no_such_data"], "no dataset named 'no_such_data'"),
        (["--dataset", "fashion_mnist", "--data-dir", "{tmp}/empty"], "not prepared.*does not download"),
        (["--validation-fraction", "1.5"], r"Invalid --validation-fraction: 1\.5"),
        (["--sigma", "-1"], r"Invalid --sigma: -1\.0"),
        (["--copies", "1"], "at least two copies.*Received: --copies 1"),
        (
            ["--copies", "5", "--antithetic"],
            "--copies must be even. Received: --copies 5. Use --copies 6, or no --antithetic",
        ),
        (["--resume"], "no run named .* to resume. Start it without --resume"),
        (["--out", "/proc/forbidden"], "Cannot write to /proc/forbidden"),
    ],
)
def test_bad_input_is_a_clear_error_that_leaves_nothing_behind(argv, message, tmp_path, capsys):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    if "--out" not in argv:
        argv += ["--out", str(tmp_path / "runs")]
    assert train_app.main(FAST + argv + ["--run-name", "fix"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("glr-train: error: ") and "Traceback" not in err
    assert re.search(message, err), err
    assert "copies=" not in err and "`" not in err
    assert not os.path.exists(tmp_path / "runs" / "fix")


def test_a_failed_start_does_not_block_the_corrected_command(tmp_path, capsys):
    argv = FAST + ["--out", str(tmp_path), "--run-name", "fix"]
    assert train_app.main(argv + ["--dataset", "no_such_data"]) == 2
    assert train_app.main(argv) == 0
    assert json.loads((tmp_path / "fix" / "run.json").read_text())["status"] == "finished"


def test_argument_errors_come_from_argparse_with_the_flag(capsys):
    with pytest.raises(SystemExit) as stopped:
        train_app.main(["--hidden", "20,x"])
    assert stopped.value.code == 2
    assert "argument --hidden: Invalid hidden layer widths: '20,x'" in capsys.readouterr().err


def test_existing_run_is_never_overwritten_silently(finished_run, capsys):
    before = (finished_run / "run.json").read_text()
    model_time = os.path.getmtime(finished_run / "model.keras")
    argv = FAST + ["--out", str(finished_run.parent), "--run-name", "short"]
    assert train_app.main(argv) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "--resume" in err and "--overwrite" in err
    assert (finished_run / "run.json").read_text() == before
    assert os.path.getmtime(finished_run / "model.keras") == model_time
    assert train_app.main(argv + ["--resume"]) == 0  # finished: nothing to do, nothing changed
    assert (finished_run / "run.json").read_text() == before
    assert train_app.main(argv + ["--resume", "--copies", "10"]) == 2
    assert "configuration differs in ['copies']" in capsys.readouterr().err
    assert train_app.main(argv + ["--resume", "--epochs", "0"]) == 2
    assert (finished_run / "run.json").read_text() == before


def test_arch_cnn_takes_its_own_defaults_and_explicit_flags_win():
    from keras_glr._src.run_config import ARCH_DEFAULTS
    from keras_glr_apps import train as train_app

    parse = lambda argv: train_app.config_from_args(train_app.build_parser().parse_args(argv))  # noqa: E731
    mlp, cnn = parse([]), parse(["--arch", "cnn"])
    assert (mlp.activation, mlp.sigma, mlp.antithetic, mlp.injection, mlp.schedule) == (
        "step",
        1.0,
        False,
        "all",
        "constant",
    )
    assert {name: getattr(cnn, name) for name in ARCH_DEFAULTS["cnn"]} == ARCH_DEFAULTS["cnn"]
    mine = parse(["--arch", "cnn", "--no-antithetic", "--sigma", "0.2", "--activation", "step", "--injection", "all"])
    assert (mine.antithetic, mine.sigma, mine.activation, mine.injection, mine.schedule) == (
        False,
        0.2,
        "step",
        "all",
        "cosine",
    )
    assert parse(["--antithetic"]).antithetic is True


def test_the_copy_split_flag_reaches_the_compiled_model():
    from keras_glr import data
    from keras_glr_apps import train as train_app

    args = ["--arch", "cnn", "--copies", "54", "--copy-split", "1,1,4"]
    config = train_app.config_from_args(train_app.build_parser().parse_args(args))
    config.validate()
    splits = data.load("mnist5k", batch_size=32, image_size=14, seed=0)
    model = build.build_model(config, splits.info, splits.steps_per_epoch)
    assert (model.glr_config.copies, model.glr_config.copies_per_layer) == (54, (10, 10, 34))


def test_the_sampling_flag_reaches_the_compiled_model():
    from keras_glr import data
    from keras_glr_apps import train as train_app

    config = train_app.config_from_args(
        train_app.build_parser().parse_args(["--sampling", "sobol", "--baseline", "none"])
    )
    config.validate()
    splits = data.load("mnist5k", batch_size=32, image_size=14, flatten=True, seed=0)
    model = build.build_model(config, splits.info, splits.steps_per_epoch)
    assert (model.glr_config.sampling, model.glr_config.baseline) == ("sobol", "none")


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--copies-per-chunk", "640"], {"copies_per_chunk": 640}),
        (
            ["--estimator", "weight-perturbation", "--perturbation-scale", "0.05"],
            {"estimator": "weight-perturbation", "perturbation_scale": 0.05},
        ),
    ],
)
def test_new_estimator_flags_reach_the_compiled_model(argv, expected):
    from keras_glr import data

    config = train_app.config_from_args(train_app.build_parser().parse_args(argv))
    config.validate()
    splits = data.load("mnist5k", batch_size=32, image_size=14, flatten=True, seed=0)
    model = build.build_model(config, splits.info, splits.steps_per_epoch)
    assert {name: getattr(model.glr_config, name) for name in expected} == expected


@pytest.mark.parametrize("arch", ["cnn", "resnet"])
def test_every_cnn_takes_its_filters_and_28_pixel_images(arch):
    from keras_glr import data
    from keras_glr_apps import train as train_app

    config = train_app.config_from_args(
        train_app.build_parser().parse_args(["--arch", arch, "--image-size", "28", "--filters", "4,6"])
    )
    config.validate()
    splits = data.load("mnist5k", batch_size=16, image_size=28, seed=0)
    model = build.build_model(config, splits.info, splits.steps_per_epoch)
    assert model.inputs[0].shape[1:] == (28, 28, 1) and config.name() == f"mnist5k_{arch}_relu_ce_glr_seed0"
    conv_widths = [w.shape[-1] for w in model.trainable_weights if len(w.shape) == 4]
    assert conv_widths[0] == 4 and conv_widths[-1] == 6
    x, y = next(iter(splits.train))
    model.fit(x[:8], y[:8], epochs=1, verbose=0)  # a GLR step runs at 28 x 28


@pytest.mark.slow  # three trainings (17 s): the default suite stays under 10 minutes on 2 cores
def test_init_from_starts_from_a_trained_run_and_records_where(tmp_path, capsys):
    """A BP run's weights start a GLR run with other units; the run says where it started and how well that did."""
    out = str(tmp_path)
    base = [
        "--epochs",
        "1",
        "--copies",
        "8",
        "--hidden",
        "8",
        "--batch-size",
        "100",
        "--noisy-passes",
        "2",
        "--quiet",
        "--out",
        out,
    ]
    assert (
        train_app.main(
            base + ["--run-name", "bp_sigmoid", "--estimator", "bp", "--activation", "sigmoid", "--epochs", "3"]
        )
        == 0
    )
    started = runs.read_json(os.path.join(out, "bp_sigmoid", "run.json"))["metrics"]["test_accuracy"]
    assert (
        train_app.main(
            base
            + [
                "--run-name",
                "tuned",
                "--init-from",
                os.path.join(out, "bp_sigmoid"),
                "--activation",
                "sigmoid",
                "--lr",
                "1e-9",
            ]
        )
        == 0
    )
    summary = runs.read_json(os.path.join(out, "tuned", "run.json"))
    assert summary["init_from"] == os.path.join(out, "bp_sigmoid") and summary["config"]["init_from"]
    assert summary["initial_test_accuracy"] == pytest.approx(started, abs=1e-6)
    assert summary["metrics"]["test_accuracy"] == pytest.approx(
        started, abs=0.01
    )  # a learning rate of 1e-9 leaves it there
    assert (
        train_app.main(base + ["--run-name", "wider", "--init-from", os.path.join(out, "bp_sigmoid"), "--hidden", "9"])
        == 2
    )
    err = capsys.readouterr().err
    assert (
        "Invalid --init-from" in err
        and "Use the --arch, --hidden, --filters and --pool of the run you start from" in err
    )
    assert not os.path.exists(os.path.join(out, "wider"))


@pytest.mark.parametrize(
    "argv, name, noisy",
    [
        pytest.param(
            ["--arch", "rnn"], "mnist5k_rnn_tanh_ce_glr_seed0", 2, marks=pytest.mark.slow
        ),  # 7 s: the suite stays under 10 minutes
        pytest.param(["--arch", "rnn", "--cell", "lstm", "--hidden", "6,5"], None, 3, marks=pytest.mark.slow),  # 9 s
        (["--arch", "snn", "--time-steps", "3", "--encoding", "rate"], "mnist5k_snn_ce_glr_seed0", 2),
        (["--arch", "transformer", "--copies", "10"], "mnist5k_transformer_relu_ce_glr_seed0", 5),  # 2 per layer
        pytest.param(
            ["--arch", "transformer", "--hidden", "8,8", "--heads", "4", "--copies", "16"],
            None,
            8,
            marks=pytest.mark.slow,
        ),
    ],
    ids=["rnn", "stacked_lstm", "snn_rate", "transformer", "transformer_two_blocks"],
)
def test_networks_in_time_take_their_options_and_train_on_images(argv, name, noisy):
    """rnn: rows of the image as time steps; snn: the image encoded over --time-steps steps; transformer: rows as
    tokens."""
    from keras_glr import data
    from keras_glr.layers import noisy_layers

    config = train_app.config_from_args(train_app.build_parser().parse_args(["--copies", "4"] + argv))
    config.validate()
    assert name is None or config.name() == name
    splits = data.load("mnist5k", batch_size=16, image_size=14, seed=0)
    model = build.build_model(config, splits.info, splits.steps_per_epoch)
    assert len(noisy_layers(model)) == noisy and model.inputs[0].shape[1:] == (14, 14, 1)
    x, y = next(iter(splits.train))
    before = [np.asarray(w) for w in model.get_weights()]
    model.fit(x[:8], y[:8], epochs=1, verbose=0)
    assert all(np.any(a != b) for a, b in zip(before, model.get_weights()))


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--cell", "lstm"], "`cell`: 'lstm'. It is an option of the rnn"),
        (["--arch", "rnn", "--time-steps", "4"], "option of the snn"),
        (["--arch", "snn", "--time-steps", "0"], "`time_steps`: 0. Expected a positive integer"),
        (["--heads", "4"], "`heads`: 4. It is an option of the transformer"),
    ],
)
def test_options_of_another_network_in_time_are_refused(argv, message):
    config = train_app.config_from_args(train_app.build_parser().parse_args(argv))
    with pytest.raises(ValueError, match=re.escape(message)):
        config.validate()


@pytest.mark.slow  # three trainings and an evaluation with white-box attacks (about 60 s)
def test_networks_in_time_train_resume_and_are_evaluated(tmp_path):
    """glr-train --arch rnn / snn / transformer leave complete runs; glr-evaluate attacks them (through BPDA where
    units spike) and corrupts inputs."""
    from keras_glr_apps import evaluate as evaluate_app

    out = str(tmp_path)
    for arch in ("rnn", "snn", "transformer"):
        argv = [
            "--arch",
            arch,
            "--epochs",
            "1",
            "--copies",
            "10",
            "--batch-size",
            "100",
            "--quiet",
            "--out",
            out,
            "--run-name",
            arch,
            "--schedule",
            "constant",
        ]  # a cosine schedule fixes its epochs; a constant one lets --resume add one
        assert train_app.main(argv) == 0
        assert (tmp_path / arch / "saved_model" / "1" / "saved_model.pb").exists()
        assert train_app.main(argv[:3] + ["2"] + argv[4:] + ["--resume"]) == 0  # one more epoch, from the checkpoint
        assert runs.read_json(os.path.join(out, arch, "run.json"))["config"]["epochs"] == 2
    assert (
        evaluate_app.main(
            [
                os.path.join(out, "rnn"),
                os.path.join(out, "snn"),
                os.path.join(out, "transformer"),
                "--attacks",
                "fgsm",
                "--eps",
                "0.1",
                "--mode",
                "whitebox",
                "--corruptions",
                "gaussian_noise",
                "--examples",
                "100",
                "--out",
                os.path.join(out, "eval"),
            ]
        )
        == 0
    )
    results = json.loads((tmp_path / "eval" / "results.json").read_text())
    text = json.dumps(results)
    assert "rnn" in text and "snn" in text and "transformer" in text and "gaussian_noise" in text
