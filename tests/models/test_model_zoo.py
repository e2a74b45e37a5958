"""Every registered model: builds on tiny inputs, outputs probabilities, rejects bad arguments."""

import numpy as np
import pytest

import kerasdl
from kerasdl.models import MODELS, get_model

# The names the CLI and the recipes rely on (CNN_INTERFACES.md).
REQUIRED = (
    "lenet",
    "alexnet",
    "vgg11",
    "vgg16",
    "nin",
    "googlenet",
    "resnet18",
    "resnet34",
    "resnet50",
)


def test_registry_holds_every_required_name():
    assert set(REQUIRED) <= set(MODELS)


def test_unknown_name_lists_known_models():
    with pytest.raises(ValueError, match="Unknown model 'resnet9'.*lenet.*resnet18"):
        get_model("resnet9", (8, 8, 1), 10)


# Deep variants whose code paths smaller tests already cover (resnet34 = resnet18's
# blocks; densenet121 = test_tiny_densenet) only cost build time: large.
SLOW_TO_BUILD = ("resnet34", "densenet121")


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(name, marks=pytest.mark.large) if name in SLOW_TO_BUILD else name
        for name in sorted(MODELS)
    ],
)
def test_builds_and_outputs_probabilities(name):
    # Raw 8x8 digits in 0..16: every family rescales, resizes (or not) and classifies.
    model = get_model(name, (8, 8, 1), 10, rescale=1 / 16)
    assert model.name == name
    assert model.layers[0].name == "images"
    assert model.get_layer("probabilities").dtype_policy.compute_dtype == "float32"
    images = np.random.default_rng(0).uniform(0, 16, (2, 8, 8, 1)).astype("float32")
    probabilities = np.asarray(model(images, training=False))
    assert probabilities.shape == (2, 10)
    assert probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            {"normalization": "batchnorm"},
            "normalization.*Received: normalization='batchnorm'",
        ),
        ({"dropout": 1.0}, "dropout.*Received: dropout=1.0"),
        ({"weight_decay": -1.0}, "weight_decay.*Received: weight_decay=-1.0"),
        ({"layer_library": "torch"}, "layer_library.*Received: layer_library='torch'"),
    ],
)
def test_invalid_common_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        get_model("lenet", (28, 28, 1), 10, **kwargs)


def test_invalid_shapes_and_classes():
    with pytest.raises(
        ValueError, match="input_shape.*Received: input_shape=\\(28, 28\\)"
    ):
        get_model("lenet", (28, 28), 10)
    with pytest.raises(ValueError, match="num_classes.*Received: num_classes=1"):
        get_model("lenet", (28, 28, 1), 1)
    with pytest.raises(ValueError, match="stem.*Received: stem='big'"):
        get_model("resnet18", (32, 32, 3), 10, stem="big")


def test_tiny_densenet():
    model = kerasdl.models.densenet(
        (8, 8, 1), 10, block_sizes=(2, 2), growth_rate=4, initial_filters=8
    )
    # 8 + 2*4 = 16 channels, transition to 8, + 2*4 = 16 channels.
    assert model.get_layer("final_act").output.shape == (None, 4, 4, 16)
    assert np.asarray(model(np.zeros((2, 8, 8, 1), "float32"))).shape == (2, 10)


def test_models_package_is_exported():
    assert kerasdl.models.get_model is get_model
