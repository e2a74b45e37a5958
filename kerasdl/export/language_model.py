"""A servable language model, strings in and strings out, and its versioned export.

`TextLanguageModel` joins a vocabulary (`kerasdl.data.timemachine.Vocabulary`),
any model of kerasdl's language-model protocol (`call`, `initial_cache`,
`call_with_cache`: `kerasdl.models.RNNLanguageModel`, `TransformerLanguageModel`)
and `kerasdl.decoding.sample` into one TensorFlow computation:

- `generate(prompts, ...)`: split each prompt into tokens in the graph (as
  `kerasdl.data.timemachine.tokenize` does), run it through the model one token
  at a time with the model's cache, then sample `max_length` new tokens
  (temperature, top-k, top-p, seeded; `top_k=1` is greedy) and join them back
  into a string;
- `score(texts)`: each text's total negative log-likelihood in nats and the
  number of tokens it was computed over.

`export_language_model` writes it as a SavedModel whose signatures call exactly
that code:

- `serving_default`: `prompt` tf.string `(batch,)` -> `continuation` tf.string
  `(batch,)`, `continuation_ids` int32 `(batch, n)` (0 after each row's end) and
  `continuation_length` int32 `(batch,)`; the padding and unknown tokens are
  never generated. Optional inputs, each with its default in the signature's
  `defaults`: `max_length` int32 scalar (tokens generated after the prompt,
  100), `temperature` float32 scalar (1.0), `top_k` int32 scalar (0 = all
  tokens; 1 = greedy), `top_p` float32 scalar (1.0 = no nucleus filter),
  `seed` int32 scalar (0). `kerasdl serve` fills a left-out option from there
  over REST and gRPC, as TF Serving's gRPC Predict does (TF Serving's REST API
  needs every input); TensorFlow's `loaded.signatures[...]` needs every input,
  the loaded object's `loaded.serving_default(prompts)` takes the defaults;
- `generate`: the same function under a second name;
- `score`: `text` tf.string `(batch,)` -> `negative_log_likelihood` float32
  `(batch,)`, the summed cross-entropy in nats of predicting tokens 2..n of
  each text from the ones before it, and `num_predicted` int32 `(batch,)`,
  `n - 1` (there is no start token, so the first token is not predicted; an
  empty or one-token text scores 0 over 0). Perplexity is
  `exp(negative_log_likelihood / num_predicted)`; at character level bits per
  character are `negative_log_likelihood / num_predicted / ln 2`.

Prompts and continuations share a buffer of `max_sequence_length` tokens (the
model's own context for a Transformer). A prompt keeps its last tokens, as many
as the `max_length` new tokens leave room for but never fewer than half the
buffer (so a fixed-context model always reads the prompt's end, whatever
`max_length` asks); the continuation then gets the rest of the buffer, and
`continuation_length` says how many tokens it holds. An empty prompt starts from
a newline (character level) or `"."` (word level). With the same seed and the
same batch of prompts, the output is the same every time, eagerly or served.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping

from kerasdl.export.saved_model import ExportError
from kerasdl.export.signatures import export_signatures

PAD_ID, UNKNOWN_ID = 0, 1
DEFAULTS = {
    "max_length": 100,
    "temperature": 1.0,
    "top_k": 0,
    "top_p": 1.0,
    "seed": 0,
}
# Mirrors `kerasdl.data.timemachine.WORD_PATTERN` in RE2: letters and digits
# with inner apostrophes, or one punctuation mark (`_` is dropped first).
_WORD_PATTERN = r"([\pL\pN\pM]+(?:['’][\pL\pN\pM]+)*|[^\pL\pN\pM\s])"


class TextLanguageModel:
    """Strings in, strings out: vocabulary + language model + sampling, in TensorFlow.

    `generate` and `score` run eagerly or inside `tf.function`; the exported
    signatures call exactly this code.

    Args:
        model: a model of the language-model protocol (`call`,
            `initial_cache`, `call_with_cache`), built.
        vocabulary: the token list, id order (`"<pad>"`, `"<unk>"`, ...), or a
            `Vocabulary`.
        level: `"char"` or `"word"`, how text is split into tokens.
        max_sequence_length: tokens in the generation buffer, prompt and
            continuation together. Defaults to `None` (the model's
            `sequence_length` if it has one, else 512).

    Example:

    ```python
    text_model = TextLanguageModel(model, data.vocabulary, "char")
    text_model.generate(tf.constant(["The Time Traveller"]), max_length=50,
                        top_p=0.9, seed=1)["continuation"]
    text_model.score(tf.constant(["The Time Traveller"]))
    ```
    """

    def __init__(self, model, vocabulary, level, max_sequence_length=None):
        import keras
        import tensorflow as tf

        tokens = list(getattr(vocabulary, "tokens", vocabulary))
        if tokens[:2] != ["<pad>", "<unk>"]:
            raise ValueError(
                "The vocabulary must start with '<pad>' and '<unk>'. "
                f"Received: tokens[:2]={tokens[:2]}"
            )
        if level not in ("char", "word"):
            raise ValueError(
                f"`level` must be 'char' or 'word'. Received: level={level!r}"
            )
        context = getattr(model, "sequence_length", None)
        if max_sequence_length is None:
            max_sequence_length = context or 512
        if not isinstance(max_sequence_length, int) or max_sequence_length < 2:
            raise ValueError(
                "`max_sequence_length` must be an int >= 2. "
                f"Received: max_sequence_length={max_sequence_length!r}"
            )
        if context and max_sequence_length > context:
            raise ValueError(
                f"`max_sequence_length` must be at most the model's context, "
                f"{context}. Received: max_sequence_length={max_sequence_length}"
            )
        self.model = model
        self.tokens = tokens
        self.level = level
        self.max_sequence_length = max_sequence_length
        self.context = context
        self.lookup = keras.layers.StringLookup(
            vocabulary=tokens[2:],
            mask_token="<pad>",
            oov_token="<unk>",
            num_oov_indices=1,
            name="token_lookup",
        )
        self.lookup(tf.constant(["<unk>"]))  # built: the export tracks it
        start = "\n" if level == "char" else "."
        self.start_id = tokens.index(start) if start in tokens else UNKNOWN_ID
        self._token_strings = tf.constant(tokens)
        # Its state is never read or written: `generate` maps it to the request's
        # seed inside a `keras.StatelessScope`, so concurrent requests never race.
        self._seed_generator = keras.random.SeedGenerator(0)

    # Text <-> ids ----------------------------------------------------------------------

    def split(self, texts):
        """`(batch,)` tf.string -> ragged `(batch, None)` token strings."""
        import tensorflow as tf

        texts = tf.convert_to_tensor(texts, tf.string)
        if self.level == "char":
            return tf.strings.unicode_split(texts, "UTF-8")
        texts = tf.strings.regex_replace(tf.strings.lower(texts, "utf-8"), "_", " ")
        spaced = tf.strings.regex_replace(texts, _WORD_PATTERN, r" \1 ")
        return tf.strings.split(tf.strings.strip(spaced))

    def encode(self, texts):
        """`(batch,)` tf.string -> ragged int32 `(batch, None)` token ids."""
        import tensorflow as tf

        pieces = self.split(texts)
        return tf.cast(tf.ragged.map_flat_values(self.lookup, pieces), tf.int32)

    def decode(self, ids, lengths):
        """int `(batch, n)` ids and `(batch,)` lengths -> `(batch,)` tf.string."""
        import tensorflow as tf

        ragged = tf.RaggedTensor.from_tensor(ids, lengths=lengths)
        pieces = tf.gather(self._token_strings, ragged)
        separator = "" if self.level == "char" else " "
        return tf.strings.reduce_join(pieces, axis=-1, separator=separator)

    # Generation ------------------------------------------------------------------------

    def generate(
        self,
        prompts,
        max_length=DEFAULTS["max_length"],
        temperature=DEFAULTS["temperature"],
        top_k=DEFAULTS["top_k"],
        top_p=DEFAULTS["top_p"],
        seed=DEFAULTS["seed"],
    ):
        """Continues each prompt by `max_length` sampled tokens.

        Args:
            prompts: `(batch,)` tf.string.
            max_length: int scalar >= 0, tokens generated after each prompt
                (fewer when the prompt and they overflow the buffer: see the
                module's docstring).
            temperature: float scalar > 0 dividing the logits.
            top_k: int scalar, keep the `top_k` most likely tokens; 0 keeps all,
                1 is greedy decoding.
            top_p: float scalar in (0, 1], keep the smallest set of most likely
                tokens holding `top_p` of the probability; 1 keeps all.
            seed: int scalar; the same seed and prompts give the same output.

        Returns:
            A dict: `continuation` `(batch,)` tf.string, `continuation_ids` int32
            `(batch, n)` (0 past a row's length) and `continuation_length`
            int32 `(batch,)`.
        """
        import tensorflow as tf

        max_length = tf.cast(max_length, tf.int32)
        temperature = tf.cast(temperature, tf.float32)
        top_k = tf.cast(top_k, tf.int32)
        top_p = tf.cast(top_p, tf.float32)
        # A request's bad option is a clear error (a 400 when served), never a
        # silently different sampling. In a graph, the checks run before any op
        # that reads the options (else a negative `max_length` would first fail
        # inside `tf.range`, with TensorFlow's message).
        checks = [
            tf.debugging.assert_non_negative(
                max_length, "max_length must be >= 0 (tokens to generate)"
            ),
            tf.debugging.assert_positive(temperature, "temperature must be > 0"),
            tf.debugging.assert_non_negative(
                top_k, "top_k must be >= 0 (0 keeps every token)"
            ),
            tf.debugging.Assert(
                (top_p > 0.0) & (top_p <= 1.0), ["top_p must be in (0, 1]; got", top_p]
            ),
        ]
        with tf.control_dependencies([c for c in checks if c is not None]):
            new = tf.minimum(max_length, self.max_sequence_length - 1)
            temperature, top_k, top_p = (
                tf.identity(temperature),
                tf.identity(top_k),
                tf.identity(top_p),
            )
        return self._sample(prompts, new, temperature, top_k, top_p, seed)

    def _prompt_ids(self, prompts, new):
        """Kept prompt ids `(batch, capacity)` (right-padded) and lengths `(batch,)`."""
        import tensorflow as tf

        capacity = self.max_sequence_length
        ids = self.encode(prompts)
        lengths = ids.row_lengths()
        empty = tf.equal(lengths, 0)
        # Room for the new tokens, but at least half the buffer for the prompt.
        keep = tf.maximum(tf.cast(capacity - new, tf.int64), capacity // 2)
        kept = tf.minimum(lengths, keep)
        # The last `kept` tokens of each row (the whole row when it fits).
        positions = tf.ragged.range(lengths - kept, lengths)
        ids = tf.gather(ids, positions, batch_dims=1)
        ids = ids.to_tensor(PAD_ID, shape=[None, capacity])
        start = tf.one_hot(0, capacity, dtype=tf.int32) * self.start_id
        ids = tf.where(empty[:, None], start[None, :], ids)
        kept = tf.where(empty, tf.ones_like(kept), kept)
        return ids, tf.cast(kept, tf.int32)

    def _sample(self, prompts, new, temperature, top_k, top_p, seed):
        import keras
        import tensorflow as tf

        from kerasdl.decoding import sample

        capacity = self.max_sequence_length
        prompt_ids, lengths = self._prompt_ids(prompts, new)
        # The static batch size when known, so the loop's shapes stay fixed
        # (a `tf.function` on a concrete batch); else the dynamic one.
        batch = prompt_ids.shape[0]
        if batch is None:
            batch = tf.shape(prompt_ids)[0]
        vocabulary_size = len(self.tokens)
        end = lengths + new  # the position each row stops at

        def next_token_fn(tokens, cache, step):
            # Feed the token at `step - 1`: (batch, 1) -> logits (batch, vocab).
            previous = tokens[:, step - 1][:, None]
            logits, cache = self.model.call_with_cache(previous, cache, step - 1)
            scores = tf.where(
                tf.range(vocabulary_size)[None, :] <= UNKNOWN_ID,
                -1e9,
                tf.cast(logits[:, 0], tf.float32) / temperature,
            )  # padding and the unknown token are never generated
            scores = _filter(scores, top_k, top_p)
            # Inside the prompt, its own next token; past the end, the end token.
            forced = tf.where(
                step < lengths,
                prompt_ids[:, tf.minimum(step, capacity - 1)],
                tf.fill([batch], PAD_ID),
            )
            one_hot = tf.one_hot(forced, vocabulary_size, on_value=0.0, off_value=-1e9)
            scores = tf.where(
                (step < lengths)[:, None] | (step >= end)[:, None], one_hot, scores
            )
            return scores, cache

        state = tf.stack([tf.cast(seed, self._seed_generator.state.dtype), 0])
        with keras.StatelessScope(state_mapping=[(self._seed_generator.state, state)]):
            tokens, _ = sample(
                next_token_fn,
                prompt_ids[:, 0],
                capacity,
                end_token_id=PAD_ID,  # forced at each row's end, never sampled
                pad_token_id=UNKNOWN_ID,  # fills the buffer past the end token
                cache=self.model.initial_cache(batch, capacity),
                seed=self._seed_generator,
            )
        # Row b's continuation: tokens[b, lengths[b] : lengths[b] + new].
        positions = lengths[:, None] + tf.range(new)[None, :]
        positions = tf.minimum(positions, capacity - 1)
        continuation_length = tf.minimum(new, capacity - lengths)
        ids = tf.gather(tokens, positions, batch_dims=1)
        ids = tf.where(
            tf.range(new)[None, :] < continuation_length[:, None], ids, PAD_ID
        )
        return {
            "continuation": self.decode(ids, continuation_length),
            "continuation_ids": ids,
            "continuation_length": continuation_length,
        }

    # Scoring ---------------------------------------------------------------------------

    def score(self, texts):
        """Each text's summed negative log-likelihood (nats) and tokens predicted.

        Token 1 of a text is not predicted (no start token): a text of `n`
        tokens counts `n - 1`. A model with a fixed context (`sequence_length`)
        scores the first `sequence_length + 1` tokens.

        Returns:
            A dict: `negative_log_likelihood` float32 `(batch,)` and
            `num_predicted` int32 `(batch,)`.
        """
        import tensorflow as tf

        ids = self.encode(texts)
        if self.context:
            ids = ids[:, : self.context + 1]
        lengths = tf.cast(ids.row_lengths(), tf.int32)
        ids = ids.to_tensor(PAD_ID)
        ids = tf.pad(ids, [[0, 0], [0, tf.maximum(0, 2 - tf.shape(ids)[1])]])
        logits = self.model(ids[:, :-1], training=False)  # (batch, n - 1, vocab)
        losses = tf.nn.sparse_softmax_cross_entropy_with_logits(
            ids[:, 1:], tf.cast(logits, tf.float32)
        )
        predicted = tf.range(tf.shape(losses)[1])[None, :] < lengths[:, None] - 1
        return {
            "negative_log_likelihood": tf.reduce_sum(
                tf.where(predicted, losses, 0.0), axis=1
            ),
            "num_predicted": tf.maximum(lengths - 1, 0),
        }


def _filter(scores, top_k, top_p):
    """Keeps the `top_k` (0: all) most likely, then the `top_p` nucleus; others -1e9.

    `scores` `(batch, vocab)` float32; `top_k` int32 and `top_p` float32
    scalars (tensors, so one graph serves every value).
    """
    import tensorflow as tf

    vocabulary_size = scores.shape[-1]
    order = tf.argsort(scores, axis=-1, direction="DESCENDING", stable=True)
    rank = tf.argsort(order, axis=-1, stable=True)  # rank of each token
    k = tf.where(top_k > 0, tf.minimum(top_k, vocabulary_size), vocabulary_size)
    in_top_k = tf.range(vocabulary_size)[None, :] < k  # over sorted positions
    ranked = tf.where(in_top_k, tf.gather(scores, order, batch_dims=1), -1e9)
    probabilities = tf.nn.softmax(ranked, axis=-1)
    mass_before = tf.cumsum(probabilities, axis=-1, exclusive=True)
    keep = in_top_k & ((mass_before < top_p) | (top_p >= 1.0))
    keep = tf.gather(keep, rank, batch_dims=1)  # back to token order
    return tf.where(keep, scores, -1e9)


def export_language_model(
    text_model: TextLanguageModel,
    base_dir: str | os.PathLike,
    *,
    model_card: Mapping | None = None,
    verification_texts: list | None = None,
    extra_assets: Mapping[str, str] | None = None,
    warmup: bool = True,
) -> str:
    """Exports a `TextLanguageModel` as a new numbered SavedModel version.

    Signatures `serving_default`, `generate` and `score` (see the module
    docstring). Before publishing, the reloaded signatures must reproduce the
    in-memory continuations exactly (same seed) and the scores to 1e-4.

    Args:
        text_model: the `TextLanguageModel` to serve.
        base_dir: the model's directory, e.g. `saved_models/char_lstm`.
        model_card: JSON-serialisable dict. Defaults to `None` (an empty card).
        verification_texts: texts the reloaded model is checked on (and the
            warm-up requests use). Defaults to `None` (two short prompts).
        extra_assets: `{file name: source path}` copied into `assets.extra/`.
            Defaults to `None`.
        warmup: write `assets.extra/tf_serving_warmup_requests` (one request
            per signature, and a batch of 8 for `serving_default`). Defaults to
            `True`.

    Returns:
        The published version's path, `<base_dir>/<N>`.

    Example:

    ```python
    export_language_model(TextLanguageModel(model, vocabulary, "char"),
                          "saved_models/char_lstm")
    ```
    """
    import numpy as np
    import tensorflow as tf

    prompt = tf.TensorSpec([None], tf.string, name="prompt")
    options = [
        tf.TensorSpec([], tf.int32, name="max_length"),
        tf.TensorSpec([], tf.float32, name="temperature"),
        tf.TensorSpec([], tf.int32, name="top_k"),
        tf.TensorSpec([], tf.float32, name="top_p"),
        tf.TensorSpec([], tf.int32, name="seed"),
    ]

    def serving_default(prompt, max_length, temperature, top_k, top_p, seed):
        return text_model.generate(prompt, max_length, temperature, top_k, top_p, seed)

    # The options' defaults, as tensors, become both signatures' `defaults`: a
    # request may leave any option out (TF Serving's gRPC API, `kerasdl serve`).
    defaults = {
        spec.name: tf.constant(DEFAULTS[spec.name], spec.dtype) for spec in options
    }
    serving_default.__defaults__ = tuple(defaults[spec.name] for spec in options)
    generate = serving_default

    def score(text):
        return text_model.score(text)

    texts = tf.constant(verification_texts or ["The Time Traveller", "It was"])
    options_example = {
        "max_length": np.int32(20),
        "temperature": np.float32(0.8),
        "top_k": np.int32(0),
        "top_p": np.float32(0.9),
        "seed": np.int32(1),
    }
    warmup_requests = None
    if warmup:
        from kerasdl.export.warmup import warmup_batches

        one, *more = warmup_batches({"prompt": texts.numpy()})
        warmup_requests = [
            ("serving_default", one),
            ("generate", {**one, **options_example}),
            ("score", {"text": one["prompt"]}),
        ] + [("serving_default", batch) for batch in more]

    def verify(path):
        reloaded = tf.saved_model.load(path)
        checks = [
            # TensorFlow's loaded signatures take every input; the loaded
            # functions take the defaults.
            (
                "serving_default",
                serving_default(texts),
                lambda: reloaded.signatures["serving_default"](
                    prompt=texts, **defaults
                ),
            ),
            (
                "serving_default",
                serving_default(texts),
                lambda: reloaded.generate(texts),
            ),
            (
                "generate",
                generate(texts, **options_example),
                lambda: reloaded.signatures["generate"](
                    prompt=texts, **options_example
                ),
            ),
        ]
        for name, expected, call in checks:
            received = call()
            if list(received["continuation"].numpy()) != list(
                expected["continuation"].numpy()
            ):
                raise ExportError(
                    f"The reloaded SavedModel's {name} does not reproduce the "
                    f"in-memory continuations: {received['continuation'][:2]} != "
                    f"{expected['continuation'][:2]}."
                )
        expected = score(texts)["negative_log_likelihood"].numpy()
        received = reloaded.signatures["score"](text=texts)
        if not np.allclose(
            received["negative_log_likelihood"].numpy(), expected, rtol=1e-4
        ):
            raise ExportError(
                "The reloaded SavedModel's score does not reproduce the in-memory "
                f"negative log-likelihoods: {received['negative_log_likelihood']} != "
                f"{expected}."
            )

    return export_signatures(
        [text_model.model, text_model.lookup],
        base_dir,
        {
            "serving_default": (serving_default, [prompt, *options]),
            "generate": (generate, [prompt, *options]),
            "score": (score, [tf.TensorSpec([None], tf.string, name="text")]),
        },
        model_card=model_card,
        verify=verify,
        extra_assets=extra_assets,
        warmup_requests=warmup_requests,
    )


def bits_per_token(negative_log_likelihood: float, num_predicted: int) -> float:
    """Nats summed over `num_predicted` tokens -> mean bits per token."""
    return negative_log_likelihood / max(num_predicted, 1) / math.log(2)
