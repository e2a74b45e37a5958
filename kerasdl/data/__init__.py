"""kerasdl data sets: `load_image_dataset(...)`, the text and language-modelling loaders, and the errors they raise."""

from kerasdl.data.errors import (
    DatasetFormatError,  # noqa: F401
    DatasetNotFoundError,  # noqa: F401
)
from kerasdl.data.image_dataset import (
    IMAGE_DATASETS,  # noqa: F401
    ImageDataset,  # noqa: F401
    load_image_dataset,  # noqa: F401
)
from kerasdl.data.text_classification import (
    TEXT_DATASETS,  # noqa: F401
    TextDataset,  # noqa: F401
    load_text_dataset,  # noqa: F401
)
from kerasdl.data.text_translation import (
    TRANSLATION_DATASETS,  # noqa: F401
    TranslationDataset,  # noqa: F401
    load_translation_dataset,  # noqa: F401
)
from kerasdl.data.timemachine import (
    LANGUAGE_MODELING_DATASETS,  # noqa: F401
    LanguageModelingDataset,  # noqa: F401
    Vocabulary,  # noqa: F401
    load_language_modeling_dataset,  # noqa: F401
    soft_target_batches,  # noqa: F401
)
