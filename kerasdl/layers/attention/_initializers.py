"""Per-weight copies of an initializer, shared by the attention and Transformer layers.

A Keras initializer object is stateless: called twice with the same shape it
returns the same values (an unseeded one draws its seed once, when it is
made). A layer that hands one initializer object to several weights or
sublayers therefore starts them all equal, e.g. the query, key and value
kernels of an attention layer. `clone_initializer` gives every weight its own
copy.
"""

import zlib

import keras


def clone_initializer(initializer, name):
    """Returns a fresh copy of `initializer` for the weight or sublayer `name`.

    * Unseeded initializers are rebuilt from their config, so each copy draws
      its own random seed (what `keras.layers.MultiHeadAttention` does).
    * Initializers with an integer seed get a seed derived from it and `name`,
      so runs stay reproducible but two weights of one layer do not start
      equal. (Keras keeps the seed, and such weights start identical.)
    * Initializers seeded with a `keras.random.SeedGenerator` are returned as
      they are: the generator advances on every call.
    * Non-random initializers (`"zeros"`, `Constant`) are returned as they are.
    """
    if initializer is None:
        return None
    seed = getattr(initializer, "seed", None)
    if (
        isinstance(seed, keras.random.SeedGenerator)
        and getattr(initializer, "_init_seed", None) is seed
    ):
        return initializer
    config = initializer.get_config()
    if "seed" not in config:
        return initializer
    if isinstance(config["seed"], int) and not isinstance(config["seed"], bool):
        config["seed"] = derived_seed(config["seed"], name)
    return initializer.__class__.from_config(config)


def derived_seed(seed, name):
    """A reproducible int seed in `[0, 2**31)` made of `seed` and the string `name`."""
    return (seed * 1_000_003 + zlib.crc32(name.encode("utf-8"))) % (2**31)
