"""VGG-16 on sklearn's 8x8 digits.

    python -m kerasdl train vgg16 --dataset digits     # or: python -m kerasdl.recipes.vgg16

The architecture is `kerasdl.models.vgg`; this recipe is only its difference from
`ImageClassificationConfig`'s defaults.
"""

from kerasdl.tasks import image_classification as TASK
from kerasdl.tasks.command_line import run_recipe
from kerasdl.tasks.image_classification import ImageClassificationConfig

CONFIG = ImageClassificationConfig(
    model="vgg16",
    dataset="digits",
    epochs=15,
    learning_rate=1e-3,
)


def main(argv=None, prog=None) -> int:
    """Runs this recipe with command-line flags; returns the exit status."""
    return run_recipe(TASK, CONFIG, argv, recipe="vgg16", prog=prog)


if __name__ == "__main__":
    raise SystemExit(main())
