"""glr-evaluate end to end on small saved models."""

import json

import keras
import pytest

from keras_glr import runs
from keras_glr_apps import evaluate as evaluate_app

QUICK = ["--examples", "40", "--attacks", "fgsm,lbfgs", "--eps", "0.05,0.1", "--corruptions", "gaussian_noise,contrast"]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    fast = dict(hidden=(8,), copies=4, epochs=1, batch_size=100, noisy_passes=2)
    for seed in (0, 1):
        runs.train(runs.RunConfig(run_name=f"glr_seed{seed}", seed=seed, **fast), str(root), verbose=0)
        runs.train(
            runs.RunConfig(run_name=f"twin_seed{seed}", seed=seed, estimator="bp-ste", **fast), str(root), verbose=0
        )
    runs.train(
        runs.RunConfig(run_name="surrogate", estimator="bp", activation="relu", **dict(fast, hidden=(16, 16))),
        str(root),
        verbose=0,
    )
    runs.train(runs.RunConfig(run_name="small_images", image_size=7, **fast), str(root), verbose=0)
    not_classifier = keras.Sequential([keras.Input((196,)), keras.layers.Dense(1)])
    not_classifier.save(root / "regressor.keras")
    return root


@pytest.mark.slow  # 19 s: the default suite stays under 10 minutes on 2 cores
def test_end_to_end_table_csv_json_and_plots(models, tmp_path, capsys):
    out = tmp_path / "eval"
    argv = [str(models / n) for n in ("glr_seed0", "glr_seed1", "twin_seed0", "twin_seed1")]
    argv += [
        "--surrogate",
        str(models / "surrogate"),
        "--out",
        str(out),
        "--save-samples",
        str(tmp_path / "samples"),
    ] + QUICK
    assert evaluate_app.main(argv) == 0
    for name in (
        "results.md",
        "results.csv",
        "results.json",
        "accuracy_vs_eps.png",
        "adversarial_examples.png",
        "corruptions.png",
    ):
        assert (out / name).stat().st_size > 0, name
    results = json.loads((out / "results.json").read_text())
    assert set(results["clean"]) == {"glr_seed0", "glr_seed1", "twin_seed0", "twin_seed1"}
    assert set(results["attacks"]["fgsm"]) == {"0.05", "0.1"} and "min" in results["attacks"]["lbfgs"]
    assert len(results["corruptions"]["contrast"]["glr_seed0"]) == 5
    table = (out / "results.md").read_text()
    assert (
        "| glr | 2 |" in table and "| twin | 2 |" in table and "±" in table and "Twins compared: glr vs twin" in table
    )
    assert (out / "results.csv").read_text().count("\n") == 5
    # The saved inputs are reused: the same numbers come back.
    again = tmp_path / "again"
    argv2 = argv[:6] + ["--out", str(again), "--samples-from", str(tmp_path / "samples")] + QUICK
    assert evaluate_app.main(argv2) == 0
    assert json.loads((again / "results.json").read_text())["attacks"] == results["attacks"]


def test_whitebox_mode_uses_bpda(models, tmp_path):
    out = tmp_path / "white"
    argv = [
        str(models / "glr_seed0"),
        "--out",
        str(out),
        "--examples",
        "30",
        "--attacks",
        "pgd",
        "--eps",
        "0.2",
        "--corruptions",
        "none",
    ]
    assert evaluate_app.main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["mode"] == "whitebox"
    assert results["attacks"]["pgd"]["0.2"]["glr_seed0"] < results["clean"]["glr_seed0"]


@pytest.mark.slow  # keeps the default suite under 10 minutes on 2 cores
def test_certificates_square_attack_and_checklist_reach_the_table(models, tmp_path):
    out = tmp_path / "certified"
    argv = [
        str(models / "glr_seed0"),
        str(models / "surrogate"),
        "--out",
        str(out),
        "--examples",
        "20",
        "--attacks",
        "pgd,square",
        "--eps",
        "0.1",
        "--corruptions",
        "none",
        "--certify",
        "--certify-samples",
        "500",
        "--radii",
        "0,0.01",
        "--checklist",
    ]
    assert evaluate_app.main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    certified = results["certified"]["glr_seed0"]
    assert certified["norm"] == "l2" and certified["radii"] == [0.0, 0.01] and certified["samples"] == 500
    assert 0.0 <= certified["accuracy"][1] <= certified["accuracy"][0] <= 1.0
    assert (
        results["certified"]["surrogate"]["norm"] == "l2"
    )  # trained by BP, but its layers are noisy: a smoothed classifier exists
    assert set(results["attacks"]["square"]["0.1"]) == {"glr_seed0", "surrogate"}
    checks = results["checklist"]["glr_seed0"]
    assert set(checks["checks"]) == {
        "falls to chance",
        "iterative",
        "converged",
    }  # no transfer inputs in white-box mode
    assert checks["flags"] == [name for name in checks["checks"] if not checks["checks"][name]["passed"]]
    table = (out / "results.md").read_text()
    assert "certified 0.01" in table and "Checklist (Carlini et al. 2019)" in table
    assert (out / "certified_accuracy.png").stat().st_size > 0


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--attacks", "deepfool"], "Unknown attack: 'deepfool'"),
        (["--corruptions", "snow"], "Unknown corruption: 'snow'"),
        (["--eps", "-0.1"], "every value must be a finite number >= 0"),
        (["--certify", "--alpha", "0.9"], "Invalid --alpha 0.9"),
        (["--certify", "--radii", "a"], "Invalid --radii"),
        (["--surrogate", "{models}/small_images"], "Input shapes differ"),
        (["{models}/regressor.keras"], "regressor is not a classifier"),
        (["--mode", "transfer"], "need a surrogate model"),
    ],
)
def test_bad_input_is_a_clear_error(models, tmp_path, capsys, extra, message):
    argv = (
        [str(models / "glr_seed0")]
        + [a.replace("{models}", str(models)) for a in extra]
        + ["--out", str(tmp_path / "e")]
    )
    assert evaluate_app.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("glr-evaluate: error: ") and message in err
    assert not (tmp_path / "e" / "results.json").exists()


@pytest.mark.slow  # Carlini-Wagner on 150 examples (15 s)
def test_carlini_wagner_runs_on_more_than_one_batch_of_examples(models, tmp_path):
    out = tmp_path / "cw"
    argv = [
        str(models / "glr_seed0"),
        "--out",
        str(out),
        "--examples",
        "150",
        "--attacks",
        "cw",
        "--corruptions",
        "none",
    ]
    assert evaluate_app.main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["attacks"]["cw"]["min"]["glr_seed0"] < results["clean"]["glr_seed0"]
