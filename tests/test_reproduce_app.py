"""glr-reproduce --quick on a small subset: report, resume, cache, failures, bad input."""

import json
import os
import re

import keras
import pytest

from keras_glr import runs
from keras_glr._src import reproduction
from keras_glr_apps import reproduce as reproduce_app

SMALL = [
    "--quick",
    "--rows",
    "bp_sigmoid,glr_threshold",
    "--epochs",
    "1",
    "--copies",
    "8",
    "--examples",
    "60",
    "--whitebox-examples",
    "4",
    "--certify-examples",
    "20",
    "--certify-samples",
    "200",
]


def _settings():
    return reproduction.Settings(
        quick=True,
        rows=("bp_sigmoid", "glr_threshold"),
        epochs=1,
        copies=8,
        examples=60,
        whitebox_examples=4,
        certify_examples=20,
        certify_samples=200,
    )


class _Interrupt(keras.callbacks.Callback):
    """Stops training like Ctrl-C, after the first epoch's checkpoint is written."""

    def on_epoch_end(self, epoch, logs=None):
        raise KeyboardInterrupt


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("repro") / "out"
    # An interrupted training of one row, left behind as Ctrl-C would leave it.
    config = next(c for row, twin, c in reproduction.row_configs(_settings()) if c.run_name == "glr_threshold_seed0")
    config.epochs = 2
    with pytest.raises(KeyboardInterrupt):
        runs.train(config, root=str(out / "runs"), verbose=0, callbacks=[_Interrupt()])
    argv = SMALL[:]
    argv[argv.index("--epochs") + 1] = "2"
    assert reproduce_app.main(argv + ["--out", str(out)]) == 0
    return out, argv


@pytest.mark.slow  # a whole glr-reproduce run (90 s): the default suite stays under 10 minutes on 2 cores
def test_report_has_the_papers_numbers_beside_numbers_from_this_run(finished):
    out, _ = finished
    report = (out / "REPORT.md").read_text()
    results = json.loads((out / "evaluation" / "results.json").read_text())
    for label, title, paper_clean in (
        ("glr_threshold_seed0", "GLR threshold", "0.93"),
        ("bp_sigmoid_seed0", "BP sigmoid", "0.96"),
    ):
        row = next(line for line in report.splitlines() if line.startswith(f"| {title} | 1 |"))
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[2] == f"{results['clean'][label]:.3f}" and cells[3] == paper_clean
        assert cells[4] == f"{results['attacks']['lbfgs']['min'][label]:.3f}"
        assert cells[6] == f"{results['attacks']['fgsm']['0.1'][label]:.3f}"
    assert "| GLR threshold | bp-ste |" in report  # the twin comparison
    assert "noisy (32 passes)" in report
    assert "None: every run trained" in report
    assert set(results["models"]) == {
        "bp_sigmoid_seed0",
        "glr_threshold_seed0",
        "glr_threshold_twin_seed0",
        "glr_threshold_seed0_noisy",
        "glr_threshold_twin_seed0_noisy",
    }
    assert results["examples"] == 60 and "spsa" in results["attacks"] and "square" in results["attacks"]
    # Certificates for every row and twin (not twice for noisy prediction: the smoothed classifier is the same).
    assert set(results["certified"]) == {"bp_sigmoid_seed0", "glr_threshold_seed0", "glr_threshold_twin_seed0"}
    assert all(c["norm"] == "l2" and c["examples"] == 20 and c["samples"] == 200 for c in results["certified"].values())
    assert "## Certified robustness (randomized smoothing)" in report and "| GLR threshold, BP twin | l2 |" in report
    certified = next(line for line in report.splitlines() if line.startswith("| GLR threshold | l2 |"))
    assert f"{results['certified']['glr_threshold_seed0']['accuracy'][0]:.3f}" in certified
    # The checklist for every model and prediction, and words that follow its flags.
    assert set(results["checklist"]) == set(results["models"])
    assert "## Evaluation checklist (Carlini et al. 2019)" in report and "| GLR threshold | noisy |" in report
    flagged = any(c["flags"] for c in results["checklist"].values())
    assert ("Flagged:" in report) == flagged and ("No model failed a check" in report) == (not flagged)
    assert "Square 0.1" in report
    for name in (
        "results.csv",
        "results.md",
        "accuracy_vs_eps.png",
        "adversarial_examples.png",
        "corruptions.png",
        "certified_accuracy.png",
    ):
        assert (out / "evaluation" / name).stat().st_size > 0
    assert (out / "samples" / "samples.npz").exists()


@pytest.mark.slow  # a whole glr-reproduce run (90 s): the default suite stays under 10 minutes on 2 cores
def test_an_interrupted_training_is_resumed_not_restarted(finished):
    out, _ = finished
    summary = runs.read_json(out / "runs" / "glr_threshold_seed0" / "run.json")
    assert summary["status"] == "finished" and summary["resumed_from_epoch"] == 1 and summary["epochs"] == 2


@pytest.mark.slow  # a whole glr-reproduce run (90 s): the default suite stays under 10 minutes on 2 cores
def test_a_rerun_recomputes_nothing(finished):
    out, argv = finished
    watched = [
        out / "runs" / "glr_threshold_seed0" / "model.keras",
        out / "evaluations" / "glr_threshold_seed0.json",
        out / "evaluations" / "glr_threshold_seed0_noisy.json",
        out / "samples" / "samples.npz",
    ]
    before = {p: p.stat().st_mtime_ns for p in watched}
    report_before = (out / "REPORT.md").read_text()
    assert reproduce_app.main(argv + ["--out", str(out)]) == 0
    assert {p: p.stat().st_mtime_ns for p in watched} == before
    strip = lambda text: re.sub(r"in all|\d+\.\d minutes", "", text)  # noqa: E731
    assert strip((out / "REPORT.md").read_text()).split("## Table I")[1] == strip(report_before).split("## Table I")[1]


@pytest.mark.slow  # keeps the default suite under 10 minutes on 2 cores
def test_a_failed_row_is_reported_not_dropped(tmp_path):
    out = tmp_path / "out"
    (out / "runs").mkdir(parents=True)
    (out / "runs" / "glr_threshold_twin_seed0").write_text("not a run directory")
    assert reproduce_app.main(SMALL + ["--rows", "glr_threshold", "--out", str(out)]) == 0
    report = (out / "REPORT.md").read_text()
    failures = report.split("## Failed rows")[1]
    assert "glr_threshold_twin_seed0: training failed" in failures and "not a directory" in failures
    assert "| GLR threshold | bp-ste |" in report and "/ failed" in report
    assert re.search(r"\| GLR threshold \| 1 \| 0\.\d{3} \|", report)  # the GLR row itself is there


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--dataset", "no_such_dataset"], "no_such_dataset"),
        (["--rows", "glr_sigmoid,glr_tanh"], "Unknown rows"),
        (["--seeds", "0"], "Invalid seeds"),
    ],
)
def test_bad_input_is_a_clear_error(tmp_path, capsys, extra, message):
    assert reproduce_app.main(SMALL + extra + ["--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("glr-reproduce: error:") and message in err
    assert not (tmp_path / "out" / "runs").exists()


def test_an_unwritable_output_folder_is_a_clear_error(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert reproduce_app.main(SMALL + ["--out", str(blocker / "out")]) == 2
    assert "Cannot write to the output folder" in capsys.readouterr().err


def test_settings_defaults_fit_the_time_budget():
    quick, full = reproduction.Settings(quick=True), reproduction.Settings()
    assert (quick.seeds, quick.copies, quick.epochs) == (1, 50, 3)
    assert full.seeds >= 2 and full.examples is None  # mean and spread over seeds; the whole test split
    assert os.path.basename(reproduction.surrogate_config(full).name()) == "surrogate_bp_50-50_relu"


def test_rows_and_twins_select_the_runs():
    chosen = reproduction.Settings(quick=True, rows=("glr_sigmoid_01", "bp_sigmoid"), seeds=2)
    names = [c.run_name for _, _, c in reproduction.row_configs(chosen)]
    assert names == [
        "bp_sigmoid_seed0",
        "bp_sigmoid_seed1",
        "glr_sigmoid_01_seed0",
        "glr_sigmoid_01_twin_seed0",
        "glr_sigmoid_01_seed1",
        "glr_sigmoid_01_twin_seed1",
    ]
    twin = next(c for _, t, c in reproduction.row_configs(chosen) if t is not None)
    assert twin.estimator == "bp-ste" and twin.epochs == 2 * chosen.epochs  # 0-1 loss: twice the epochs, STE control
    alone = reproduction.Settings(quick=True, rows=("glr_sigmoid_01",), twins=False)
    assert [c.run_name for _, _, c in reproduction.row_configs(alone)] == ["glr_sigmoid_01_seed0"]


def test_the_mlp_suite_trains_the_papers_rows_and_the_peers_on_request():
    assert reproduction.Settings().rows == reproduction.ROW_KEYS
    chosen = reproduction.Settings(quick=True, rows=("es_threshold", "fg_sigmoid"))
    configs = {c.run_name: (twin, c) for _, twin, c in reproduction.row_configs(chosen)}
    assert sorted(configs) == ["es_threshold_seed0", "fg_sigmoid_seed0"]  # no twins: their neurons are noiseless
    es, forward = configs["es_threshold_seed0"][1], configs["fg_sigmoid_seed0"][1]
    assert (es.estimator, es.activation, es.perturbation_scale, es.copies) == ("weight-perturbation", "step", 0.3, 50)
    assert (forward.estimator, forward.copies) == ("forward-gradient", chosen.copies)  # equal forward passes
    for config in (es, forward):
        config.validate()


def test_the_cnn_suite_fine_tunes_the_step_row_from_the_bp_row_of_the_same_seed(tmp_path):
    settings = reproduction.Settings(suite="cnn", quick=True, seeds=2, rows=("bp_cnn", "glr_cnn_step"))
    configs = reproduction.row_configs(settings, root=str(tmp_path))
    names = [c.run_name for _, _, c in configs]
    assert names == [
        "bp_cnn_seed0",
        "bp_cnn_seed1",
        "glr_cnn_step_seed0",
        "glr_cnn_step_twin_seed0",
        "glr_cnn_step_seed1",
        "glr_cnn_step_twin_seed1",
    ]
    by_name = {c.run_name: c for _, _, c in configs}
    for seed in (0, 1):
        step, twin = by_name[f"glr_cnn_step_seed{seed}"], by_name[f"glr_cnn_step_twin_seed{seed}"]
        assert step.init_from == twin.init_from == str(tmp_path / f"bp_cnn_seed{seed}")
        assert (step.arch, step.activation, step.estimator, twin.estimator) == ("cnn", "step", "glr", "bp-ste")
        assert step.epochs == 1 and reproduction.Settings(suite="cnn").epochs == 12  # a quarter of 3, at least one
    bp = by_name["bp_cnn_seed0"]
    assert (bp.estimator, bp.activation, bp.init_from) == ("bp", "relu", None)
    full = reproduction.Settings(suite="cnn")
    glr = next(c for _, _, c in reproduction.row_configs(full) if c.run_name == "glr_cnn_seed0")
    assert (glr.copies, glr.sigma, glr.injection, glr.schedule) == (
        232,
        0.05,
        "layerwise",
        "cosine",
    )  # `--arch cnn` defaults
    assert next(c for _, _, c in reproduction.row_configs(full) if c.run_name == "glr_cnn_step_seed0").epochs == 3
    surrogate = reproduction.surrogate_config(full)
    assert (
        surrogate.arch == "cnn" and len(surrogate.filters) == 3 and surrogate.estimator == "bp"
    )  # another architecture


def test_rows_of_another_suite_are_a_clear_error():
    with pytest.raises(ValueError, match=r"Unknown rows \['glr_sigmoid'\] for the cnn suite.*glr_cnn"):
        reproduction.Settings(suite="cnn", rows=("glr_sigmoid",))
    with pytest.raises(ValueError, match="Unknown suite 'rnn'"):
        reproduction.Settings(suite="rnn")


@pytest.mark.slow  # a whole glr-reproduce --suite cnn run on a few examples (about 2 minutes)
def test_the_cnn_suite_writes_a_report_with_twins_mnist_c_and_a_verdict(tmp_path):
    out = tmp_path / "out"
    argv = [
        "--suite",
        "cnn",
        "--quick",
        "--rows",
        "bp_cnn,glr_cnn_step",
        "--epochs",
        "2",
        "--copies",
        "14",
        "--examples",
        "40",
        "--whitebox-examples",
        "4",
        "--certify-examples",
        "10",
        "--certify-samples",
        "100",
        "--out",
        str(out),
    ]
    assert reproduce_app.main(argv) == 0
    report = (out / "REPORT.md").read_text()
    results = json.loads((out / "evaluation" / "results.json").read_text())
    assert report.startswith("# The paper's protocol on the small CNN")
    assert "None: every run trained" in report and "| GLR step CNN, fine-tuned from BP ReLU | bp-ste |" in report
    step = runs.read_json(out / "runs" / "glr_cnn_step_seed0" / "run.json")
    assert step["init_from"] == str(out / "runs" / "bp_cnn_seed0") and 0 <= step["initial_test_accuracy"] <= 1
    assert (
        set(results["corruption_means"]) == set(reproduction.SUITES["cnn"].corruptions)
        and len(results["corruption_means"]) > 4
    )
    assert "## MNIST-C corruptions" in report and "| BP ReLU CNN | 1 |" in report
    assert "- **GLR step CNN, fine-tuned from BP ReLU**:" in report  # the row-by-row verdict
    assert set(results["certified"]) == {"bp_cnn_seed0", "glr_cnn_step_seed0", "glr_cnn_step_twin_seed0"}
    row = next(line for line in report.splitlines() if line.startswith("| BP ReLU CNN | 1 |"))
    assert f"{results['clean']['bp_cnn_seed0']:.3f}" in row
