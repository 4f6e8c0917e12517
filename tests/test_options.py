"""The estimator options have one home: compile, RunConfig, glr-train, the twins and the docs all read it."""

import dataclasses

import keras
import pytest

import keras_glr
from keras_glr import options
from keras_glr._src import twins
from keras_glr._src.run_config import RunConfig
from keras_glr.layers import NoisyDense
from keras_glr_apps import train as train_app

#: RunConfig says how layer-wise copies are shared with its own field (shares, not sizes).
RUN_NAMES = {name: name for name in options.NAMES} | {"copies_per_layer": "copy_split"}


def _model():
    return keras_glr.GLRSequential([keras.Input((3,)), NoisyDense(4, "step"), NoisyDense(2)])


def test_compile_takes_every_option_and_keeps_them_in_one_value():
    model = _model()
    chosen = dict(
        copies=8,
        baseline="none",
        antithetic=True,
        estimator="glr",
        copies_per_chunk=16,
        injection="layerwise",
        copies_per_layer=(4, 4),
        sampling="latin",
    )
    model.compile("sgd", "zero_one", **chosen)
    assert model.glr_config == options.EstimatorOptions(**chosen)
    assert set(chosen) | {"ste_slope", "perturbation_scale", "spsa_directions", "fitness_shaping"} == set(options.NAMES)


def test_run_config_and_glr_train_have_every_option_with_its_default_and_help():
    fields = {f.name: f for f in dataclasses.fields(RunConfig)}
    flags = {action.dest: action for action in train_app.build_parser()._actions}
    for name, run_name in RUN_NAMES.items():
        assert run_name in fields and run_name in flags, name
        if run_name == name:
            assert fields[name].default == options.FIELDS[name].default, name
            assert fields[name].metadata.get("choices") == options.FIELDS[name].metadata.get("choices"), name


def test_the_docs_table_has_a_row_per_option():
    table = options.markdown_table().splitlines()
    assert [row.split("|")[1].strip() for row in table[2:]] == [f"`{name}`" for name in options.NAMES]


USED_BY_SOME = [
    (f.name, value, other)
    for f, value in (
        (options.FIELDS["ste_slope"], 2.0),
        (options.FIELDS["antithetic"], True),
        (options.FIELDS["copies_per_layer"], "proportional"),
    )
    for other in options.ESTIMATORS
    if other not in f.metadata["estimators"]
]


@pytest.mark.parametrize("name, value, estimator", USED_BY_SOME, ids=[f"{n}-{e}" for n, _, e in USED_BY_SOME])
def test_an_option_the_chosen_estimator_does_not_use_is_refused(name, value, estimator):
    extra = {"injection": "layerwise"} if name == "copies_per_layer" and estimator == "glr" else {}
    with pytest.raises(
        ValueError, match=rf"`{name}`: it is an option of estimator=.* no effect with estimator='{estimator}'"
    ):
        options.EstimatorOptions(**{name: value, "estimator": estimator, "copies": 4, **extra}).validate()


def test_reset_for_keeps_what_the_other_estimator_uses():
    glr = options.EstimatorOptions(copies=8, antithetic=True, injection="layerwise", sampling="latin", baseline="none")
    bp_noise = glr.reset_for("bp-noise")
    assert (bp_noise.estimator, bp_noise.copies, bp_noise.antithetic) == ("bp-noise", 8, True)
    assert (bp_noise.injection, bp_noise.sampling) == ("all", "mc")
    bp_noise.validate()


def test_a_twin_resets_the_options_its_estimator_does_not_use():
    glr = RunConfig.for_arch(arch="cnn", sampling="sobol", baseline="none")
    twin = twins.twin_config(glr)
    assert (twin.estimator, twin.injection, twin.sampling, twin.copy_split) == ("bp-noise", "all", "mc", "even")
    assert (twin.copies, twin.antithetic, twin.sigma) == (glr.copies, glr.antithetic, glr.sigma)
    twin.validate()


@pytest.mark.parametrize("name", options.ESTIMATORS)
def test_every_estimator_named_in_the_options_implements_the_protocol(name):
    from keras_glr._src import estimators

    made = estimators.make(name, lambda y, p: p, lambda y, p: p, None)
    assert isinstance(made, estimators.Estimator)
    assert made.copies(8) == (1 if name == "bp" else 8)
