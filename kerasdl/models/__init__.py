"""kerasdl model zoo: Functional builders and a registry of named variants.

```python
import kerasdl
model = kerasdl.models.get_model("resnet18", input_shape=(8, 8, 1), num_classes=10,
                                 rescale=1 / 16)
sorted(kerasdl.models.MODELS)  # every registered name
```
"""

from kerasdl.models.registry import MODELS, get_model, register_model  # noqa: F401
from kerasdl.models.common import group_count  # noqa: F401
from kerasdl.models.lenet import lenet  # noqa: F401
from kerasdl.models.resnet import resnet  # noqa: F401
