"""The model registry: name -> builder, read by the CLI, the recipes and the tests."""

MODELS = {}


def register_model(name, builder=None, /, **defaults):
    """Registers `builder` under `name`, optionally with fixed keyword arguments.

    A named variant is the family builder with a few arguments filled in, the way
    timm names `resnet18` = basic blocks + stage sizes (2, 2, 2, 2):

    ```python
    register_model("resnet18", resnet, block="basic", stage_sizes=(2, 2, 2, 2))
    ```

    Used bare (`@register_model("lenet")`) it decorates a builder function.

    Args:
        name: the registry name, e.g. `"resnet18"`.
        builder: the family builder. Leave out to use as a decorator.
        **defaults: keyword arguments the variant fixes; callers may still
            override them.

    Returns:
        The registered variant builder (or the decorator).
    """
    if name in MODELS:
        raise ValueError(f"A model named {name!r} is already registered.")

    def register(family_builder):
        def variant(input_shape, num_classes, **kwargs):
            return family_builder(input_shape, num_classes, **{**defaults, **kwargs})

        variant.__name__ = name
        variant.__qualname__ = name
        variant.__doc__ = (
            f"`{name}`: `{family_builder.__name__}` with "
            + (", ".join(f"{k}={v!r}" for k, v in defaults.items()) or "its defaults")
            + f".\n\n{family_builder.__doc__ or ''}"
        )
        variant.family = family_builder
        variant.defaults = dict(defaults)
        MODELS[name] = variant
        return family_builder if builder is None else variant

    if builder is None:
        return register
    return register(builder)


def get_model(name, input_shape, num_classes, /, **kwargs):
    """Builds the registered model `name`.

    Args:
        name: a key of `kerasdl.models.MODELS`, e.g. `"lenet"` or `"resnet18"`.
        input_shape: image shape without the batch axis, e.g. `(28, 28, 1)`.
        num_classes: number of output classes.
        **kwargs: passed to the builder (`normalization`, `dropout`,
            `weight_decay`, `rescale`, `input_dtype`, `name`, family options).

    Returns:
        A Functional `keras.Model` that outputs float32 softmax probabilities.

    Raises:
        ValueError: `name` is not registered; the message lists the known names.
    """
    if name not in MODELS:
        raise ValueError(
            f"Unknown model {name!r}. Known models: {', '.join(sorted(MODELS))}."
        )
    return MODELS[name](input_shape, num_classes, **kwargs)


# Language models ---------------------------------------------------------------------
# Builders `(vocabulary_size, **kwargs) -> keras.Model` of models that follow the
# language-model protocol (`call`, `initial_cache`, `call_with_cache`; see
# `kerasdl.models.RNNLanguageModel`). Kept apart from `MODELS`, whose builders
# classify images (`(input_shape, num_classes)`).
LANGUAGE_MODELS = {}


def register_language_model(name, builder, /, **defaults):
    """Registers a language-model builder under `name`, with fixed arguments.

    ```python
    register_language_model("gru_lm", rnn_language_model, cell="gru")
    ```

    Args:
        name: the registry name, e.g. `"lstm_lm"`.
        builder: the family builder, `(vocabulary_size, **kwargs) -> keras.Model`.
        **defaults: keyword arguments the variant fixes; callers may still
            override them.

    Returns:
        The registered variant builder.
    """
    if name in LANGUAGE_MODELS:
        raise ValueError(f"A language model named {name!r} is already registered.")

    def variant(vocabulary_size, **kwargs):
        return builder(vocabulary_size, **{**defaults, **kwargs})

    variant.__name__ = variant.__qualname__ = name
    variant.__doc__ = (
        f"`{name}`: `{builder.__name__}` with "
        + (", ".join(f"{k}={v!r}" for k, v in defaults.items()) or "its defaults")
        + f".\n\n{builder.__doc__ or ''}"
    )
    variant.family = builder
    variant.defaults = dict(defaults)
    LANGUAGE_MODELS[name] = variant
    return variant


def get_language_model(name, vocabulary_size, /, **kwargs):
    """Builds the registered language model `name`.

    Args:
        name: a key of `kerasdl.models.LANGUAGE_MODELS`, e.g. `"lstm_lm"`.
        vocabulary_size: number of token ids, padding (0) and unknown (1)
            included.
        **kwargs: passed to the builder (`units`, `num_layers`, `dropout`, ...).

    Returns:
        A `keras.Model` following the language-model protocol.

    Raises:
        ValueError: `name` is not registered; the message lists the known names.
    """
    if name not in LANGUAGE_MODELS:
        raise ValueError(
            f"Unknown language model {name!r}. Known language models: "
            f"{', '.join(sorted(LANGUAGE_MODELS))}."
        )
    return LANGUAGE_MODELS[name](vocabulary_size, **kwargs)
