"""A servable translator, strings in and strings out, and its versioned export.

`Translator` joins the two `TextVectorization` vocabularies, a translation model
with `generate` (`kerasdl.models.Seq2SeqAttention`, `TransformerTranslator`) and
`kerasdl.decoding` into one TensorFlow computation: standardize -> tokenize ->
encode -> greedy or beam search -> detokenize. `export_translator` writes it as a
SavedModel whose signatures call exactly that code.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from kerasdl.export.saved_model import ExportError
from kerasdl.export.signatures import export_signatures

START, END = "[start]", "[end]"  # The target vocabulary's sentence delimiters.


class Translator:
    """Strings in, strings out: vectorizers + model + `kerasdl.decoding`, in TensorFlow.

    `translate(texts, beam_size)` runs eagerly or inside `tf.function`; the exported
    signatures call exactly this code.

    Args:
        model: a translation model with `generate(source_ids, start_id, end_id,
            max_length, beam_size=..., length_penalty_alpha=...)`.
        source_vectorizer: `TextVectorization` adapted on standardized source text.
        target_vectorizer: `TextVectorization` adapted on standardized target text
            wrapped in `START ... END`; both tokens must be in its vocabulary.
        max_length: tokens generated per sentence, the start token included.
        length_penalty_alpha: beam search's length penalty exponent. Defaults to
            `0.0`.

    Example:

    ```python
    translator = Translator(model, source_vectorizer, target_vectorizer, 22)
    translator.translate(tf.constant(["I am cold."]), beam_size=4)
    ```
    """

    def __init__(
        self,
        model,
        source_vectorizer,
        target_vectorizer,
        max_length: int,
        length_penalty_alpha: float = 0.0,
    ):
        import tensorflow as tf

        self.model = model
        self.source_vectorizer = source_vectorizer
        self.target_vectorizer = target_vectorizer
        self.vocabulary = list(target_vectorizer.get_vocabulary())
        self.start_id = self.vocabulary.index(START)
        self.end_id = self.vocabulary.index(END)
        self.max_length = max_length
        self.length_penalty_alpha = length_penalty_alpha
        self._vocabulary_tensor = tf.constant(self.vocabulary)

    def source_ids(self, texts):
        from kerasdl.data.text_translation import standardize_text

        return self.source_vectorizer(standardize_text(texts))

    def generate(self, texts, beam_size: int = 1):
        """`(batch,)` tf.string -> int32 `(batch, max_length)` ids (start token first)."""
        return self.model.generate(
            self.source_ids(texts),
            self.start_id,
            self.end_id,
            self.max_length,
            beam_size=beam_size,
            length_penalty_alpha=self.length_penalty_alpha,
        )

    def translate(self, texts, beam_size: int = 1):
        """`(batch,)` tf.string -> `(batch,)` tf.string translations."""
        from kerasdl.data.text_translation import detokenize

        tokens = self.generate(texts, beam_size)
        return detokenize(tokens[:, 1:], self._vocabulary_tensor, self.end_id)


def export_translator(
    translator: Translator,
    base_dir: str | os.PathLike,
    *,
    beam_size: int,
    model_card: Mapping | None = None,
    verification_texts: list | None = None,
    extra_assets: Mapping[str, str] | None = None,
    warmup: bool = True,
) -> str:
    """Exports a `Translator` as a new numbered SavedModel version under `base_dir`.

    Signatures `serving_default` (beam search), `beam_decode` and `greedy_decode`
    map `text` `(batch,)` tf.string to `translation` `(batch,)` tf.string. Before
    publishing, the reloaded beam and greedy signatures must reproduce the
    in-memory translations exactly.

    Args:
        translator: the `Translator` to serve.
        base_dir: the model's directory, e.g. `saved_models/seq2seq_attention`.
        beam_size: beams of `serving_default` and `beam_decode`.
        model_card: JSON-serialisable dict. Defaults to `None` (an empty card).
        verification_texts: sentences the reloaded model is checked on. Defaults
            to `None` (two short English sentences).
        extra_assets: `{file name: source path}` copied into `assets.extra/`.
            Defaults to `None`.
        warmup: write `assets.extra/tf_serving_warmup_requests` (one sentence
            for each signature, and 8 for `serving_default`), replayed by the
            server before it serves the version. Defaults to `True`.

    Returns:
        The published version's path, `<base_dir>/<N>`.

    Example:

    ```python
    export_translator(translator, "saved_models/translate", beam_size=4)
    ```
    """
    import tensorflow as tf

    spec = [tf.TensorSpec([None], tf.string, name="text")]

    def beam_decode(text):
        return {"translation": translator.translate(text, beam_size)}

    def greedy_decode(text):
        return {"translation": translator.translate(text, 1)}

    texts = tf.constant(verification_texts or ["I am cold.", "Hello!"])
    warmup_requests = None
    if warmup:
        from kerasdl.export.warmup import warmup_batches

        one, *more = warmup_batches({"text": texts.numpy()})
        warmup_requests = [
            (name, one) for name in ("serving_default", "beam_decode", "greedy_decode")
        ] + [("serving_default", batch) for batch in more]

    def verify(path):
        reloaded = tf.saved_model.load(path)
        for name, function in (
            ("serving_default", beam_decode),
            ("greedy_decode", greedy_decode),
        ):
            expected = function(texts)["translation"].numpy()
            received = reloaded.signatures[name](text=texts)["translation"].numpy()
            if list(received) != list(expected):
                raise ExportError(
                    f"The reloaded SavedModel's {name} does not reproduce the in-memory "
                    f"translations: {received[:3]} != {expected[:3]}."
                )

    return export_signatures(
        [translator.model, translator.source_vectorizer, translator.target_vectorizer],
        base_dir,
        {
            "serving_default": (beam_decode, spec),
            "beam_decode": (beam_decode, spec),
            "greedy_decode": (greedy_decode, spec),
        },
        model_card=model_card,
        verify=verify,
        extra_assets=extra_assets,
        warmup_requests=warmup_requests,
    )
