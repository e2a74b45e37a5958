"""Translation as library steps: data, vocabularies, model, fit, decode + BLEU, export.

    kerasdl train seq2seq_attention      # = python -m kerasdl.recipes.seq2seq_attention
    kerasdl train transformer_translate

Data (`kerasdl.data.load_translation_dataset`, test held out by English sentence)
-> word vocabularies (`TextVectorization` on standardized text; the target wrapped
in `[start] ... [end]`) -> length-bucketed batches -> model (`kerasdl.models`)
trained with teacher forcing by `kerasdl.tasks.fit` (loss and token accuracy ignore
padding) -> greedy and beam decoding (`kerasdl.export.Translator`) of the test
split, BLEU (`kerasdl.metrics.corpus_bleu`), sample translations, an attention heat
map -> a SavedModel (`kerasdl.export.export_translator`) whose `serving_default`
maps raw English strings to French strings, with `greedy_decode` and `beam_decode`.

```python
from kerasdl.tasks import translation as task

config = task.TranslationConfig(model="seq2seq", epochs=1, limit=2000)
data = task.load_data(config)
vocab = task.build_vectorizers(config, data)
train, validation = task.training_splits(config, data, vocab)
model = task.build_model(config, vocab)
task.compile_model(model, config, steps_per_epoch=int(train.cardinality()))
```

Files written by `run`: as `kerasdl.tasks.image_classification`, plus
`<workdir>/attention.png`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from kerasdl.export.translator import END, START, Translator
from kerasdl.tasks import config_fields as fields
from kerasdl.tasks.exit_codes import UsageError

DESCRIPTION = "Train, evaluate (BLEU) and export the {recipe} translator."
FIXED_FIELDS = ("model",)
RECIPE_OF_MODEL = {
    "seq2seq": "seq2seq_attention",
    "transformer": "transformer_translate",
}


def _decoding(default, help=None, **rules):
    """A field that changes decoding only: it may change when a run resumes."""
    metadata = {"resume": True, **rules}
    if help:
        metadata["help"] = help
    return field(default=default, metadata=metadata)


@dataclass
class TranslationConfig:
    """Every hyperparameter of a translation run."""

    model: str = field(
        default="seq2seq", metadata={"choices": ("seq2seq", "transformer")}
    )
    dataset: str = fields.dataset(
        "fra_eng", "kerasdl.data.text_translation:TRANSLATION_DATASETS"
    )
    max_words: int = fields.positive(
        10, "source sentences of at most this many words", 1_000
    )
    max_target_tokens: int = fields.positive(20, "target tokens kept", 1_000)
    epochs: int = fields.epochs(20)
    batch_size: int = fields.batch_size(64)
    learning_rate: float = fields.learning_rate(1e-3)
    lr_schedule: str = fields.lr_schedule("cosine")
    warmup_steps: int = field(
        default=0,
        metadata={"help": "linear warm-up steps", "min": 0, "max": 10_000_000},
    )
    max_tokens: int = fields.vocabulary_size(
        15_000, "vocabulary cap per language (padding, OOV, [start], [end] included)"
    )
    embedding_dim: int = fields.positive(256, "seq2seq", 100_000)
    units: int = fields.positive(256, "seq2seq GRU units", 100_000)
    hidden_dim: int = fields.positive(256, "Transformer width", 100_000)
    num_layers: int = fields.positive(2, maximum=1_000)
    num_heads: int = fields.positive(4, maximum=1_000)
    intermediate_dim: int = fields.positive(512, maximum=1_000_000)
    dropout: float = fields.fraction(0.2)
    beam_size: int = _decoding(4, min=1, max=1_000)
    length_penalty_alpha: float = _decoding(0.6, min=0, max=10)
    early_stopping_patience: int = fields.patience(3)
    test_limit: int | None = _decoding(
        None, "decode only the first N test sentences", min=1
    )
    num_samples: int = _decoding(8, "sample translations printed", min=0, max=10_000)
    seed: int = fields.seed(0)
    data_dir: str | None = fields.data_dir()
    download: bool = fields.download()
    limit: int | None = fields.limit()
    output: str = fields.output()
    verbose: str = fields.verbose()


Config = TranslationConfig


@dataclass
class TranslationRunResult:
    export_path: str
    bleu_beam: float
    bleu_greedy: float
    epochs_run: int
    training_seconds: float
    samples: list
    model_card: dict
    translator: Translator | None = None


@dataclass
class Vocabularies:
    """The two adapted `TextVectorization` layers and their fixed lengths."""

    source: object
    target: object
    source_length: int
    target_length: int

    @property
    def sizes(self) -> tuple[int, int]:
        return self.source.vocabulary_size(), self.target.vocabulary_size()


# Steps -------------------------------------------------------------------------------


def load_data(config: TranslationConfig):
    """The `kerasdl.data.TranslationDataset` of `config.dataset`."""
    from kerasdl.data.text_translation import load_translation_dataset

    try:
        return load_translation_dataset(
            config.dataset,
            max_words=config.max_words,
            max_target_tokens=config.max_target_tokens,
            seed=config.seed,
            limit=config.limit,
            data_dir=config.data_dir,
            download=config.download,
        )
    except ValueError as error:
        raise UsageError(error) from None


def _wrap(targets):
    import tensorflow as tf

    from kerasdl.data.text_translation import standardize_text

    return tf.strings.join([START, standardize_text(targets), END], separator=" ")


def build_vectorizers(config: TranslationConfig, data) -> Vocabularies:
    """Word vocabularies of both languages, adapted on the training pairs only."""
    import keras

    from kerasdl.data.text_translation import standardize_text

    source_length = 2 * config.max_words + 2  # Words plus split-off punctuation.
    target_length = config.max_target_tokens + 2  # [start] ... [end]

    def vectorizer(length, name):
        return keras.layers.TextVectorization(
            max_tokens=config.max_tokens,
            standardize=None,
            split="whitespace",
            output_sequence_length=length,
            name=name,
        )

    source = vectorizer(source_length, "source_vectorization")
    target = vectorizer(target_length, "target_vectorization")
    source.adapt(data.train.batch(1024).map(lambda s, t: standardize_text(s)))
    target.adapt(data.train.batch(1024).map(lambda s, t: _wrap(t)))
    missing = {START, END} - set(target.get_vocabulary())
    if missing:
        raise UsageError(
            f"--max-tokens {config.max_tokens} is too small: the target vocabulary "
            f"has no room for {', '.join(sorted(missing))}, which every translation "
            "needs; use a larger --max-tokens"
        )
    return Vocabularies(source, target, source_length, target_length)


def training_splits(config: TranslationConfig, data, vocab: Vocabularies):
    """`(train, validation)`: length-bucketed `({"source", "target_in"},
    target_out, weights)` batches, padded to their own longest sentence."""
    import tensorflow as tf

    from kerasdl.data.text_translation import standardize_text

    def to_model_inputs(sources, targets):
        target_ids = vocab.target(_wrap(targets))  # (batch, target_length)
        inputs = {
            "source": vocab.source(standardize_text(sources)),
            "target_in": target_ids[:, :-1],
        }
        target_out = target_ids[:, 1:]
        return inputs, target_out, tf.cast(tf.not_equal(target_out, 0), tf.float32)

    def longest_sentence(ids):
        return tf.reduce_max(tf.reduce_sum(tf.cast(tf.not_equal(ids, 0), tf.int32), 1))

    def trim(inputs, target_out, weights):
        # Drop the padding columns no sentence in this batch reaches.
        source_length = longest_sentence(inputs["source"])
        target_length = longest_sentence(target_out)
        inputs = {
            "source": inputs["source"][:, :source_length],
            "target_in": inputs["target_in"][:, :target_length],
        }
        return inputs, target_out[:, :target_length], weights[:, :target_length]

    def pipeline(dataset, training_split):
        if training_split:
            dataset = dataset.shuffle(
                min(data.num_examples["train"], 50_000),
                seed=config.seed,
                reshuffle_each_iteration=True,
            )
        # Batches of sentences of similar length, padded to their own longest:
        # on short Tatoeba sentences this halves the work of a fixed-length batch.
        boundaries = [4, 6, 8, 10, 12, 15]
        dataset = dataset.bucket_by_sequence_length(
            lambda sources, targets: tf.size(
                tf.strings.split(standardize_text(targets))
            ),
            bucket_boundaries=boundaries,
            bucket_batch_sizes=[config.batch_size] * (len(boundaries) + 1),
        )
        # Each bucket's batch count is fixed whatever the shuffle: state it, so fit
        # knows the epoch's length (progress bar, resumable stream, exact schedule).
        batches = int(dataset.reduce(0, lambda count, _: count + 1))
        dataset = dataset.apply(tf.data.experimental.assert_cardinality(batches))
        dataset = dataset.map(to_model_inputs, num_parallel_calls=tf.data.AUTOTUNE).map(
            trim, num_parallel_calls=tf.data.AUTOTUNE
        )
        if not training_split:
            dataset = dataset.cache()
        return dataset.prefetch(tf.data.AUTOTUNE)

    return pipeline(data.train, True), pipeline(data.validation, False)


def build_model(config: TranslationConfig, vocab: Vocabularies, name=None):
    """`Seq2SeqAttention` or `TransformerTranslator` over the two vocabularies."""
    from kerasdl.models.seq2seq import Seq2SeqAttention
    from kerasdl.models.transformer_translator import TransformerTranslator

    name = name or RECIPE_OF_MODEL.get(config.model, config.model)
    try:
        if config.model == "seq2seq":
            return Seq2SeqAttention(
                *vocab.sizes,
                embedding_dim=config.embedding_dim,
                units=config.units,
                dropout=config.dropout,
                name=name,
            )
        return TransformerTranslator(
            *vocab.sizes,
            hidden_dim=config.hidden_dim,
            num_layers=config.num_layers,
            num_heads=config.num_heads,
            intermediate_dim=config.intermediate_dim,
            dropout=config.dropout,
            name=name,
        )
    except ValueError as error:
        raise UsageError(error) from None


def build(model) -> None:
    """Creates the model's weights with a one-token batch (to size checkpoints)."""
    import numpy as np

    ids = np.zeros((1, 1), "int64")
    model({"source": ids, "target_in": ids}, training=False)


def compile_model(model, config: TranslationConfig, *, steps_per_epoch: int) -> None:
    """Adam, warm-up then cosine over `epochs`; loss and accuracy on real tokens."""
    import keras

    from kerasdl.tasks.steps import optimizer

    model.compile(
        optimizer=optimizer(
            "adam",
            config.learning_rate,
            schedule=config.lr_schedule,
            total_steps=config.epochs * steps_per_epoch,
            warmup_steps=config.warmup_steps,
        ),
        # Mean over real target tokens, whatever the batch's padded length.
        loss=keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, reduction="mean_with_sample_weight"
        ),
        weighted_metrics=["accuracy"],  # Token accuracy on real (unpadded) tokens.
    )


def translator(model, config: TranslationConfig, vocab: Vocabularies) -> Translator:
    """The `Translator` (strings in, strings out) around a trained model."""
    return Translator(
        model,
        vocab.source,
        vocab.target,
        vocab.target_length,
        config.length_penalty_alpha,
    )


def evaluate(translator_: Translator, config: TranslationConfig, data) -> dict:
    """Decodes the test split greedily and with beam search; BLEU and samples.

    Returns `{"metrics": {...}, "samples": [...], "sources": [...]}`.
    """
    import tensorflow as tf

    from kerasdl.metrics import corpus_bleu

    greedy = tf.function(lambda texts: translator_.translate(texts, 1))
    beam = tf.function(lambda texts: translator_.translate(texts, config.beam_size))
    sources = data.test_sources[: config.test_limit]
    references = [
        [_standardized_reference(r) for r in refs]
        for refs in data.test_references[: config.test_limit]
    ]
    hypotheses = {}
    for name, function in (("greedy", greedy), ("beam", beam)):
        outputs = []
        for first in range(0, len(sources), 256):
            batch = tf.constant(sources[first : first + 256])
            outputs += [t.decode("utf-8") for t in function(batch).numpy()]
        hypotheses[name] = outputs
    bleu = {name: corpus_bleu(hyps, references) for name, hyps in hypotheses.items()}
    single = corpus_bleu(hypotheses["beam"], [refs[:1] for refs in references])
    samples = [
        {"source": s, "beam": b, "greedy": g, "references": r}
        for s, b, g, r in zip(
            sources, hypotheses["beam"], hypotheses["greedy"], references
        )
    ][: config.num_samples]
    return {
        "metrics": {
            "test_bleu_beam": bleu["beam"].score,
            "test_bleu_greedy": bleu["greedy"].score,
            "test_bleu_beam_single_reference": single.score,
            "bleu_signature": bleu["beam"].signature,
            "test_sentences_decoded": len(sources),
        },
        "samples": samples,
        "sources": sources,
    }


def model_card(config, data, model, vocab, evaluation, fit_result, *, recipe):
    """The model card dict written beside the export."""
    from kerasdl.export.model_card import build_model_card
    from kerasdl.tasks import steps

    card = build_model_card(
        recipe=recipe,
        config=dataclasses.asdict(config),
        dataset={
            "name": data.name,
            "num_examples": data.num_examples,
            "source_language": data.source_language,
            "target_language": data.target_language,
            "source_vocabulary_size": vocab.sizes[0],
            "target_vocabulary_size": vocab.sizes[1],
            "input_dtype": "string",
        },
        metrics={
            **evaluation["metrics"],
            **steps.final_metrics(fit_result.history),
        },
        training=steps.training_summary(config, fit_result),
        parameter_count=model.count_params(),
        signature={
            name: {
                "inputs": {"text": [None], "dtype": "string"},
                "outputs": {"translation": [None]},
            }
            for name in ("serving_default", "greedy_decode", "beam_decode")
        },
    )
    card["samples"] = evaluation["samples"]
    return card


def export(translator_, config, base_dir, *, card, sources, extra_assets=None) -> str:
    """A new SavedModel version (strings in, strings out); returns its path."""
    from kerasdl.export import export_translator

    return export_translator(
        translator_,
        base_dir,
        beam_size=config.beam_size,
        model_card=card,
        verification_texts=sources[:16],
        extra_assets=extra_assets,
    )


# The pipeline ------------------------------------------------------------------------


def run(
    config: TranslationConfig,
    workdir,
    recipe: str | None = None,
    restart: bool = False,
) -> TranslationRunResult:
    """Trains a translator, reports BLEU (greedy and beam), exports; resumable.

    `recipe` names the run, its model and its export (default: the recipe of
    `config.model`, `seq2seq_attention` or `transformer_translate`).
    """
    from kerasdl import training
    from kerasdl.export import model_directory
    from kerasdl.plots import plot_attention, plot_learning_curves
    from kerasdl.recipes import default_dataset
    from kerasdl.tasks import steps
    from kerasdl.tasks.fit import fit

    steps.check_config(config)
    recipe = recipe or RECIPE_OF_MODEL.get(config.model, config.model)
    base_dir = model_directory(
        config.output, recipe, config.dataset, default_dataset(recipe)
    )
    with steps.open_run(config, workdir, recipe=recipe, restart=restart) as run_dir:
        steps.remove_stale_exports(base_dir)
        training.set_seed(config.seed)
        data = load_data(config)
        vocab = build_vectorizers(config, data)
        train, validation = training_splits(config, data, vocab)
        model = build_model(config, vocab, name=recipe)
        compile_model(model, config, steps_per_epoch=int(train.cardinality()))
        build(model)
        steps.check_space(run_dir, config.output, model)
        fitted = fit(
            model,
            train,
            validation,
            run_dir=run_dir,
            epochs=config.epochs,
            patience=config.early_stopping_patience,
            verbose=config.verbose,
        )
        translator_ = translator(model, config, vocab)
        evaluation = evaluate(translator_, config, data)
        for sample in evaluation["samples"]:
            print(
                f"  {sample['source']!r} -> {sample['beam']!r}  "
                f"(greedy {sample['greedy']!r}; reference {sample['references'][0]!r})"
            )
        heat_map = plot_attention(
            translator_, evaluation["sources"][:4], run_dir.file("attention.png")
        )
        curves = plot_learning_curves(
            fitted.history,
            run_dir.file("learning_curves.png"),
            title=f"{recipe} on {data.name}",
        )
        card = model_card(config, data, model, vocab, evaluation, fitted, recipe=recipe)
        export_path = export(
            translator_,
            config,
            base_dir,
            card=card,
            sources=evaluation["sources"],
            extra_assets={"learning_curves.png": curves, "attention.png": heat_map},
        )
        run_dir.mark_published(export_path)
    metrics = evaluation["metrics"]
    return TranslationRunResult(
        export_path,
        metrics["test_bleu_beam"],
        metrics["test_bleu_greedy"],
        fitted.epochs_run,
        fitted.seconds,
        evaluation["samples"],
        card,
        translator_,
    )


def report(result: TranslationRunResult) -> None:
    """Prints what `run` returned, for the command line."""
    print(
        f"Test BLEU: beam {result.bleu_beam:.2f}, greedy {result.bleu_greedy:.2f} "
        f"({result.epochs_run} epochs, {result.training_seconds:.1f} s)"
    )
    print(f"Model exported to: {result.export_path}")


def _standardized_reference(text: str) -> str:
    """A reference as the model writes its output: lowercase, `.`/`,` attached."""
    import tensorflow as tf

    from kerasdl.data.text_translation import standardize_text

    standardized = standardize_text(tf.constant([text]))[0].numpy().decode("utf-8")
    return standardized.replace(" .", ".").replace(" ,", ",")
