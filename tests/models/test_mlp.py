"""The deep MLP builder: layer names, residual shortcuts, initializers, training, saving."""

import keras
import numpy as np
import pytest

import kerasdl
from kerasdl.models import get_model, mlp


def digits_batch(batch_size=16, shape=(8, 8, 1)):
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 16, (batch_size, *shape)).astype("float32")
    return images, np.arange(batch_size) % 10


def hidden_activations(model, depth):
    """A model returning every hidden layer's post-activation output."""
    return keras.Model(
        model.input,
        [model.get_layer(f"activation_{k}").output for k in range(1, depth + 1)],
    )


def test_registered_and_builds_on_images_and_features():
    model = get_model("mlp", (8, 8, 1), 10, rescale=1 / 16, depth=3, width=32)
    assert model.name == "mlp"
    assert [layer.name for layer in model.layers] == [
        "images",
        "rescale",
        "flatten",
        "hidden_1",
        "activation_1",
        "hidden_2",
        "activation_2",
        "hidden_3",
        "activation_3",
        "logits",
        "probabilities",
    ]
    images, _ = digits_batch(2)
    probabilities = np.asarray(model(images, training=False))
    assert probabilities.shape == (2, 10) and probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    features = mlp((64,), 3, depth=1, width=8)
    assert np.asarray(features(np.ones((4, 64), "float32"))).shape == (4, 3)


def test_each_hidden_activation_is_a_layer_output():
    model = mlp((8, 8, 1), 10, depth=4, width=16, activation="relu")
    outputs = hidden_activations(model, 4)(digits_batch(4)[0])
    for k, output in enumerate(outputs, start=1):
        output = np.asarray(output)
        assert output.shape == (4, 16)
        assert output.min() >= 0.0  # post-ReLU
        dense = model.get_layer(f"hidden_{k}")
        assert dense.kernel.shape[-1] == 16


def test_parameter_count():
    # 784*256 + 256 + 256*256 + 256 + 256*10 + 10 (d2l's MLP with a second layer).
    model = mlp((28, 28, 1), 10, depth=2, width=256)
    assert model.count_params() == 269_322
    # Normalized layers drop the dense bias; batch norm adds a scale and an offset.
    normalized = mlp((28, 28, 1), 10, depth=2, width=256, normalization="batch")
    trainable = sum(int(np.prod(w.shape)) for w in normalized.trainable_weights)
    assert trainable == 269_322 + 2 * 256


@pytest.mark.parametrize(
    "normalization, layer_class",
    [
        ("batch", kerasdl.layers.BatchNormalization),
        ("layer", kerasdl.layers.LayerNormalization),
        ("group", kerasdl.layers.GroupNormalization),
    ],
)
def test_normalization_sits_between_dense_and_activation(normalization, layer_class):
    model = mlp((8, 8, 1), 10, depth=2, width=16, normalization=normalization)
    norm = model.get_layer("hidden_2_norm")
    assert isinstance(norm, layer_class)
    assert not model.get_layer("hidden_2").use_bias
    assert model.get_layer("activation_2").input is norm.output


def test_residual_shortcuts_only_between_equal_widths():
    widths = [16, 16, 8, 8, 8, 12]
    model = mlp((8, 8, 1), 10, depth=6, width=widths, residual=True)
    adds = [l for l in model.layers if isinstance(l, keras.layers.Add)]
    assert [l.name for l in adds] == ["hidden_2_add", "hidden_4_add", "hidden_5_add"]
    # The shortcut is the previous hidden layer's output, added before the activation.
    add = model.get_layer("hidden_4_add")
    assert add.input[0] is model.get_layer("activation_3").output
    assert model.get_layer("activation_4").input is add.output
    plain = mlp((8, 8, 1), 10, depth=6, width=widths)
    assert not [l for l in plain.layers if isinstance(l, keras.layers.Add)]


def test_residual_adds_the_input_of_the_layer():
    model = mlp((6,), 2, depth=2, width=6, residual=True, activation="linear")
    x = np.random.default_rng(1).normal(size=(3, 6)).astype("float32")
    first = np.asarray(hidden_activations(model, 2)(x)[0])
    second = np.asarray(hidden_activations(model, 2)(x)[1])
    dense = model.get_layer("hidden_2")
    expected = first + first @ np.asarray(dense.kernel) + np.asarray(dense.bias)
    np.testing.assert_allclose(second, expected, rtol=1e-5, atol=1e-5)


def test_zeros_initializer_gives_identical_hidden_units():
    model = mlp((8, 8, 1), 10, depth=3, width=8, initializer="zeros")
    for k in (1, 2, 3):
        kernel = np.asarray(model.get_layer(f"hidden_{k}").kernel)
        assert np.all(kernel == 0.0)
    for output in hidden_activations(model, 3)(digits_batch(4)[0]):
        output = np.asarray(output)
        np.testing.assert_array_equal(output, output[:, :1].repeat(8, axis=1))


def test_constant_initializer_keeps_units_identical_after_training():
    # Symmetry: units that start equal get equal gradients and stay equal.
    model = mlp(
        (8, 8, 1),
        10,
        depth=2,
        width=8,
        activation="tanh",
        initializer=keras.initializers.Constant(0.05),
        rescale=1 / 16,
    )
    model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    images, labels = digits_batch()
    for _ in range(3):
        model.train_on_batch(images, labels)
    for k in (1, 2):
        kernel = np.asarray(model.get_layer(f"hidden_{k}").kernel)
        assert not np.allclose(kernel, 0.05)  # it trained
        np.testing.assert_allclose(kernel, kernel[:, :1].repeat(8, axis=1), atol=1e-6)


@pytest.mark.parametrize("initializer", ["he_normal", "glorot_uniform"])
def test_random_initializer_draws_per_layer(initializer):
    keras.utils.set_random_seed(3)
    model = mlp((8,), 2, depth=3, width=8, initializer=initializer)
    kernels = [np.asarray(model.get_layer(f"hidden_{k}").kernel) for k in (2, 3)]
    assert not np.allclose(kernels[0], kernels[1])
    keras.utils.set_random_seed(3)
    again = mlp((8,), 2, depth=3, width=8, initializer=initializer)
    np.testing.assert_array_equal(kernels[0], again.get_layer("hidden_2").kernel)
    # A seeded initializer object: reproducible, yet different per layer.
    seeded = mlp((8,), 2, depth=3, width=8, initializer=keras.initializers.HeNormal(7))
    assert not np.allclose(
        seeded.get_layer("hidden_2").kernel, seeded.get_layer("hidden_3").kernel
    )


def test_a_few_steps_decrease_the_loss():
    keras.utils.set_random_seed(0)
    model = mlp((8, 8, 1), 10, depth=3, width=32, rescale=1 / 16, residual=True)
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    images, labels = digits_batch(32)
    before = model.evaluate(images, labels, verbose=0)
    model.fit(images, labels, epochs=5, batch_size=32, verbose=0)
    assert model.evaluate(images, labels, verbose=0) < before


def test_keras_round_trip(tmp_path):
    model = mlp(
        (8, 8, 1),
        10,
        depth=3,
        width=[16, 16, 8],
        residual=True,
        normalization="layer",
        dropout=0.2,
        weight_decay=1e-4,
        rescale=1 / 16,
    )
    images, _ = digits_batch(2)
    expected = np.asarray(model(images, training=False))
    model.save(tmp_path / "mlp.keras")
    reloaded = keras.saving.load_model(tmp_path / "mlp.keras")
    assert [l.name for l in reloaded.layers] == [l.name for l in model.layers]
    assert len(reloaded.losses) == len(model.losses) == 4  # 3 hidden + logits
    np.testing.assert_allclose(
        np.asarray(reloaded(images, training=False)), expected, atol=1e-6
    )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"depth": 0}, "depth.*Received: depth=0"),
        ({"depth": 2, "width": [8]}, "width.*Received: width=\\[8\\], depth=2"),
        ({"width": 0}, "width.*Received: width=0"),
        ({"normalization": "batchnorm"}, "Received: normalization='batchnorm'"),
        ({"dropout": 1.0}, "Received: dropout=1.0"),
    ],
)
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        mlp((8, 8, 1), 10, **kwargs)


def test_invalid_input_shape():
    with pytest.raises(ValueError, match="input_shape.*Received: input_shape=\\(\\)"):
        mlp((), 10)
