"""Parameter counts against the reference implementations (torchvision / the papers)."""

import numpy as np
import pytest

from kerasdl.models import get_model


def trainable_count(model):
    # torchvision counts parameters only; Keras' count_params() adds the
    # batch-norm moving statistics, which are buffers in PyTorch.
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


@pytest.mark.parametrize(
    "name, input_shape, num_classes, expected",
    [
        ("lenet", (28, 28, 1), 10, 61_706),  # d2l 6.6
        ("resnet18", (224, 224, 3), 1000, 11_689_512),  # torchvision resnet18
        ("resnet50", (224, 224, 3), 1000, 25_557_032),  # torchvision resnet50
        # VGG-16's 138,357,544 at 224x224 minus the first dense layer's
        # (7*7*512 - 512) * 4096 weights that a 32x32 input does not have
        # (the 224x224 count itself is the large test below).
        ("vgg16", (32, 32, 3), 1000, 138_357_544 - (7 * 7 * 512 - 512) * 4096),
    ],
)
def test_matches_reference(name, input_shape, num_classes, expected):
    model = get_model(name, input_shape, num_classes)
    assert trainable_count(model) == expected


@pytest.mark.large
@pytest.mark.parametrize(
    "name, expected",
    [
        ("vgg16", 138_357_544),
        ("vgg11", 132_863_336),
        ("resnet34", 21_797_672),
        ("densenet121", 7_978_856),
    ],
)
def test_matches_reference_at_224(name, expected):
    assert trainable_count(get_model(name, (224, 224, 3), 1000)) == expected
