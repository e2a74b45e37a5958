"""kerasdl model zoo: Functional builders and a registry of named variants.

```python
import kerasdl
model = kerasdl.models.get_model("resnet18", input_shape=(8, 8, 1), num_classes=10,
                                 rescale=1 / 16)
sorted(kerasdl.models.MODELS)  # every registered name
```

Conventions shared by every builder (stems, normalization options, weight decay,
the float32 softmax output) are documented in `kerasdl.models.common`.
"""

from kerasdl.models.alexnet import alexnet  # noqa: F401
from kerasdl.models.cifar_resnet import cifar_resnet  # noqa: F401
from kerasdl.models.common import get_layer_library, group_count  # noqa: F401
from kerasdl.models.densenet import densenet  # noqa: F401
from kerasdl.models.ensemble import MajorityVote, ensemble  # noqa: F401
from kerasdl.models.googlenet import googlenet  # noqa: F401
from kerasdl.models.language_model_ensemble import LanguageModelEnsemble  # noqa: F401
from kerasdl.models.lenet import lenet  # noqa: F401
from kerasdl.models.mlp import mlp  # noqa: F401
from kerasdl.models.ngram import KneserNeyLanguageModel  # noqa: F401
from kerasdl.models.nin import nin  # noqa: F401
from kerasdl.models.registry import (  # noqa: F401
    LANGUAGE_MODELS,
    MODELS,
    get_language_model,
    get_model,
    register_language_model,
    register_model,
)
from kerasdl.models.resnet import resnet  # noqa: F401
from kerasdl.models.rnn_language_model import (  # noqa: F401
    RNNLanguageModel,
    StatefulRNNTrainer,
    rnn_language_model,
)
from kerasdl.models.seq2seq import Seq2SeqAttention  # noqa: F401
from kerasdl.models.text_classifier import (  # noqa: F401
    rnn_text_classifier,
    transformer_text_classifier,
)
from kerasdl.models.transformer_language_model import (  # noqa: F401
    TransformerLanguageModel,
    transformer_language_model,
)
from kerasdl.models.transformer_translator import TransformerTranslator  # noqa: F401
from kerasdl.models.vgg import vgg  # noqa: F401
