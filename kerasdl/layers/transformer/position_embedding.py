import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kerasdl")
class PositionEmbedding(keras.layers.Layer):
    """Learned position embedding: one trainable vector per position.

    Holds a `(sequence_length, d)` matrix; for an input of shape
    `(batch, length, d)` it returns rows `start_index ... start_index+length-1`
    broadcast to the input's shape. Add the result to the token embeddings.
    Unlike `SinePositionEncoding` it cannot go past `sequence_length`.

    Args:
        sequence_length: int, the longest sequence the layer will see.
        initializer: initializer of the embedding matrix. Defaults to
            `"glorot_uniform"`.
        **kwargs: base layer arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: `(batch, length, d)`; only the shape is used.
        start_index: int or scalar tensor, the position of the first step.
            Defaults to `0`.

    Reference:
        - [Devlin et al., 2019](https://arxiv.org/abs/1810.04805) (BERT's
          learned position embeddings).

    Example:

    ```python
    embeddings = keras.layers.Embedding(1000, 64)(token_ids)  # (batch, 20, 64)
    x = embeddings + kerasdl.layers.PositionEmbedding(sequence_length=20)(embeddings)
    ```
    """

    def __init__(self, sequence_length, initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        if not isinstance(sequence_length, int) or sequence_length < 1:
            raise ValueError(
                "`sequence_length` must be a positive int. "
                f"Received: sequence_length={sequence_length!r}"
            )
        self.sequence_length = sequence_length
        self.initializer = keras.initializers.get(initializer)
        self.supports_masking = True

    def build(self, input_shape):
        if input_shape[-1] is None:
            raise ValueError(
                f"The last input dimension must be known. Received: input_shape={input_shape}"
            )
        self.position_embeddings = self.add_weight(
            name="embeddings",
            shape=(self.sequence_length, input_shape[-1]),
            initializer=self.initializer,
        )

    def call(self, inputs, start_index=0):
        shape = ops.shape(inputs)
        length = shape[-2]
        fits = not (isinstance(length, int) and isinstance(start_index, int)) or (
            start_index + length <= self.sequence_length
        )
        if not fits:
            raise ValueError(
                f"Positions {start_index}..{start_index + length - 1} do not fit "
                f"sequence_length={self.sequence_length}. Received: "
                f"inputs.shape={inputs.shape}, start_index={start_index}"
            )
        embeddings = ops.convert_to_tensor(self.position_embeddings)
        embeddings = ops.slice(
            embeddings, (start_index, 0), (length, embeddings.shape[-1])
        )
        return ops.broadcast_to(embeddings, shape)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "sequence_length": self.sequence_length,
                "initializer": keras.initializers.serialize(self.initializer),
            }
        )
        return config
