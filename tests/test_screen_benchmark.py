"""benchmarks/screen.py: its own options, and one screen per seed summarised."""

import pytest

from tests.benchmark_scripts import load


@pytest.fixture(scope="module")
def screen():
    return load("screen")


def test_seeds_are_split_off_and_glr_train_options_pass_through(screen):
    options, rest = screen._own_options(["--seed", "3", "--seeds", "0,2", "--epochs", "1"])
    assert options.seeds == [0, 2] and not options.no_fan_out
    assert rest == ["--seed", "3", "--epochs", "1"]
    options, rest = screen._own_options(["--seed", "3"])
    assert options.seeds is None and rest == ["--seed", "3"]


def test_bad_seeds_are_a_clear_error(screen, capsys):
    with pytest.raises(SystemExit):
        screen._own_options(["--seeds", "0,one"])
    assert "comma-separated integers such as 0,1,2; received '0,one'" in capsys.readouterr().err


def test_one_screen_per_seed_ends_with_their_final_accuracies(screen, capsys):
    screen.main(["--arch", "mlp", "--epochs", "1", "--copies", "4", "--seeds", "0,1"])
    lines = capsys.readouterr().out.splitlines()
    epochs = [line for line in lines if "epoch  1" in line]
    assert [line.split()[1] for line in epochs] == ["0", "1"]
    finals = [float(line.split()[-1]) for line in epochs]
    summary = lines[-1].split()
    assert summary[:3] == ["final", "per", "seed"]
    assert [float(summary[3]), float(summary[5])] == pytest.approx(finals, abs=5e-5)
    assert float(summary[7]) == pytest.approx(sum(finals) / 2, abs=5e-5)
