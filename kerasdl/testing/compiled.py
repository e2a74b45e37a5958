"""`compiled`: a function traced and compiled the way the active backend does it."""

from __future__ import annotations

from collections.abc import Callable


def compiled(function: Callable, jit_compile: bool = False) -> Callable:
    """Returns `function` as the active Keras backend compiles it.

    TensorFlow: `tf.function(function, jit_compile=jit_compile)`; JAX:
    `jax.jit(function)` (always XLA); PyTorch and NumPy run eagerly, so the
    function is returned unchanged. Tests use it to check that a layer gives the
    same result traced as eager without importing a particular backend.

    Args:
        function: the callable to compile.
        jit_compile: on TensorFlow, whether to compile with XLA. Defaults to
            `False`.

    Returns:
        The compiled callable.

    Example:

    ```python
    layer = kerasdl.layers.LayerNormalization()
    x = np.ones((2, 3), "float32")
    np.testing.assert_allclose(compiled(layer)(x), layer(x))
    ```
    """
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(function, jit_compile=jit_compile)
    if backend == "jax":
        import jax

        return jax.jit(function)
    return function
