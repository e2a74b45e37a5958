"""A recurrent language model: embedding -> stacked SimpleRNN/GRU/LSTM -> logits."""

import keras
from keras import ops

from kerasdl.models.common import check_positive_ints, check_rates
from kerasdl.models.registry import register_language_model

CELLS = {
    "simple_rnn": keras.layers.SimpleRNN,
    "gru": keras.layers.GRU,
    "lstm": keras.layers.LSTM,
}


@keras.saving.register_keras_serializable(package="kerasdl")
class RNNLanguageModel(keras.Model):
    """Next-token model: embedding, `num_layers` recurrent layers, a dense head.

    Position `t` of the output holds the logits of token `t + 1`. The model
    reads left to right only (a language model must not see the token it
    predicts, so there is no bidirectional option). It implements kerasdl's
    language-model protocol, which `kerasdl.tasks.language_modeling` and
    `kerasdl.export.language_model` rely on:

    - `call(tokens)`: logits for a whole `(batch, length)` block, each row
      starting from zero states;
    - `initial_cache(batch_size, max_length)`: the zero states of every layer;
    - `call_with_cache(tokens, cache, index)`: continues from the states in
      `cache` (for an RNN the position `index` is not needed) and returns the
      logits and the new states, so generation costs one step per token.

    Token id 0 is padding and id 1 the unknown token; both count in
    `vocabulary_size`. The streams it trains on hold no padding, so nothing is
    masked; padding to the right of a text (as the export's `score` signature
    pads a batch) never changes the logits before it.

    Args:
        vocabulary_size: int, number of token ids, padding and unknown included.
        cell: `"lstm"`, `"gru"` or `"simple_rnn"` (tanh). Defaults to `"lstm"`.
        units: int, recurrent units of every layer. Defaults to `256`.
        num_layers: int, stacked recurrent layers. Defaults to `1`.
        embedding_dim: int, token embedding width. Defaults to `64`.
        dropout: float in [0, 1), dropout on the embeddings, between the layers
            and before the head. Defaults to `0.0`.
        recurrent_dropout: float in [0, 1), dropout on the recurrent state
            inside each layer (the Keras layers' `recurrent_dropout`: one mask
            per sequence). Like `dropout` it acts in training only, so the
            cached step computes what `call` does. Defaults to `0.0`.
        **kwargs: base model arguments, such as `name`.

    Call arguments:
        tokens: int `(batch, length)` token ids.
        training: bool, whether dropout is active. Defaults to `False`.

    Returns:
        float32 logits `(batch, length, vocabulary_size)`.

    Reference:
        - [Hochreiter & Schmidhuber, 1997](https://doi.org/10.1162/neco.1997.9.8.1735)
          (LSTM).
        - [Cho et al., 2014](https://arxiv.org/abs/1406.1078) (GRU).

    Example:

    ```python
    model = kerasdl.models.RNNLanguageModel(80, cell="gru", units=128)
    logits = model(tokens)                       # (batch, length, 80)
    cache = model.initial_cache(batch_size, 100)
    logits, cache = model.call_with_cache(prompt, cache, 0)
    next_logits, cache = model.call_with_cache(next_token, cache, prompt_length)
    ```
    """

    def __init__(
        self,
        vocabulary_size,
        cell="lstm",
        units=256,
        num_layers=1,
        embedding_dim=64,
        dropout=0.0,
        recurrent_dropout=0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_positive_ints(
            vocabulary_size=vocabulary_size,
            units=units,
            num_layers=num_layers,
            embedding_dim=embedding_dim,
        )
        if cell not in CELLS:
            raise ValueError(
                f"`cell` must be one of {', '.join(CELLS)}. Received: cell={cell!r}"
            )
        check_rates(dropout=dropout, recurrent_dropout=recurrent_dropout)
        self.vocabulary_size = vocabulary_size
        self.cell = cell
        self.units = units
        self.num_layers = num_layers
        self.embedding_dim = embedding_dim
        self.dropout = float(dropout)
        self.recurrent_dropout = float(recurrent_dropout)

        # Layers.
        self.embedding = keras.layers.Embedding(
            vocabulary_size, embedding_dim, name="embedding"
        )
        self.recurrent_layers = [
            CELLS[cell](
                units,
                recurrent_dropout=self.recurrent_dropout,
                return_sequences=True,
                return_state=True,
                name=f"{cell}_{i}",
            )
            for i in range(num_layers)
        ]
        self.dropout_layers = [
            keras.layers.Dropout(dropout, name=f"dropout_{i}")
            for i in range(num_layers + 1)
        ]
        self.head = keras.layers.Dense(vocabulary_size, name="logits")

    @property
    def states_per_layer(self):
        """2 for an LSTM (hidden and cell state), 1 for a GRU or SimpleRNN."""
        return 2 if self.cell == "lstm" else 1

    def _run(self, tokens, states, training):
        # tokens (batch, t) -> logits (batch, t, vocab), one state list per layer.
        x = self.dropout_layers[0](self.embedding(tokens), training=training)
        new_states = []
        for i, layer in enumerate(self.recurrent_layers):
            x, *layer_states = layer(
                x,
                initial_state=None if states is None else list(states[i]),
                training=training,
            )  # (batch, t, units)
            x = self.dropout_layers[i + 1](x, training=training)
            new_states.append(layer_states)
        return ops.cast(self.head(x), "float32"), new_states

    def call(self, tokens, training=False):
        logits, _ = self._run(tokens, None, training)
        return logits

    def initial_cache(self, batch_size, max_length=None):
        """Zero states: a list with, per layer, a list of float `(batch, units)`.

        `max_length` is accepted for the protocol's sake; an RNN's cache does
        not grow with the sequence.
        """
        zeros = ops.zeros((batch_size, self.units), dtype=self.compute_dtype)
        return [[zeros] * self.states_per_layer for _ in range(self.num_layers)]

    def call_with_cache(self, tokens, cache, index=None):
        """Runs `tokens` `(batch, t)` on from the states in `cache`.

        Returns `(logits, cache)`: float32 `(batch, t, vocabulary_size)` and the
        states after the last token. `index` (the position of `tokens[:, 0]`)
        is accepted for the protocol's sake; the states already hold the past.
        """
        logits, states = self._run(tokens, cache, training=False)
        return logits, states

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary_size": self.vocabulary_size,
                "cell": self.cell,
                "units": self.units,
                "num_layers": self.num_layers,
                "embedding_dim": self.embedding_dim,
                "dropout": self.dropout,
                "recurrent_dropout": self.recurrent_dropout,
            }
        )
        return config


def rnn_language_model(vocabulary_size, **kwargs):
    """Builds an `RNNLanguageModel` (the family builder of the registry's
    `rnn_lm`, `simple_rnn_lm`, `gru_lm` and `lstm_lm`)."""
    return RNNLanguageModel(vocabulary_size, **kwargs)


register_language_model("rnn_lm", rnn_language_model)
register_language_model("simple_rnn_lm", rnn_language_model, cell="simple_rnn")
register_language_model("gru_lm", rnn_language_model, cell="gru")
register_language_model("lstm_lm", rnn_language_model, cell="lstm")
