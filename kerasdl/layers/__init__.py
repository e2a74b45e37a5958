"""kerasdl layers: `from kerasdl.layers import GroupNormalization`."""

from kerasdl.layers.attention import *  # noqa: F401,F403
from kerasdl.layers.normalization import *  # noqa: F401,F403
from kerasdl.layers.regularization import *  # noqa: F401,F403
from kerasdl.layers.transformer import *  # noqa: F401,F403
