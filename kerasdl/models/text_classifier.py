"""Text classifiers that take raw strings: RNN (GRU/LSTM) and Transformer encoder.

Both builders start from an adapted `keras.layers.TextVectorization` layer, so the
model's input is a batch of raw strings `(batch,)` tf.string and tokenization travels
with the model into the SavedModel. Token id 0 is padding: the embedding masks it and
the RNNs / attention never look at it.

```python
vectorizer = keras.layers.TextVectorization(max_tokens=10_000,
                                            output_sequence_length=48)
vectorizer.adapt(train_texts)
model = kerasdl.models.rnn_text_classifier(vectorizer, num_classes=77,
                                           bidirectional=True)
model(tf.constant(["I am still waiting on my card?"]))  # (1, 77) probabilities
```
"""

import keras

from kerasdl.layers.transformer.position_embedding import PositionEmbedding
from kerasdl.layers.transformer.transformer_encoder import TransformerEncoder
from kerasdl.models.common import check_positive_ints, check_rates

RNN_CELLS = {"gru": keras.layers.GRU, "lstm": keras.layers.LSTM}


def _text_input_and_tokens(text_vectorization):
    if not isinstance(text_vectorization, keras.layers.TextVectorization):
        raise TypeError(
            "`text_vectorization` must be an adapted keras.layers.TextVectorization. "
            f"Received: {type(text_vectorization).__name__}"
        )
    if text_vectorization.vocabulary_size() < 3:
        raise ValueError(
            "`text_vectorization` has no vocabulary; call `adapt()` on the training "
            "texts first. Received: vocabulary_size="
            f"{text_vectorization.vocabulary_size()}"
        )
    text = keras.Input(shape=(), dtype="string", name="text")
    tokens = text_vectorization(text)  # (batch, length) int64, 0 = padding
    return text, tokens


def _classifier_head(x, num_classes, dropout):
    x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    logits = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.layers.Activation("softmax", dtype="float32", name="probabilities")(
        logits
    )


def rnn_text_classifier(
    text_vectorization,
    num_classes,
    *,
    embedding_dim=128,
    units=128,
    num_layers=1,
    bidirectional=False,
    cell="gru",
    dropout=0.2,
    name=None,
):
    """Embedding -> (deep, optionally bidirectional) GRU/LSTM -> softmax.

    The embedding masks padding (`mask_zero=True`), so every recurrent layer skips
    the padded steps and the last layer's final state summarises the real tokens
    only (for a bidirectional layer, the forward and backward final states are
    concatenated). Layers below the last return sequences, as in a deep RNN.

    Args:
        text_vectorization: adapted `keras.layers.TextVectorization` (int output).
        num_classes: number of classes.
        embedding_dim: width of the token embeddings. Defaults to `128`.
        units: hidden units of every recurrent layer (per direction). Defaults to
            `128`.
        num_layers: number of stacked recurrent layers. Defaults to `1`.
        bidirectional: wrap each recurrent layer in `keras.layers.Bidirectional`.
            Defaults to `False`.
        cell: `"gru"` or `"lstm"`. Defaults to `"gru"`.
        dropout: dropout on the embeddings, between layers and before the
            classifier. Defaults to `0.2`.
        name: model name. Defaults to `None` (`"<cell>_text_classifier"`).

    Returns:
        A Functional `keras.Model`: raw strings `(batch,)` -> float32 probabilities
        `(batch, num_classes)`.
    """
    check_positive_ints(
        num_classes=num_classes,
        embedding_dim=embedding_dim,
        units=units,
        num_layers=num_layers,
    )
    check_rates(dropout=dropout)
    if cell not in RNN_CELLS:
        raise ValueError(
            f"`cell` must be one of {sorted(RNN_CELLS)}. Received: cell={cell!r}"
        )

    # Layers and wiring.
    text, tokens = _text_input_and_tokens(text_vectorization)
    x = keras.layers.Embedding(
        text_vectorization.vocabulary_size(),
        embedding_dim,
        mask_zero=True,
        name="embedding",
    )(tokens)  # (batch, length, embedding_dim)
    x = keras.layers.Dropout(dropout, name="embedding_dropout")(x)
    for index in range(num_layers):
        last = index == num_layers - 1
        rnn = RNN_CELLS[cell](units, return_sequences=not last, name=f"{cell}_{index}")
        if bidirectional:
            rnn = keras.layers.Bidirectional(rnn, name=f"bidirectional_{cell}_{index}")
        x = rnn(x)  # (batch, length, units * directions), last: (batch, units * dirs)
        if not last:
            x = keras.layers.Dropout(dropout, name=f"{cell}_{index}_dropout")(x)
    probabilities = _classifier_head(x, num_classes, dropout)
    return keras.Model(text, probabilities, name=name or f"{cell}_text_classifier")


def transformer_text_classifier(
    text_vectorization,
    num_classes,
    *,
    hidden_dim=128,
    num_layers=2,
    num_heads=4,
    intermediate_dim=256,
    dropout=0.1,
    name=None,
):
    """Token + learned position embeddings -> Transformer encoder blocks -> pooling.

    The encoder blocks (`kerasdl.layers.TransformerEncoder`, post-norm) never attend
    to padding, and the mean pooling averages the real tokens only
    (`GlobalAveragePooling1D` reads the padding mask).

    Args:
        text_vectorization: adapted `keras.layers.TextVectorization` with a fixed
            `output_sequence_length` (the position embedding needs it).
        num_classes: number of classes.
        hidden_dim: model width `d`. Defaults to `128`.
        num_layers: number of encoder blocks. Defaults to `2`.
        num_heads: attention heads per block (`hidden_dim` must divide by it).
            Defaults to `4`.
        intermediate_dim: feed-forward width. Defaults to `256`.
        dropout: dropout in the blocks, on the embeddings and before the
            classifier. Defaults to `0.1`.
        name: model name. Defaults to `None` (`"transformer_text_classifier"`).

    Returns:
        A Functional `keras.Model`: raw strings `(batch,)` -> float32 probabilities.
    """
    check_positive_ints(
        num_classes=num_classes,
        hidden_dim=hidden_dim,
        num_layers=num_layers,
        num_heads=num_heads,
        intermediate_dim=intermediate_dim,
    )
    check_rates(dropout=dropout)
    sequence_length = text_vectorization.get_config().get("output_sequence_length")
    if not sequence_length:
        raise ValueError(
            "`text_vectorization` needs a fixed `output_sequence_length` for the "
            "position embedding. Received: output_sequence_length=None"
        )

    # Embeddings: tokens + positions.
    text, tokens = _text_input_and_tokens(text_vectorization)
    x = keras.layers.Embedding(
        text_vectorization.vocabulary_size(),
        hidden_dim,
        mask_zero=True,
        name="embedding",
    )(tokens)  # (batch, length, hidden_dim)
    positions = PositionEmbedding(sequence_length, name="position_embedding")(x)
    x = keras.layers.Add(name="add_positions")([x, positions])
    x = keras.layers.Dropout(dropout, name="embedding_dropout")(x)

    # Encoder blocks.
    for index in range(num_layers):
        x = TransformerEncoder(
            intermediate_dim, num_heads, dropout=dropout, name=f"encoder_{index}"
        )(x)

    # Pooling over the real tokens, then the classifier.
    # An empty text (all padding) averages position 0 instead of dividing by zero.
    keep = keras.ops.logical_or(
        keras.ops.not_equal(tokens, 0),
        keras.ops.expand_dims(keras.ops.equal(keras.ops.arange(sequence_length), 0), 0),
    )  # (batch, length)
    x = keras.layers.GlobalAveragePooling1D(name="mean_pooling")(x, mask=keep)
    probabilities = _classifier_head(x, num_classes, dropout)
    return keras.Model(text, probabilities, name=name or "transformer_text_classifier")
