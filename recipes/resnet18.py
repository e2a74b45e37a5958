"""ResNet-18 on sklearn's 8x8 digits.

    python -m kerasdl train resnet18 --dataset digits     # or: python -m recipes.resnet18

The architecture is `kerasdl.models.resnet`; this recipe is only its difference from
`ImageClassificationConfig`'s defaults.
"""

from recipes.image_classification import (
    ImageClassificationConfig,
    main,
    train_and_evaluate,  # noqa: F401
)

CONFIG = ImageClassificationConfig(
    model="resnet18",
    dataset="digits",
    epochs=10,
    learning_rate=1e-3,
)


def run(argv=None, prog=None) -> int:
    return main(CONFIG, argv, recipe="resnet18", prog=prog)


if __name__ == "__main__":
    raise SystemExit(run())
