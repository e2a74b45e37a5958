"""A shared harness for testing Keras layers, in the spirit of Keras' own
`LayerTestCase.run_layer_test`, written against public Keras APIs only."""

import os
import tempfile

import keras
import numpy as np


def _random_inputs(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    if "int" in str(dtype):
        return rng.integers(0, 10, size=shape).astype(dtype)
    return rng.normal(size=shape).astype(dtype)


def _as_numpy(x):
    return keras.ops.convert_to_numpy(x)


def _wrap(layer, input_shape, input_dtype):
    inputs = keras.Input(batch_shape=input_shape, dtype=input_dtype)
    return keras.Model(inputs, layer(inputs))


def run_layer_test(
    layer_cls,
    init_kwargs,
    input_shape,
    input_dtype="float32",
    expected_output_shape=None,
    expected_num_trainable_weights=None,
    expected_num_non_trainable_weights=None,
    run_training_step=True,
    run_mixed_precision=True,
    run_saved_model=True,
    atol=1e-5,
):
    """Checks the contract every kerasdl layer keeps.

    In order: the output shape (eager and symbolic), the weight counts,
    `get_config` / `from_config` round trip, a `.keras` save and reload inside a
    Functional model with identical outputs, a TensorFlow SavedModel export and
    reload with identical outputs, one `fit` step that changes the trainable
    weights and keeps the loss finite, and a `mixed_float16` forward pass whose
    output is float16 and finite.

    Args:
        layer_cls: the layer class.
        init_kwargs: dict of constructor arguments.
        input_shape: full input shape, batch dimension included.
        input_dtype: dtype of the random inputs. Defaults to `"float32"`.
        expected_output_shape: tuple, or `None` to skip the check.
        expected_num_trainable_weights: int, or `None` to skip.
        expected_num_non_trainable_weights: int, or `None` to skip.
        run_training_step: whether to fit one step. Defaults to `True`.
        run_mixed_precision: whether to check `mixed_float16`. Defaults to `True`.
        run_saved_model: whether to export and reload a SavedModel (TensorFlow
            backend only). Defaults to `True`.
        atol: tolerance for the reload comparisons. Defaults to `1e-5`.

    Example:

    ```python
    run_layer_test(
        kerasdl.layers.GroupNormalization,
        {"groups": 2},
        input_shape=(2, 4, 4, 8),
        expected_output_shape=(2, 4, 4, 8),
        expected_num_trainable_weights=2,
    )
    ```
    """
    x = _random_inputs(input_shape, input_dtype)

    # Shapes: eager call and symbolic output spec.
    layer = layer_cls(**init_kwargs)
    y = layer(x)
    if expected_output_shape is not None:
        if tuple(y.shape) != tuple(expected_output_shape):
            raise AssertionError(
                f"Eager output shape {tuple(y.shape)} != {expected_output_shape}"
            )
        spec = layer_cls(**init_kwargs).compute_output_spec(
            keras.KerasTensor(input_shape, dtype=input_dtype)
        )
        if tuple(spec.shape) != tuple(expected_output_shape):
            raise AssertionError(
                f"Symbolic output shape {tuple(spec.shape)} != {expected_output_shape}"
            )

    # Weight counts.
    if (
        expected_num_trainable_weights is not None
        and len(layer.trainable_weights) != expected_num_trainable_weights
    ):
        raise AssertionError(
            f"{len(layer.trainable_weights)} trainable weights, expected "
            f"{expected_num_trainable_weights}"
        )
    if (
        expected_num_non_trainable_weights is not None
        and len(layer.non_trainable_weights) != expected_num_non_trainable_weights
    ):
        raise AssertionError(
            f"{len(layer.non_trainable_weights)} non-trainable weights, "
            f"expected {expected_num_non_trainable_weights}"
        )

    # Config round trip: every constructor argument survives.
    config = layer.get_config()
    for key in init_kwargs:
        if key not in config:
            raise AssertionError(f"get_config() lacks constructor argument {key!r}")
    revived = layer_cls.from_config(config)
    if revived.get_config() != config:
        raise AssertionError(
            f"from_config(get_config()) changed the config:\n{config}\n"
            f"!= {revived.get_config()}"
        )
    serialized = keras.saving.serialize_keras_object(layer)
    deserialized = keras.saving.deserialize_keras_object(serialized)
    if type(deserialized) is not layer_cls:
        raise AssertionError("serialize/deserialize did not give the same class")

    # .keras round trip inside a Functional model.
    model = _wrap(layer_cls(**init_kwargs), input_shape, input_dtype)
    expected = _as_numpy(model(x, training=False))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        model.save(path)
        reloaded = keras.saving.load_model(path)
        np.testing.assert_allclose(
            _as_numpy(reloaded(x, training=False)), expected, atol=atol, rtol=atol
        )

        # SavedModel export and reload.
        if run_saved_model and keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            export_dir = os.path.join(tmp, "export")
            model.export(export_dir, verbose=False)
            restored = tf.saved_model.load(export_dir)
            np.testing.assert_allclose(
                restored.serve(x).numpy(), expected, atol=atol, rtol=atol
            )

    # One training step changes the trainable weights and keeps the loss finite.
    if run_training_step and "float" in str(input_dtype):
        model = _wrap(layer_cls(**init_kwargs), input_shape, input_dtype)
        trainable = model.trainable_weights
        if trainable:
            before = [_as_numpy(w).copy() for w in trainable]
            model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
            target = _random_inputs(tuple(model.output.shape), "float32", seed=1)
            history = model.fit(
                x, target, batch_size=input_shape[0], epochs=1, verbose=0
            )
            if not np.isfinite(history.history["loss"][0]):
                raise AssertionError("Training loss is not finite")
            after = [_as_numpy(w) for w in trainable]
            if all(np.array_equal(b, a) for b, a in zip(before, after)):
                raise AssertionError("One training step changed no trainable weight")

    # Mixed precision: output in the compute dtype, finite.
    if run_mixed_precision and "float" in str(input_dtype):
        kwargs = dict(init_kwargs, dtype="mixed_float16")
        mp_layer = layer_cls(**kwargs)
        y = mp_layer(x * 100.0, training=True)
        if keras.backend.standardize_dtype(y.dtype) != "float16":
            raise AssertionError(
                f"mixed_float16 output dtype is {y.dtype}, expected float16"
            )
        if not np.all(np.isfinite(_as_numpy(y).astype("float32"))):
            raise AssertionError("mixed_float16 output has non-finite values")
