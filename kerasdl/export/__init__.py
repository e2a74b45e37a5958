"""Export trained models as versioned, servable SavedModels with a model card."""

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
