"""kerasdl layers: `from kerasdl.layers import GroupNormalization`."""

from kerasdl.layers.attention import *
from kerasdl.layers.convolution import *
from kerasdl.layers.merging import *
from kerasdl.layers.normalization import *
from kerasdl.layers.recurrent import *
from kerasdl.layers.regularization import *
from kerasdl.layers.transformer import *
