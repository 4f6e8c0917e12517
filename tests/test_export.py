"""The SavedModel export: both signatures, and noisy serving on the prediction streams."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_glr
from keras_glr._src import checkpoints
from keras_glr._src import export
from keras_glr.layers import NoisyDense


def _model():
    model = keras_glr.GLRSequential([keras.Input((5,)), NoisyDense(6, "step"), NoisyDense(3)], seed=2)
    model.compile("sgd", "zero_one", copies=4)
    return model


def test_signatures_serve_the_model(tmp_path):
    model = _model()
    x = np.random.default_rng(0).uniform(size=(4, 5)).astype("float32")
    export.export_saved_model(model, tmp_path / "saved", noisy_passes=8)
    described = export.describe_signatures(tmp_path / "saved")
    assert {"serving_default", "serve", "serve_noisy"} <= set(described)
    loaded = tf.saved_model.load(str(tmp_path / "saved"))
    deterministic = loaded.signatures["serving_default"](inputs=tf.constant(x))["output_0"]
    np.testing.assert_allclose(deterministic, tf.nn.softmax(model.predict(x, verbose=0)), rtol=1e-5, atol=1e-6)
    noisy = [np.asarray(loaded.signatures["serve_noisy"](inputs=tf.constant(x))["output_0"]) for _ in range(2)]
    assert noisy[0].shape == (4, 3)
    np.testing.assert_allclose(noisy[0].sum(axis=1), 1.0, rtol=1e-5)
    assert not np.array_equal(*noisy)  # fresh noise on every request


@pytest.mark.parametrize("signature", ["serving_default", "serve_noisy"])
@pytest.mark.parametrize("shape, received", [((4, 2), r"\[4,2\]"), ((4, 5, 1), r"\[4,5,1\]")])
def test_a_request_of_another_shape_is_told_the_expected_one(tmp_path, signature, shape, received):
    export.export_saved_model(_model(), tmp_path / "saved", noisy_passes=2)
    loaded = tf.saved_model.load(str(tmp_path / "saved"))
    with pytest.raises(
        tf.errors.InvalidArgumentError,
        match=r"Shape of tensor inputs " + received + r" is not compatible with expected shape \[\?,5\]",
    ):
        loaded.signatures[signature](inputs=tf.zeros(shape))


def test_export_leaves_the_training_noise_alone(tmp_path):
    model = _model()
    before = checkpoints.noise_states(model)["training"]
    export.export_saved_model(model, tmp_path / "saved", noisy_passes=4)
    model.noisy_forward(np.ones((2, 5), "float32"), 4)
    assert checkpoints.noise_states(model)["training"] == before


def test_bad_noisy_passes():
    with pytest.raises(ValueError, match="noisy_passes=0"):
        export.export_saved_model(_model(), "unused", noisy_passes=0)


def test_versions_are_numbered_and_written_whole(tmp_path):
    model, base = _model(), tmp_path / "served"
    assert export.versions(base) == [] and export.next_version(base) == 1
    assert export.export_version(model, base, 1, noisy_passes=2) == str(base / "1")
    (base / "notes").mkdir()
    assert export.versions(base) == [1] and export.next_version(base) == 2
    with pytest.raises(ValueError, match="Version 1 already exists"):
        export.export_version(model, base, 1, noisy_passes=2)
    export.export_version(model, base, 1, noisy_passes=2, replace=True)
    assert sorted(p.name for p in base.iterdir()) == ["1", "notes"]  # no staging folder left


@pytest.mark.slow  # 10 s: the default suite stays under 10 minutes on 2 cores
def test_tf_serving_requests_reach_both_signatures(tmp_path):
    """A PredictRequest for each signature, as a TF Serving client builds it, fed through the signature
    in a process that has only TensorFlow and the serving API (README, "Serving")."""
    pytest.importorskip("tensorflow_serving.apis.predict_pb2")
    model = _model()
    export.export_version(model, tmp_path / "served", 1, noisy_passes=4)
    x = np.random.default_rng(1).uniform(size=(3, 5)).astype("float32")
    np.save(tmp_path / "x.npy", x)
    script = f"""
import json, sys
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2

x = np.load({str(tmp_path / "x.npy")!r})
loaded = tf.saved_model.load({str(tmp_path / "served" / "1")!r})
out = {{}}
for signature in ("serving_default", "serve_noisy"):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "glr"
    request.model_spec.signature_name = signature
    request.inputs["inputs"].CopyFrom(tf.make_tensor_proto(x))
    request = predict_pb2.PredictRequest.FromString(request.SerializeToString())  # over the wire
    function = loaded.signatures[request.model_spec.signature_name]
    feed = {{name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}}
    result = function(**feed)
    out[signature] = {{name: value.numpy().tolist() for name, value in result.items()}}
rest = json.loads(json.dumps({{"signature_name": "serve_noisy", "instances": x.tolist()}}))  # the REST body
served = loaded.signatures[rest["signature_name"]](inputs=tf.constant(rest["instances"], tf.float32))
out["rest"] = served["output_0"].numpy().tolist()
assert "keras_glr" not in sys.modules
print(json.dumps(out))
"""
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(out["serving_default"]) == set(out["serve_noisy"]) == {"output_0"}
    expected = tf.nn.softmax(model.predict(x, verbose=0)).numpy()
    np.testing.assert_allclose(out["serving_default"]["output_0"], expected, rtol=1e-5, atol=1e-6)
    for noisy in (out["serve_noisy"]["output_0"], out["rest"]):
        assert np.asarray(noisy).shape == (3, 3)
        np.testing.assert_allclose(np.sum(noisy, axis=1), 1.0, rtol=1e-5)
