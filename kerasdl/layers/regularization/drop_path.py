"""Stochastic depth: `DropPath` and its functional form `drop_path`, as in timm."""

import keras

from kerasdl.layers.regularization._build import build_at_init
from kerasdl.layers.regularization._rate import validate_rate


def drop_path(inputs, rate=0.0, training=False, seed=None):
    """Drops whole samples of a residual branch; the functional `DropPath`.

    In training, each sample of `inputs` is zeroed with probability `rate`
    and the kept samples are scaled by `1 / (1 - rate)`; otherwise `inputs`
    is returned unchanged.

    Args:
        inputs: a tensor whose first axis is the batch.
        rate: float in `[0, 1]`, the probability of dropping a sample; `1`
            drops them all. Defaults to `0.0`.
        training: bool, whether to drop. Defaults to `False`.
        seed: an int, a `keras.random.SeedGenerator` (use one inside layers
            so that each call draws a new mask), or `None`. Defaults to `None`.

    Returns:
        A tensor of the shape and dtype of `inputs`.

    Example:

    ```python
    x = x + drop_path(branch(x), rate=0.1, training=training, seed=generator)
    ```
    """
    rate = validate_rate(rate)
    if not training or rate == 0:
        return inputs
    if rate == 1:
        return keras.ops.zeros_like(inputs)
    # One draw per sample, broadcast over every other axis: (batch, 1, ..., 1).
    noise_shape = (keras.ops.shape(inputs)[0],) + (1,) * (len(inputs.shape) - 1)
    return keras.random.dropout(inputs, rate, noise_shape=noise_shape, seed=seed)


@keras.saving.register_keras_serializable(package="kerasdl")
class DropPath(keras.layers.Layer):
    """Drops whole samples: stochastic depth for residual branches.

    Put on the residual branch, `x + DropPath(rate)(branch(x))` skips the
    branch for a random `rate` fraction of the samples in each training
    step, so the network trains as an ensemble of shallower ones. Kept samples
    are scaled by `1 / (1 - rate)`, which keeps the expected output equal to
    the input; at inference the layer is the identity. `drop_path` is the same
    operation as a function.

    Args:
        rate: float in `[0, 1]`, the probability of dropping a sample; `1`
            drops them all.
        seed: optional int, the seed of the mask generator. Defaults to `None`.
        **kwargs: base layer arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: a tensor whose first axis is the batch, of rank 1 or more.
            Its Keras mask, if any, is passed on unchanged.
        training: bool, whether to drop samples. Defaults to `False`.

    Reference:
        - [Huang et al., 2016](https://arxiv.org/abs/1603.09382)

    Example:

    ```python
    inputs = keras.Input((16, 32))
    branch = keras.layers.Dense(32)(inputs)
    outputs = inputs + kerasdl.layers.DropPath(0.1)(branch)
    ```
    """

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = validate_rate(rate)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        # Element-wise, so an incoming Keras mask passes through, as Dropout's.
        self.supports_masking = True
        build_at_init(self)

    def call(self, inputs, training=False):
        return drop_path(inputs, self.rate, training, seed=self.seed_generator)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"rate": self.rate, "seed": self.seed})
        return config
