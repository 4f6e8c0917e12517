"""Every failure of an app is one line on stderr and exit code 2, and leaves no new file behind."""

import json
import os
import re
import shutil
import zipfile

import pytest

from keras_glr import runs
from keras_glr_apps import evaluate as evaluate_app
from keras_glr_apps import export as export_app
from keras_glr_apps import train as train_app

FAST = ["--epochs", "1", "--copies", "8", "--hidden", "8", "--batch-size", "100", "--noisy-passes", "2", "--quiet"]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    root = tmp_path_factory.mktemp("pristine")
    runs.train(
        runs.RunConfig(run_name="run", hidden=(8,), copies=8, epochs=1, batch_size=100, noisy_passes=2),
        str(root),
        verbose=0,
    )
    return root / "run"


def _edit_json(path, change):
    values = json.loads(path.read_text())
    path.write_text(json.dumps(change(values)))


def _truncate(path):
    path.write_bytes(path.read_bytes()[:100])


def _empty_zip(path):
    zipfile.ZipFile(path, "w").close()


#: name -> (what to damage, how, what the message must say)
DAMAGE = {
    "state-mistyped": (
        "checkpoint/state.json",
        lambda p: _edit_json(p, lambda v: {**v, "epochs_done": "1"}),
        r"checkpoint/state\.json is damaged: 'epochs_done' should be an integer, found '1'",
    ),
    "run-a-list": (
        "run.json",
        lambda p: p.write_text("[1, 2]"),
        r"run\.json is damaged: expected a JSON object, found a list",
    ),
    "config-mistyped": (
        "config.json",
        lambda p: _edit_json(p, lambda v: {**v, "copies": "8"}),
        r"config\.json is damaged: .*copies",
    ),
    "config-truncated": (
        "config.json",
        lambda p: p.write_text('{"copies": '),
        r"config\.json is damaged: it is not valid JSON",
    ),
    "model-truncated": (
        "model.keras",
        _truncate,
        r"model\.keras is damaged: it is not a readable \.keras archive \(not a zip",
    ),
    "model-empty-zip": (
        "model.keras",
        _empty_zip,
        r"model\.keras is damaged: it is not a readable \.keras archive \(no readable",
    ),
}

#: app -> (its main, its argv for the run folder, which damages it reads)
APPS = {
    "glr-train": (
        train_app.main,
        lambda run: FAST + ["--epochs", "2", "--out", str(run.parent), "--run-name", "run", "--resume"],
        ("state-mistyped", "run-a-list", "config-mistyped", "config-truncated"),
    ),
    "glr-export": (export_app.main, lambda run: [str(run)], ("model-truncated", "model-empty-zip")),
    "glr-evaluate": (
        evaluate_app.main,
        lambda run: [str(run), "--out", str(run.parent / "evaluation"), "--attacks", "fgsm"],
        ("config-mistyped", "config-truncated", "model-truncated", "model-empty-zip"),
    ),
}

CASES = [(app, damage) for app, (_, _, damages) in APPS.items() for damage in damages]


def _listing(folder):
    return sorted(os.path.relpath(os.path.join(w, n), folder) for w, ds, fs in os.walk(folder) for n in ds + fs)


@pytest.mark.parametrize("app, damage", CASES, ids=[f"{a}-{d}" for a, d in CASES])
def test_a_damaged_run_file_is_named_in_one_line_with_exit_code_2(app, damage, pristine, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(pristine, run)
    file, damage_it, said = DAMAGE[damage]
    damage_it(run / file)
    before = _listing(tmp_path)
    main, argv, _ = APPS[app]
    assert main(argv(run)) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith(f"{app}: error: "), err
    assert re.search(said, err), err
    assert "Traceback" not in err and "Restore it" in err
    assert _listing(tmp_path) == before  # nothing new: no lock, no partial version, no --out folder


@pytest.mark.parametrize(
    "argv, said",
    [
        (["--seed", "-1"], r"Invalid --seed: -1\. Expected an integer from 0"),
        (["--run-name", "x" * 300], r"Invalid --run-name: a name of 300 bytes\. Expected at most 200"),
        (["--run-name", ".hidden"], r"Invalid --run-name: '\.hidden'"),
        (["--dataset", "no_such_data"], "no dataset named 'no_such_data'"),
        (
            ["--copies", "10000000"],
            r"1,000,000,000 example copies at once: tensors of 10,000,000,000 values, more than "
            r"TensorFlow's 2,147,483,647\. Pass --copies-per-chunk \d+0000000 ",
        ),
        (
            ["--dataset", "mnist", "--data-dir", "/nonexistent"],
            r"not prepared in /nonexistent.*tfds\.load\('mnist', data_dir='/nonexistent'\)\", then copy",
        ),
        (["--ste-slope", "2"], r"has no effect with --estimator 'glr'\. Received: --ste-slope 2\.0\. Drop it"),
    ],
)
def test_a_failed_start_leaves_no_out_folder(argv, said, tmp_path, capsys):
    out = tmp_path / "new" / "runs"
    assert train_app.main(FAST + ["--out", str(out)] + argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and re.search(said, err), err
    assert os.listdir(tmp_path) == []


def test_glr_evaluate_checks_its_out_folder_before_the_work(pristine, capsys):
    assert evaluate_app.main([str(pristine), "--out", "/proc/no/such/folder", "--attacks", "fgsm"]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "glr-evaluate: error: Cannot write to --out /proc/no/such/folder: No such file or directory. Choose a "
        "writable --out."
    ]


def test_glr_export_checks_its_out_folder_before_loading_the_model(pristine, capsys):
    assert export_app.main([str(pristine), "--out", "/proc/no/such/base"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "glr-export: error: Cannot write to /proc/no/such/base: No such file or directory. Choose a writable --out."
    ]
