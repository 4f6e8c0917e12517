"""RunConfig: the single list of a run's options, its checks and its flags."""

import dataclasses

import pytest

from keras_glr._src import build
from keras_glr._src import estimators
from keras_glr._src import fan_out
from keras_glr._src import run_config
from keras_glr._src.run_config import RunConfig
from keras_glr._src.run_config import parse_hidden
from keras_glr_apps import common


def test_the_choices_are_the_estimators_own():
    assert run_config.ESTIMATORS == estimators.ESTIMATORS
    assert run_config.BASELINES == estimators.BASELINES
    assert run_config.INJECTIONS == estimators.INJECTIONS
    assert run_config.SAMPLINGS == estimators.SAMPLINGS


def test_every_field_says_where_it_goes_on_the_command_line():
    for field in dataclasses.fields(RunConfig):
        assert field.metadata["group"] in ("data", "network", "estimator", "optimisation", "output"), field.name
        assert field.metadata["help"], field.name


def test_differences_name_the_changed_fields():
    assert RunConfig().differences(RunConfig()) == []
    assert RunConfig(copies=8, epochs=3).differences(RunConfig()) == ["copies", "epochs"]
    assert RunConfig(data_dir="/elsewhere").differences(RunConfig()) == []


@pytest.mark.parametrize(
    "values, message",
    [
        (dict(sigma=0), "Invalid `sigma`: 0"),
        (dict(epochs=2.5), "Invalid `epochs`: 2.5"),
        (dict(validation_fraction=1.0), "Invalid `validation_fraction`: 1.0"),
        (dict(optimizer="lion"), "Invalid `optimizer`: 'lion'"),
        (dict(run_name="a/b"), "Invalid `run_name`: 'a/b'"),
        (dict(copies=3, antithetic=True), "copies=3"),
        (dict(injection="layerwise", estimator="bp"), "Layer-wise injection"),
        (dict(sampling="sobol"), "leave-one-out baseline"),
        (dict(sampling="latin", baseline="none", estimator="bp-noise"), "option of the GLR estimator"),
        (dict(copy_split=(1, 2)), "It shares the copies among the noisy layers of layer-wise injection"),
        (dict(copy_split="uneven", injection="layerwise"), "Invalid copy split: 'uneven'"),
        (dict(arch="cnn", pool="average"), "Invalid `pool`: 'average'"),
        (
            dict(pool="pre-activation"),
            "Invalid `pool`: 'pre-activation'. It is an option of the cnn, and this run's arch is 'mlp'",
        ),
    ],
)
def test_validate_names_the_field(values, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        RunConfig(**values).validate()


def test_parse_copy_split():
    assert run_config.parse_copy_split("1,2,4") == (1, 2, 4) and run_config.parse_copy_split("0.5,1") == (0.5, 1)
    assert run_config.parse_copy_split("proportional") == "proportional" and run_config.parse_copy_split([1, 3]) == (
        1,
        3,
    )
    for bad in ("", "0,1", "1,x", "-1,2", "nan,1", "inf"):
        with pytest.raises(ValueError, match="Invalid copy split"):
            run_config.parse_copy_split(bad)


def test_a_copy_split_survives_the_run_record():
    config = RunConfig(injection="layerwise", copy_split=(1, 2))
    assert RunConfig.from_json(config.to_json()) == config and config.to_json()["copy_split"] == [1, 2]


@pytest.mark.parametrize(
    "split, antithetic, expected",
    [
        ("even", False, None),
        ("proportional", True, "proportional"),
        ((1, 2, 4), True, [34, 66, 132]),
        ((1, 1, 1), False, [78, 77, 77]),
    ],
)
def test_copy_shares_become_group_sizes(split, antithetic, expected):
    from keras_glr import architectures

    model = architectures.small_cnn((14, 14, 1), 10)
    config = RunConfig(arch="cnn", copies=232, antithetic=antithetic, injection="layerwise", copy_split=split)
    assert build.copies_per_layer(config, model) == expected


def test_copy_shares_must_match_the_noisy_layers():
    from keras_glr import architectures

    model = architectures.small_cnn((14, 14, 1), 10)
    with pytest.raises(ValueError, match=r"gives 2 shares, but the cnn has 3 noisy layers \(conv_1, conv_2, logits\)"):
        build.copies_per_layer(RunConfig(arch="cnn", injection="layerwise", copy_split=(1, 2)), model)


def test_parse_hidden():
    assert parse_hidden("50,50") == (50, 50) and parse_hidden("20") == (20,)
    for bad in ("", "0", "20,x", "-3"):
        with pytest.raises(ValueError, match="Invalid hidden layer widths"):
            parse_hidden(bad)


@pytest.mark.parametrize(
    "message, expected",
    [
        ("Invalid `learning_rate`: -1.", "Invalid --learning-rate: -1."),
        (
            "Received: copies=3. Use copies=4, or antithetic=False.",
            "Received: --copies 3. Use --copies 4, or no --antithetic.",
        ),
        ("Received: ste_slope=-2.5", "Received: --ste-slope -2.5"),
        ("with antithetic=True the copies", "with --antithetic the copies"),
        ("two copies per example", "two copies per example"),
    ],
)
def test_library_arguments_are_written_as_flags(message, expected):
    assert common.in_flags(message, [f.name for f in dataclasses.fields(RunConfig)]) == expected


def test_the_twin_of_a_layerwise_run_is_noisy_in_every_layer():
    from keras_glr._src import twins

    twin = twins.twin_config(
        RunConfig(injection="layerwise", copy_split=(1, 2), sampling="sobol", baseline="none", run_name="lw")
    )
    assert (twin.estimator, twin.injection, twin.copy_split, twin.sampling, twin.run_name) == (
        "bp-ste",
        "all",
        "even",
        "mc",
        "lw_twin",
    )
    twin.validate()


def test_for_arch_fills_in_the_architectures_defaults_only_where_nothing_is_given():
    from keras_glr._src.run_config import ARCH_DEFAULTS
    from keras_glr._src.run_config import RunConfig

    assert RunConfig.for_arch() == RunConfig()
    cnn = RunConfig.for_arch(arch="cnn", copies=200, sigma=0.3)
    assert (cnn.copies, cnn.sigma, cnn.activation, cnn.injection) == (
        200,
        0.3,
        ARCH_DEFAULTS["cnn"]["activation"],
        "layerwise",
    )
    bp = RunConfig.for_arch(arch="cnn", estimator="bp")
    assert (bp.activation, bp.injection, bp.antithetic, bp.copies, bp.copy_split) == (
        "relu",
        "all",
        False,
        RunConfig().copies,
        "even",
    )
    assert cnn.copy_split == ARCH_DEFAULTS["cnn"]["copy_split"] != "even"
    every_layer = RunConfig.for_arch(arch="cnn", injection="all")
    assert (every_layer.copy_split, every_layer.copies) == ("even", ARCH_DEFAULTS["cnn"]["copies"])
    every_layer.validate()
    with pytest.raises(ValueError, match="It shares the copies"):
        RunConfig.for_arch(arch="cnn", injection="all", copy_split=(1, 1, 1)).validate()
    with pytest.raises(ValueError, match="Expected one of"):
        RunConfig.for_arch(arch="vgg")


def test_the_cnn_pools_its_pre_activations_and_older_runs_keep_pooling_the_output():
    from keras_glr import data

    cnn = RunConfig.for_arch(arch="cnn")
    assert cnn.pool == "pre-activation" and RunConfig.for_arch(arch="cnn", estimator="bp").pool == "pre-activation"
    earlier = {k: v for k, v in cnn.to_json().items() if k != "pool"}  # a run recorded before the option existed
    assert RunConfig.from_json(earlier).pool == "output"
    info = data.DatasetInfo("digits", 10, (14, 14, 1), [str(c) for c in range(10)], {})
    for pool, dimensions in (("pre-activation", [392, 144, 10]), ("output", [1568, 784, 10])):
        model = build.build_model(RunConfig.for_arch(arch="cnn", pool=pool), info, steps_per_epoch=10)
        assert fan_out.noise_dimensions(model) == dimensions


@pytest.mark.parametrize("bad", [(), (8, 0), (8, -1), (8.5,), (True,)])
def test_bad_filters_are_refused(bad):
    with pytest.raises(ValueError, match="Invalid `filters`"):
        RunConfig(arch="cnn", filters=bad).validate()


def test_older_run_records_load_with_the_filters_they_were_trained_with():
    earlier = {k: v for k, v in RunConfig(arch="cnn").to_json().items() if k not in ("filters", "init_from")}
    restored = RunConfig.from_json(earlier)
    assert (restored.filters, restored.init_from) == ((8, 16), None)
    assert RunConfig.from_json(RunConfig(arch="resnet", filters=(4, 6)).to_json()).filters == (4, 6)
