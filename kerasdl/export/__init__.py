"""Export trained models as versioned, servable SavedModels with a model card."""

from kerasdl.export.saved_model import MODEL_CARD_PATH  # noqa: F401
from kerasdl.export.saved_model import ExportError  # noqa: F401
from kerasdl.export.saved_model import ExportResult  # noqa: F401
from kerasdl.export.saved_model import check_weights_finite  # noqa: F401
from kerasdl.export.saved_model import export_saved_model  # noqa: F401
from kerasdl.export.saved_model import list_versions  # noqa: F401
from kerasdl.export.saved_model import load_model_card  # noqa: F401
from kerasdl.export.saved_model import next_version  # noqa: F401
