import keras

from kerasdl.layers.attention._masking import keras_mask_of
from kerasdl.layers.transformer._block import TransformerBlock
from kerasdl.layers.transformer._sublayers import check_hidden_dim


@keras.saving.register_keras_serializable(package="kerasdl")
class TransformerEncoder(TransformerBlock):
    """One Transformer encoder block: self-attention and a feed-forward network.

    Each of the two sublayers is wrapped in "add & norm". By default
    (`normalize_first=False`) that is the post-norm block of the original
    paper, `x = LayerNorm(x + Dropout(Sublayer(x)))`:

    ```
    x = LayerNorm(x + Dropout(MultiHeadAttention(x, x)))
    x = LayerNorm(x + Dropout(Dense(d)(Dense(intermediate_dim, activation)(x))))
    ```

    With `normalize_first=True` it is the pre-norm block used by GPT-2 and most
    deep Transformers, `x = x + Dropout(Sublayer(LayerNorm(x)))`, which trains
    more stably without warm-up but needs a final `LayerNorm` after the stack.

    The output has the input's shape `(batch, length, d)`; `d` must be divisible
    by `num_heads` (each head has width `d // num_heads`). Padding positions
    (the input's Keras mask, or `padding_mask`) are never attended to, so
    changing a padded token does not change any unpadded output.

    Args:
        intermediate_dim: int, hidden width of the feed-forward network.
        num_heads: int, number of attention heads.
        dropout: float in `[0, 1)`, dropout after the attention and the
            feed-forward network (and on the attention weights). Defaults to `0.0`.
        activation: activation of the feed-forward hidden layer. Defaults to
            `"relu"`.
        layer_norm_epsilon: float, epsilon of the layer normalizations.
            Defaults to `1e-5`.
        kernel_initializer: initializer of the dense kernels (each kernel
            gets its own copy). Defaults to `"glorot_uniform"`.
        bias_initializer: initializer of the biases. Defaults to `"zeros"`.
        normalize_first: bool, pre-norm instead of post-norm. Defaults to `False`.
        **kwargs: base layer arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: `(batch, length, d)`.
        padding_mask: optional boolean `(batch, length)`, `True` for real tokens.
            Defaults to the input's Keras mask.
        attention_mask: optional boolean `(batch, length, length)`, or per
            head `(batch, num_heads, length, length)`.
        training: bool, whether dropout is active.
        return_attention_scores: bool, also return the self-attention weights
            `(batch, num_heads, length, length)`, as `(outputs, scores)`.
            Defaults to `False`.

    Reference:
        - [Vaswani et al., 2017](https://arxiv.org/abs/1706.03762), section 3.1.
        - [Xiong et al., 2020](https://arxiv.org/abs/2002.04745) (pre-norm).

    Example:

    ```python
    tokens = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(1000, 64, mask_zero=True)(tokens)
    x = x + kerasdl.layers.SinePositionEncoding()(x)
    x = kerasdl.layers.TransformerEncoder(intermediate_dim=128, num_heads=4)(x)
    ```
    """

    def build(self, inputs_shape):
        check_hidden_dim(inputs_shape[-1], self.num_heads)
        self._build_attention("self_attention", inputs_shape, inputs_shape)
        self._build_feedforward(inputs_shape)

    def call(
        self,
        inputs,
        padding_mask=None,
        attention_mask=None,
        training=None,
        return_attention_scores=False,
    ):
        if padding_mask is None:
            padding_mask = keras_mask_of(inputs)

        def self_attention(h):
            outputs = self.self_attention(
                h,
                h,
                query_mask=padding_mask,
                value_mask=padding_mask,
                attention_mask=attention_mask,
                training=training,
                return_attention_scores=return_attention_scores,
            )
            return outputs if return_attention_scores else (outputs, None)

        x = inputs  # (batch, length, d)
        x, scores = self._add_and_norm(
            self_attention,
            self.self_attention_norm,
            self.self_attention_dropout,
            x,
            training,
        )
        x = self._feedforward_block(x, training)
        if return_attention_scores:
            return x, scores  # scores: (batch, heads, length, length)
        return x

    def compute_mask(self, inputs, mask=None):
        return mask

    def compute_output_shape(self, inputs_shape):
        return inputs_shape

    def compute_output_spec(self, inputs, return_attention_scores=False, **kwargs):
        output = keras.KerasTensor(inputs.shape, dtype=self.compute_dtype)
        if not return_attention_scores:
            return output
        batch, length = inputs.shape[0], inputs.shape[1]
        scores = keras.KerasTensor(
            (batch, self.num_heads, length, length), dtype=self.compute_dtype
        )
        return output, scores
