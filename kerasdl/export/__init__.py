"""Export trained models as versioned, servable SavedModels with a model card."""

from kerasdl.export.model_directory import model_directory  # noqa: F401
from kerasdl.export.saved_model import (
    MODEL_CARD_PATH,  # noqa: F401
    ExportError,  # noqa: F401
    ExportResult,  # noqa: F401
    check_weights_finite,  # noqa: F401
    export_saved_model,  # noqa: F401
    list_versions,  # noqa: F401
    load_model_card,  # noqa: F401
    next_version,  # noqa: F401
    rename_into_place,  # noqa: F401
)
from kerasdl.export.signatures import export_signatures  # noqa: F401
from kerasdl.export.text_classifier import export_text_classifier  # noqa: F401
from kerasdl.export.translator import (
    Translator,  # noqa: F401
    export_translator,  # noqa: F401
)
