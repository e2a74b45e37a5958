"""AlexNet on sklearn's 8x8 digits.

    python -m kerasdl train alexnet --dataset digits     # or: python -m recipes.alexnet

The architecture is `kerasdl.models.alexnet`; this recipe is only its difference from
`ImageClassificationConfig`'s defaults.
"""

from recipes.image_classification import (
    ImageClassificationConfig,
    main,
    train_and_evaluate,  # noqa: F401
)

CONFIG = ImageClassificationConfig(
    model="alexnet",
    dataset="digits",
    epochs=15,
    learning_rate=1e-3,
)


def run(argv=None, prog=None) -> int:
    return main(CONFIG, argv, recipe="alexnet", prog=prog)


if __name__ == "__main__":
    raise SystemExit(run())
