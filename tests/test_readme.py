"""The Python blocks of the README and the guides run as written and do what they say."""

import pathlib
import re
from concurrent import futures

import grpc
import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").rglob("*.md"))]


def _python_blocks(pages=PAGES):
    return [block for page in pages for block in re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)]


def _page_of(block):
    return next(str(page) for page in PAGES if block in page.read_text())


@pytest.mark.slow  # 30-50 s: keeps the default suite under 10 minutes on 2 cores
def test_the_python_example_trains_to_a_useful_accuracy(tmp_path, monkeypatch):
    (block,) = [b for b in _python_blocks([README]) if "mnist_data" in b]
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(block, str(README), "exec"), namespace)  # noqa: S102 - the README's own example
    model, x, y = namespace["model"], namespace["x"], namespace["y"]
    held_out = model.evaluate(x[3000:], y[3000:], verbose=0)[1]
    assert held_out > 0.8, f"the README example reaches only {held_out:.3f} on its validation digits"
    grads = namespace["grads"]
    assert len(grads) == len(model.trainable_variables) and all(np.all(np.isfinite(g)) for g in grads)
    (convert,) = [b for b in _python_blocks([README]) if "keras_glr.convert(bp" in b]
    exec(compile(convert, str(README), "exec"), namespace)  # noqa: S102 - the README's conversion, after its example
    from keras_glr import activations

    glr = namespace["glr"]
    assert glr.layers[0].activation is activations.step
    binarised = glr.evaluate(x[3000:], y[3000:], verbose=0)[1]
    assert binarised > 0.5, f"the README's converted step network reaches only {binarised:.3f} after fine-tuning"


def test_the_grpc_example_gets_probabilities_from_a_prediction_service(tmp_path):
    """The serving guide's gRPC client, run as written against a PredictionService on
    127.0.0.1 that answers from the exported SavedModel (signature and tensor
    names exactly as TF Serving maps them)."""
    pytest.importorskip("tensorflow_serving.apis.predict_pb2")
    import keras
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    import keras_glr
    from keras_glr._src import export
    from keras_glr.layers import NoisyDense

    (block,) = [b for b in _python_blocks() if "prediction_service_pb2_grpc" in b]
    model = keras_glr.GLRSequential([keras.Input((196,)), NoisyDense(8, "step"), NoisyDense(10)], seed=0)
    loaded = tf.saved_model.load(export.export_version(model, tmp_path / "glr", 1, noisy_passes=4))

    class Service(prediction_service_pb2_grpc.PredictionServiceServicer):
        def Predict(self, request, context):
            assert request.model_spec.name == "glr"
            function = loaded.signatures[request.model_spec.signature_name]
            outputs = function(**{k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()})
            response = predict_pb2.PredictResponse()
            for name, value in outputs.items():
                response.outputs[name].CopyFrom(tf.make_tensor_proto(value.numpy()))
            return response

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(Service(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        namespace = {}
        code = compile(block.replace("localhost:8500", f"127.0.0.1:{port}"), _page_of(block), "exec")
        exec(code, namespace)  # noqa: S102
    finally:
        server.stop(grace=None)
    probabilities = namespace["probabilities"]
    assert probabilities.shape == (1, 10)
    np.testing.assert_allclose(probabilities.sum(), 1.0, rtol=1e-5)
    np.testing.assert_allclose(
        probabilities, tf.nn.softmax(model.predict(np.zeros((1, 196), np.float32), verbose=0)), rtol=1e-5, atol=1e-6
    )


def test_the_functional_example_of_the_guide_trains_and_estimates():
    (block,) = [b for b in _python_blocks() if "keras_glr.GLRModel(inputs, outputs" in b]
    namespace = {}
    exec(compile(block, _page_of(block), "exec"), namespace)  # noqa: S102 - the guide's own example
    model, grads = namespace["model"], namespace["grads"]
    assert [layer.name for layer in model.layers if "noisy" in type(layer).__name__.lower()] == ["shared", "logits"]
    assert len(grads) == len(model.trainable_variables) and all(np.all(np.isfinite(g)) for g in grads)


def test_the_conversion_example_of_the_guide_binarises_and_fine_tunes():
    (block,) = [b for b in _python_blocks() if "keras_glr.convert(bp_model" in b]
    namespace = {}
    exec(compile(block, _page_of(block), "exec"), namespace)  # noqa: S102 - the guide's own example
    from keras_glr import activations
    from keras_glr.layers import NoisyDense

    glr_model = namespace["glr_model"]
    assert [type(layer) for layer in glr_model.layers] == [NoisyDense, NoisyDense]
    assert glr_model.layers[0].activation is activations.step


def test_the_transformer_example_of_the_guide_converts_and_trains():
    (block,) = [b for b in _python_blocks() if "keras_glr.convert(transformer" in b]
    namespace = {}
    exec(compile(block, _page_of(block), "exec"), namespace)  # noqa: S102 - the guide's own example
    from keras_glr.layers import Noisy

    glr_model = namespace["glr_model"]
    wrapped = [type(layer.layer).__name__ for layer in glr_model.layers if isinstance(layer, Noisy)]
    assert wrapped == ["LayerNormalization", "MultiHeadAttention", "LayerNormalization"]
    assert len({layer.noise.stddev for layer in glr_model.layers if hasattr(layer, "noise")}) == 6  # its own scales


def test_the_two_output_example_of_the_guide_trains():
    (block,) = [b for b in _python_blocks() if "loss_weights={" in b]
    namespace = {}
    exec(compile(block, _page_of(block), "exec"), namespace)  # noqa: S102 - the guide's own example
    history = namespace["model"].history.history
    assert set(history) == {"loss", "digit_loss", "parity_loss", "digit_accuracy"} and np.isfinite(history["loss"][0])


def test_the_recurrent_example_of_the_guide_trains_in_the_while_loop_form():
    (block,) = [b for b in _python_blocks() if "NoisySimpleRNNCell(32" in b]
    namespace = {}
    exec(compile(block, _page_of(block), "exec"), namespace)  # noqa: S102 - the guide's own example
    model = namespace["model"]
    assert not model.layers[0].unroll and np.isfinite(model.history.history["loss"][0])
