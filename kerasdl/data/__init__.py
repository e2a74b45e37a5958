"""kerasdl data sets: `load_image_dataset(...)` and the errors its loaders raise."""

from kerasdl.data.errors import DatasetFormatError  # noqa: F401
from kerasdl.data.errors import DatasetNotFoundError  # noqa: F401
from kerasdl.data.image_dataset import IMAGE_DATASETS  # noqa: F401
from kerasdl.data.image_dataset import ImageDataset  # noqa: F401
from kerasdl.data.image_dataset import load_image_dataset  # noqa: F401
