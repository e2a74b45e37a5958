"""Switching a built model's batch normalization to synchronized statistics."""

from __future__ import annotations


def synchronize_batch_norm(model):
    """Returns a copy of the Functional `model` whose BatchNormalization layers
    compute their batch statistics over all replicas (`synchronized=True`).

    Setting the attribute on built layers is not enough (Keras reads it when the
    layer is called in a traced step, but the layer config and any saved copy
    would still say `False`), so the model is rebuilt with `keras.models.clone_model`
    from modified layer configs. Call it inside `strategy.scope()`, before `compile`.
    Layers without a `synchronized` argument (other normalizations) are cloned as
    they are. Returns `model` itself when it has no batch normalization.
    """
    import keras

    def is_batch_norm(layer):
        return (
            "synchronized" in layer.get_config()
            and "BatchNormalization" in type(layer).__name__
        )

    if not any(is_batch_norm(layer) for layer in model.layers):
        return model

    def clone(layer):
        config = layer.get_config()
        if is_batch_norm(layer):
            config["synchronized"] = True
        return layer.__class__.from_config(config)

    clone_model = keras.models.clone_model(model, clone_function=clone)
    clone_model.set_weights(model.get_weights())
    return clone_model
