"""CIFAR ResNet-20/32/56 and their plain twins (He et al., 2016, section 4.2)."""

import keras
import numpy as np
import pytest

from kerasdl.models import MODELS, cifar_resnet, get_model


def trainable_count(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def add_layers(model):
    return [l for l in model.layers if isinstance(l, keras.layers.Add)]


def test_registry_names():
    for depth in (20, 32, 56):
        assert MODELS[f"resnet{depth}"].defaults == {"depth": depth, "residual": True}
        assert MODELS[f"plain{depth}"].defaults == {"depth": depth, "residual": False}


@pytest.mark.parametrize(
    "input_shape, final_size",
    [((8, 8, 1), 2), ((28, 28, 1), 7), ((32, 32, 3), 8)],
)
def test_builds_on_digits_mnist_and_cifar(input_shape, final_size):
    model = cifar_resnet(input_shape, 10, depth=8, rescale=1 / 255)
    assert model.name == "resnet8"
    assert model.get_layer("stage3_block1_out").output.shape == (
        None,
        final_size,
        final_size,
        64,
    )
    images = np.random.default_rng(0).uniform(0, 255, (2, *input_shape))
    probabilities = np.asarray(model(images.astype("float32"), training=False))
    assert probabilities.shape == (2, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize(
    "name, expected",
    [
        # He et al. Table 6: ResNet-20 0.27M, -32 0.46M, -56 0.85M parameters
        # (the exact counts of the option-A PyTorch reimplementations).
        ("resnet20", 269_722),
        ("plain20", 269_722),
        ("resnet32", 464_154),
        ("resnet56", 853_018),
    ],
)
def test_parameter_counts(name, expected):
    assert trainable_count(get_model(name, (32, 32, 3), 10)) == expected


def test_projection_shortcuts_add_two_strided_1x1_convolutions():
    model = cifar_resnet((32, 32, 3), 10, depth=20, shortcut="projection")
    # (16*32 + 2*32) + (32*64 + 2*64): 1x1 kernels and their batch norms.
    assert trainable_count(model) == 269_722 + 2_752


@pytest.mark.parametrize("depth", [20, 32, 56])
def test_layer_counts_and_plain_twins_have_no_shortcuts(depth):
    n = (depth - 2) // 6
    resnet = get_model(f"resnet{depth}", (8, 8, 1), 10)
    plain = get_model(f"plain{depth}", (8, 8, 1), 10)
    assert (resnet.name, plain.name) == (f"resnet{depth}", f"plain{depth}")
    for model in (resnet, plain):
        convs = [l for l in model.layers if isinstance(l, keras.layers.Conv2D)]
        dense = [l for l in model.layers if isinstance(l, keras.layers.Dense)]
        assert len(convs) + len(dense) == depth  # 6n + 2 weighted layers
    assert len(add_layers(resnet)) == 3 * n
    assert not add_layers(plain)
    assert [l.name for l in plain.layers if "shortcut" in l.name] == []


def test_zero_pad_shortcut_is_subsampled_identity_with_zero_channels():
    model = cifar_resnet((8, 8, 1), 10, depth=8)
    probe = keras.Model(
        model.input,
        [
            model.get_layer("stage1_block1_out").output,
            model.get_layer("stage2_block1_shortcut_merge").output,
        ],
    )
    images = np.random.default_rng(0).normal(size=(2, 8, 8, 1)).astype("float32")
    features, shortcut = (np.asarray(t) for t in probe(images, training=False))
    assert shortcut.shape == (2, 4, 4, 32)
    np.testing.assert_array_equal(shortcut[..., 8:24], features[:, ::2, ::2, :])
    assert not shortcut[..., :8].any() and not shortcut[..., 24:].any()


def test_a_few_steps_decrease_the_loss():
    keras.utils.set_random_seed(0)
    model = cifar_resnet((8, 8, 1), 10, depth=8, rescale=1 / 16)
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 16, (16, 8, 8, 1)).astype("float32")
    labels = np.arange(16) % 10
    before = model.evaluate(images, labels, verbose=0)
    model.fit(images, labels, epochs=5, batch_size=16, verbose=0)
    assert model.evaluate(images, labels, verbose=0) < before


@pytest.mark.parametrize("residual", [True, False])
def test_keras_round_trip(tmp_path, residual):
    model = cifar_resnet(
        (8, 8, 1), 10, depth=8, residual=residual, weight_decay=1e-4, rescale=1 / 16
    )
    images = np.random.default_rng(0).uniform(0, 16, (2, 8, 8, 1)).astype("float32")
    expected = np.asarray(model(images, training=False))
    model.save(tmp_path / "model.keras")
    reloaded = keras.saving.load_model(tmp_path / "model.keras")
    assert [type(l) for l in reloaded.layers] == [type(l) for l in model.layers]
    assert len(reloaded.losses) == len(model.losses) == 8  # 7 convs + logits
    np.testing.assert_allclose(
        np.asarray(reloaded(images, training=False)), expected, atol=1e-5
    )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"depth": 21}, "depth.*6n \\+ 2.*Received: depth=21"),
        ({"depth": 2}, "Received: depth=2"),
        ({"shortcut": "conv"}, "shortcut.*Received: shortcut='conv'"),
        ({"normalization": "batchnorm"}, "Received: normalization='batchnorm'"),
    ],
)
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        cifar_resnet((32, 32, 3), 10, **kwargs)
