"""The dropout family has no weights: built at construction, unless subclassed."""

import keras


def build_at_init(layer):
    """Marks `layer` as built, unless its class overrides `build()`.

    A layer without state needs no `build()`, so it is ready as soon as it is
    constructed, as Keras' own stateless layers are. A subclass that defines
    its own `build()` (to create weights, say) must still have it called, on
    the first call with the input shape, so such a layer is left unbuilt.
    """
    if type(layer).build is keras.layers.Layer.build:
        layer.built = True
