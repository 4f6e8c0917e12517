"""Ready-made networks: the resnet's structure and its refusals."""

import keras
import pytest

from keras_glr import architectures
from keras_glr._src import fan_out
from keras_glr.layers import NoisyLayer


def test_resnet_makes_every_conv_and_normalization_noisy_and_halves_the_resolution_in_each_block():
    model = architectures.resnet((28, 28, 1), 10, filters=(8, 16, 32))
    weighted = [
        layer for layer in model._flatten_layers(include_self=False, recursive=False) if layer.trainable_weights
    ]
    assert all(isinstance(layer, NoisyLayer) for layer in weighted)
    normalizations = [
        l
        for l in model._flatten_layers(include_self=False, recursive=True)
        if isinstance(l, keras.layers.BatchNormalization)
    ]
    assert len(normalizations) == 1 + 2 * 2  # the stem's, and two in each block
    # stem and its normalization at 14x14x8; each block's two convs, shortcut and two normalizations at half the
    # resolution
    assert fan_out.noise_dimensions(model) == [14 * 14 * 8] * 2 + [7 * 7 * 16] * 5 + [3 * 3 * 32] * 5 + [10]
    assert fan_out.can_fan_out_by_layer(model)
    assert model.output.shape == (None, 10)


@pytest.mark.parametrize(
    "input_shape, filters, message",
    [
        ((28, 28, 1), (8,), "at least one residual block"),
        ((6, 6, 1), (4, 8, 16), "at least 8 x 8"),
        ((784,), (8, 16), "Do not flatten"),
    ],
    ids=["one_width", "too_small", "flat"],
)
def test_resnet_refuses_what_it_cannot_build(input_shape, filters, message):
    with pytest.raises(ValueError, match=message):
        architectures.resnet(input_shape, 10, filters=filters)


def test_transformer_makes_every_weighted_layer_noisy_and_reads_rows_as_tokens():
    model = architectures.transformer((14, 14, 1), 10, hidden=(16, 16), heads=4)
    weighted = [
        layer for layer in model._flatten_layers(include_self=False, recursive=False) if layer.trainable_weights
    ]
    assert all(isinstance(layer, NoisyLayer) for layer in weighted)
    # the embedding, then each block's attention, MLP (2D wide) and MLP output, on 14 tokens; the logits
    assert fan_out.noise_dimensions(model) == [14 * 16] + [14 * 16, 14 * 32, 14 * 16] * 2 + [10]
    assert fan_out.can_fan_out_by_layer(model)
    assert model.output.shape == (None, 10)


@pytest.mark.parametrize(
    "input_shape, hidden, heads, message",
    [
        ((196,), (16,), 2, "Do not flatten"),
        ((14, 14, 1), (16, 8), 2, "share one width"),
        ((14, 14, 1), (16,), 3, "heads dividing 16"),
    ],
    ids=["flat", "unequal_widths", "heads"],
)
def test_transformer_refuses_what_it_cannot_build(input_shape, hidden, heads, message):
    with pytest.raises(ValueError, match=message):
        architectures.transformer(input_shape, 10, hidden=hidden, heads=heads)
