"""`.keras` round trips: kerasdl layers reload without `custom_objects`."""

import keras
import numpy as np
import pytest

from kerasdl.models import get_model


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("lenet", {"normalization": "group", "dropout": 0.2, "weight_decay": 1e-4}),
        ("resnet18", {"normalization": "batch", "weight_decay": 1e-4}),
    ],
)
def test_keras_round_trip(tmp_path, name, kwargs):
    model = get_model(name, (8, 8, 1), 10, rescale=1 / 16, **kwargs)
    images = np.random.default_rng(0).uniform(0, 16, (2, 8, 8, 1)).astype("float32")
    expected = np.asarray(model(images, training=False))
    path = tmp_path / f"{name}.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)  # no custom_objects
    assert [type(l) for l in reloaded.layers] == [type(l) for l in model.layers]
    assert len(reloaded.losses) == len(model.losses)
    np.testing.assert_allclose(
        np.asarray(reloaded(images, training=False)), expected, atol=1e-5
    )
