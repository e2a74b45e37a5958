"""A recurrent language model: embedding -> stacked SimpleRNN/GRU/LSTM -> logits."""

import keras
from keras import ops

from kerasdl.layers.recurrent import GRU, LSTM
from kerasdl.models.common import check_positive_ints, check_rates
from kerasdl.models.registry import register_language_model

# kerasdl's LSTM and GRU compute keras.layers.LSTM's and GRU's functions with
# the same weights, with the input projection out of the time loop and a
# hand-written backward pass (benchmarks/language_model.py: under XLA 1.5-2.5x
# the Keras LSTM, about 2x the Keras GRU).
CELLS = {
    "simple_rnn": keras.layers.SimpleRNN,
    "gru": GRU,
    "lstm": LSTM,
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
        variational_dropout: bool, whether `dropout` draws one mask per
            sequence (the same features dropped at every step, as in Gal &
            Ghahramani's variational RNN and AWD-LSTM's "locked dropout")
            instead of a new mask per token. Defaults to `False`.
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
        - [Gal & Ghahramani, 2016](https://arxiv.org/abs/1512.05287)
          (variational dropout).

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
        variational_dropout=False,
        weight_dropout=0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_positive_ints(
            vocabulary_size=vocabulary_size,
            units=units,
            num_layers=num_layers,
            embedding_dim=embedding_dim,
        )
        if not isinstance(variational_dropout, bool):
            raise TypeError(
                "`variational_dropout` must be a bool. "
                f"Received: variational_dropout={variational_dropout!r}"
            )
        if cell not in CELLS:
            raise ValueError(
                f"`cell` must be one of {', '.join(CELLS)}. Received: cell={cell!r}"
            )
        check_rates(
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            weight_dropout=weight_dropout,
        )
        if weight_dropout and cell != "lstm":
            raise ValueError(
                "`weight_dropout` (DropConnect on the recurrent kernel) is "
                f"implemented for cell='lstm' only. Received: cell={cell!r}"
            )
        self.vocabulary_size = vocabulary_size
        self.cell = cell
        self.units = units
        self.num_layers = num_layers
        self.embedding_dim = embedding_dim
        self.dropout = float(dropout)
        self.recurrent_dropout = float(recurrent_dropout)
        self.variational_dropout = variational_dropout
        self.weight_dropout = float(weight_dropout)
        extra = {"weight_dropout": self.weight_dropout} if cell == "lstm" else {}

        # Layers.
        self.embedding = keras.layers.Embedding(
            vocabulary_size, embedding_dim, name="embedding"
        )
        self.recurrent_layers = [
            CELLS[cell](
                units,
                recurrent_dropout=self.recurrent_dropout,
                **extra,
                return_sequences=True,
                return_state=True,
                name=f"{cell}_{i}",
            )
            for i in range(num_layers)
        ]
        # (batch, 1, features): one mask per sequence, broadcast over time.
        noise_shape = (None, 1, None) if variational_dropout else None
        self.dropout_layers = [
            keras.layers.Dropout(dropout, noise_shape=noise_shape, name=f"dropout_{i}")
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
                "variational_dropout": self.variational_dropout,
                "weight_dropout": self.weight_dropout,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="kerasdl")
class StatefulRNNTrainer(keras.Model):
    """Trains an `RNNLanguageModel` with its states carried from batch to batch.

    Truncated backpropagation through time over sequential batches (d2l's
    "sequential partitioning"): row `j` of each training batch continues row
    `j` of the previous one (`kerasdl.data.load_language_modeling_dataset(...,
    sampling="sequential")`), so the states a batch ends with are where the
    next batch starts; gradients stop at the batch boundary. The states live in
    non-trainable variables of shape `(batch_size, units)`; `reset_states()`
    zeroes them (at the start of every epoch, when the rows start anew).

    Only training carries states: a call with `training=False` (validation)
    is the language model's own call, each row from zero states. Fit this
    model; evaluate, generate with and export the wrapped `language_model`,
    whose weights it trains (it adds none but the carried states).

    Args:
        language_model: the `RNNLanguageModel` to train.
        batch_size: int, rows per training batch (every batch must have them).
        **kwargs: base model arguments, such as `name`.

    Call arguments:
        tokens: int `(batch_size, length)` token ids.
        training: bool; `True` reads and updates the carried states.

    Returns:
        float32 logits `(batch, length, vocabulary_size)`.

    Example:

    ```python
    from kerasdl.models.rnn_language_model import StatefulRNNTrainer

    lm = kerasdl.models.RNNLanguageModel(80, cell="lstm", units=128)
    trainer = StatefulRNNTrainer(lm, batch_size=32)
    trainer.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    for epoch in range(10):
        trainer.reset_states()
        trainer.fit(sequential_batches, epochs=1)
    ```
    """

    def __init__(self, language_model, batch_size, **kwargs):
        super().__init__(**kwargs)
        if isinstance(language_model, dict):
            language_model = keras.saving.deserialize_keras_object(language_model)
        if not isinstance(language_model, RNNLanguageModel):
            raise TypeError(
                "`language_model` must be an RNNLanguageModel. "
                f"Received: language_model={type(language_model).__name__}"
            )
        check_positive_ints(batch_size=batch_size)
        self.language_model = language_model
        self.batch_size = batch_size
        self.carried_states = [
            [
                self.add_weight(
                    shape=(batch_size, language_model.units),
                    initializer="zeros",
                    trainable=False,
                    name=f"state_{i}_{j}",
                )
                for j in range(language_model.states_per_layer)
            ]
            for i in range(language_model.num_layers)
        ]

    def build(self, input_shape=None):
        if not self.language_model.built:
            self.language_model(ops.zeros((1, 1), "int32"))
        self.built = True

    def call(self, tokens, training=False):
        if not training:
            return self.language_model(tokens, training=False)
        states = [
            [ops.convert_to_tensor(v) for v in layer] for layer in self.carried_states
        ]
        logits, new_states = self.language_model._run(tokens, states, training=True)
        for variables, values in zip(self.carried_states, new_states):
            for variable, value in zip(variables, values):
                variable.assign(ops.stop_gradient(value))
        return logits

    def reset_states(self):
        """Zeroes the carried states (every row starts anew)."""
        for variables in self.carried_states:
            for variable in variables:
                variable.assign(ops.zeros(variable.shape, variable.dtype))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "language_model": keras.saving.serialize_keras_object(
                    self.language_model
                ),
                "batch_size": self.batch_size,
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
