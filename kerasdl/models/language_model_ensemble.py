"""An ensemble of trained language models: their next-token probabilities averaged."""

import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kerasdl")
class LanguageModelEnsemble(keras.Model):
    """Averages the next-token probabilities of language models over one vocabulary.

    The ensemble's logits at each position are `log((p_1 + ... + p_n) / n)`,
    where `p_i` is member `i`'s softmax there (computed as a log-sum-exp of the
    members' log-softmax in float32), so `softmax(logits)` is the average of the
    members' distributions and its cross-entropy is the ensemble's. The ensemble
    implements kerasdl's language-model protocol (`call`, `initial_cache`,
    `call_with_cache`), so `kerasdl.export.TextLanguageModel` generates and
    scores with it and `kerasdl.export.export_language_model` exports it as any
    single model. The members are called, not copied: they keep their weights.

    Its context, `sequence_length`, is the shortest context of its members
    (`None` when none has one, as for RNNs), so generation never runs a member
    past its own context. Members of different kinds read different contexts:
    an RNN member carries its states through the cache while a Transformer
    member attends to the cached positions.

    Args:
        members: a sequence of at least two built `keras.Model`s of the
            language-model protocol (`kerasdl.models.RNNLanguageModel`,
            `TransformerLanguageModel`, ...), all over the same vocabulary
            (the same `vocabulary_size`). The same model may not appear twice.
        **kwargs: base model arguments, such as `name`.

    Call arguments:
        tokens: int `(batch, length)` token ids.
        training: bool, passed on to the members. Defaults to `False`.

    Returns:
        float32 logits `(batch, length, vocabulary_size)`: the log of the
        averaged probabilities.

    Raises:
        TypeError: a member that is not a `keras.Model` of the protocol.
        ValueError: fewer than two members, a member given twice, or members
            whose vocabulary sizes differ.

    Example:

    ```python
    lstm = kerasdl.models.RNNLanguageModel(80, cell="lstm", units=128)
    gru = kerasdl.models.RNNLanguageModel(80, cell="gru", units=128)
    ensemble = kerasdl.models.LanguageModelEnsemble([lstm, gru])
    logits = ensemble(tokens)                     # (batch, length, 80)
    cache = ensemble.initial_cache(batch_size, 100)
    logits, cache = ensemble.call_with_cache(prompt, cache, 0)
    ```
    """

    def __init__(self, members, **kwargs):
        super().__init__(**kwargs)
        members = list(members)
        if len(members) < 2:
            raise ValueError(
                "An ensemble needs at least two members. "
                f"Received: {len(members)} member(s)"
            )
        for i, member in enumerate(members):
            if not isinstance(member, keras.Model) or not all(
                callable(getattr(member, name, None))
                for name in ("initial_cache", "call_with_cache")
            ):
                raise TypeError(
                    "Every member must be a keras.Model of kerasdl's language-model "
                    "protocol (call, initial_cache, call_with_cache), such as "
                    f"RNNLanguageModel. Received: member {i} of type "
                    f"{type(member).__name__}"
                )
        if len({id(member) for member in members}) != len(members):
            raise ValueError(
                "A model may appear only once among the members (the same model "
                "twice would only weigh its probabilities more)"
            )
        sizes = [getattr(member, "vocabulary_size", None) for member in members]
        if None in sizes or len(set(sizes)) != 1:
            raise ValueError(
                "The members must share one vocabulary (the same vocabulary_size). "
                f"Received: vocabulary sizes {sizes}"
            )
        self.members = members
        self.vocabulary_size = sizes[0]
        contexts = [
            member.sequence_length
            for member in members
            if getattr(member, "sequence_length", None)
        ]
        self.sequence_length = min(contexts) if contexts else None
        # No weights of its own: built once its members are (trained models are).
        self.built = all(member.built for member in members)

    def _average(self, member_logits):
        log_probs = ops.stack(
            [ops.log_softmax(ops.cast(x, "float32"), axis=-1) for x in member_logits]
        )  # (members, batch, length, vocabulary_size)
        return ops.logsumexp(log_probs, axis=0) - math.log(len(member_logits))

    def call(self, tokens, training=False):
        return self._average(
            [member(tokens, training=training) for member in self.members]
        )

    def initial_cache(self, batch_size, max_length=None):
        """One cache per member, in a list.

        Args:
            batch_size: int or scalar tensor, rows generated together.
            max_length: int, the most positions generated (prompt included); at
                most `sequence_length` when the ensemble has one. Defaults to
                `None` (`sequence_length`; members without a context ignore it).
        """
        if max_length is None:
            max_length = self.sequence_length
        return [member.initial_cache(batch_size, max_length) for member in self.members]

    def call_with_cache(self, tokens, cache, index=None):
        """Runs every member on from its cache; returns `(logits, cache)`.

        Args:
            tokens: int `(batch, t)`, the tokens at positions `index ...`.
            cache: the list `initial_cache` returned (one entry per member).
            index: int or int32 scalar tensor, the position of `tokens[:, 0]`;
                needed when a member has a fixed context (a Transformer).

        Returns:
            `(logits, cache)`: the averaged float32 logits
            `(batch, t, vocabulary_size)`, the same as `call` on the whole prefix
            gives at these positions, and the members' updated caches.
        """
        if len(cache) != len(self.members):
            raise ValueError(
                f"`cache` must hold one entry per member ({len(self.members)}). "
                f"Received: {len(cache)} entries"
            )
        if index is None and self.sequence_length is not None:
            raise ValueError(
                "`index` (the position of tokens[:, 0]) is required: a member "
                "has a fixed context"
            )
        outputs = [
            member.call_with_cache(tokens, member_cache, index)
            for member, member_cache in zip(self.members, cache)
        ]
        logits = self._average([member_logits for member_logits, _ in outputs])
        return logits, [member_cache for _, member_cache in outputs]

    def get_config(self):
        config = super().get_config()
        config["members"] = [
            keras.saving.serialize_keras_object(member) for member in self.members
        ]
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        members = [
            keras.saving.deserialize_keras_object(member)
            for member in config.pop("members")
        ]
        return cls(members, **config)
