import numbers

import keras

from kerasdl.layers.regularization._build import build_at_init
from kerasdl.layers.regularization._rate import validate_rate


@keras.saving.register_keras_serializable(package="kerasdl")
class Dropout(keras.layers.Layer):
    """Applies inverted dropout to the input.

    During training each input unit is set to 0 with probability `rate`, and
    the units that are kept are scaled by `1 / (1 - rate)`, so the expected
    value of every unit is unchanged: `E[dropout(x)] = x`. At inference
    (`training=False`, as in `model.predict` and `model.evaluate`) the layer is
    the identity, and no rescaling is needed at test time.

    The masks come from a `keras.random.SeedGenerator` owned by the layer, so
    a fixed `seed` gives the same sequence of masks on every run, and the layer
    works inside `jit_compile`d and `tf.function` training steps: the generator
    state is a variable that advances after every call.

    The layer has no weights; `trainable=False` does not change what it does.

    Args:
        rate: float in `[0, 1]`, the fraction of input units to drop; `1`
            drops every unit (the output is zeros in training).
        noise_shape: optional tuple or list of ints (or `None` entries) giving the
            shape of the binary mask that multiplies the input; a `None` entry
            takes the input's size on that axis. For inputs of shape
            `(batch, timesteps, features)`, `noise_shape=(None, 1, None)` drops
            the same features at every timestep. Defaults to `None`, one
            independent draw per unit.
        seed: optional int, the seed of the mask generator. Defaults to `None`
            (a random seed, unless `keras.utils.set_random_seed` was called).
        **kwargs: base layer arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: a tensor of any rank.
        training: bool, whether to drop units (`True`) or pass the input
            through (`False`). Defaults to `False`; `fit` passes `True`.

    Reference:
        - [Srivastava et al., 2014](https://jmlr.org/papers/v15/srivastava14a.html)

    Example:

    ```python
    layer = kerasdl.layers.Dropout(0.5, seed=0)
    x = np.ones((2, 4), "float32")
    layer(x, training=True)  # about half zeros, the rest equal to 2.0
    layer(x)                 # x unchanged
    ```
    """

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = validate_rate(rate)
        self.noise_shape = _validate_noise_shape(noise_shape)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True
        build_at_init(self)

    def call(self, inputs, training=False):
        if not training or self.rate == 0:
            return inputs
        if self.rate == 1:
            return keras.ops.zeros_like(inputs)
        if self.noise_shape is not None:
            _check_noise_shape_fits(self.noise_shape, inputs.shape)
        return keras.random.dropout(
            inputs, self.rate, noise_shape=self.noise_shape, seed=self.seed_generator
        )

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "rate": self.rate,
                "noise_shape": self.noise_shape,
                "seed": self.seed,
            }
        )
        return config


def _check_noise_shape_fits(noise_shape, input_shape):
    """Raises a `ValueError` unless `noise_shape` broadcasts to `input_shape`.

    Without it, a wrong `noise_shape` fails deep inside the backend's kernels
    (TensorFlow's `SelectV2`, say) with a message that names neither.
    """
    fits = len(noise_shape) == len(input_shape) and all(
        dim is None or size is None or dim in (1, size)
        for dim, size in zip(noise_shape, input_shape)
    )
    if not fits:
        raise ValueError(
            "`noise_shape` must have one entry per input axis, each `None`, 1 or "
            f"the input's size on that axis. Received: noise_shape={noise_shape} "
            f"for inputs of shape {tuple(input_shape)}"
        )


def _validate_noise_shape(noise_shape):
    if noise_shape is None:
        return None
    # Keras raises ValueError for every bad `noise_shape`, of a wrong type too,
    # and its tests check that type: so do we.
    prefix = "Invalid value received for argument `noise_shape`."
    if isinstance(noise_shape, (str, bytes)):
        raise ValueError(  # noqa: TRY004
            f"{prefix} Expected a tuple or list of integers (or None entries), "
            f"one per input axis. Received: noise_shape={noise_shape!r}"
        )
    try:
        dims = tuple(noise_shape)
    except TypeError:
        raise ValueError(
            f"{prefix} Expected an iterable of integers (e.g. a tuple or list), "
            f"one per input axis. Received: noise_shape={noise_shape!r}"
        ) from None
    for index, dim in enumerate(dims):
        if dim is None:
            continue
        if isinstance(dim, bool) or not isinstance(dim, numbers.Integral):
            raise ValueError(  # noqa: TRY004
                f"{prefix} Expected all elements to be integers or None. "
                f"Received: noise_shape={noise_shape!r}, whose element {index} "
                f"is {dim!r} of type {type(dim).__name__}"
            )
        if dim <= 0:
            raise ValueError(
                f"{prefix} Expected all dimensions to be positive integers or "
                f"None. Received: noise_shape={noise_shape!r}, whose element "
                f"{index} is {dim}"
            )
    return tuple(None if dim is None else int(dim) for dim in dims)
