"""Sublayer factories shared by the Transformer blocks."""

from kerasdl.layers.normalization.layer_normalization import LayerNormalization


def layer_normalization(epsilon, dtype, name):
    """A named kerasdl `LayerNormalization` sublayer in the parent's dtype policy."""
    return LayerNormalization(epsilon=epsilon, dtype=dtype, name=name)


def validate_block_args(intermediate_dim, num_heads, dropout, layer_norm_epsilon):
    if not isinstance(intermediate_dim, int) or intermediate_dim < 1:
        raise ValueError(
            "`intermediate_dim` must be a positive int. "
            f"Received: intermediate_dim={intermediate_dim!r}"
        )
    if not isinstance(num_heads, int) or num_heads < 1:
        raise ValueError(
            f"`num_heads` must be a positive int. Received: num_heads={num_heads!r}"
        )
    if not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
        raise ValueError(
            f"`dropout` must be a float in [0, 1). Received: dropout={dropout!r}"
        )
    if not isinstance(layer_norm_epsilon, (int, float)) or layer_norm_epsilon <= 0:
        raise ValueError(
            "`layer_norm_epsilon` must be a positive float. "
            f"Received: layer_norm_epsilon={layer_norm_epsilon!r}"
        )


def check_hidden_dim(hidden_dim, num_heads):
    if hidden_dim is None or hidden_dim % num_heads:
        raise ValueError(
            "The input's last dimension must be known and divisible by "
            f"num_heads={num_heads}. Received: hidden_dim={hidden_dim}"
        )
