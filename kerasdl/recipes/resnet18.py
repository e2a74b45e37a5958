"""ResNet-18 on sklearn's 8x8 digits.

    python -m kerasdl train resnet18 --dataset digits     # or: python -m kerasdl.recipes.resnet18

The architecture is `kerasdl.models.resnet`; this recipe is only its difference from
`ImageClassificationConfig`'s defaults.
"""

from kerasdl.tasks import image_classification as TASK
from kerasdl.tasks.command_line import run_recipe
from kerasdl.tasks.image_classification import ImageClassificationConfig

CONFIG = ImageClassificationConfig(
    model="resnet18",
    dataset="digits",
    epochs=10,
    learning_rate=1e-3,
)


def main(argv=None, prog=None) -> int:
    """Runs this recipe with command-line flags; returns the exit status."""
    return run_recipe(TASK, CONFIG, argv, recipe="resnet18", prog=prog)


if __name__ == "__main__":
    raise SystemExit(main())
