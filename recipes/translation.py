"""Translation: the story the English -> French recipes tell.

    python -m kerasdl train seq2seq_attention      # = python -m recipes.seq2seq_attention
    python -m kerasdl train transformer_translate  # = python -m recipes.transformer_translate

Data (`kerasdl.data.load_translation_dataset`, test held out by English sentence)
-> word vocabularies (`TextVectorization` on standardized text; the target wrapped
in `[start] ... [end]`) -> model (`kerasdl.models`) trained with teacher forcing by
`model.fit` (loss and token accuracy ignore padding) -> greedy and beam decoding
(`kerasdl.export.Translator`, through `kerasdl.decoding`) of the test split, BLEU
(`kerasdl.training.corpus_bleu`), sample translations, an attention heat map -> a
SavedModel (`kerasdl.export.export_translator`) whose `serving_default` maps raw
English strings to French strings (standardize -> tokenize -> encode -> beam search
-> detokenize, all in the graph), with `greedy_decode` and `beam_decode` signatures.
The per-model recipes (`recipes/seq2seq_attention.py`,
`recipes/transformer_translate.py`) are only their difference from
`TranslationConfig`'s defaults.

Files written:
    <workdir>/training_log.csv  one row per epoch; <workdir>/tensorboard/
    <workdir>/learning_curves.png, <workdir>/attention.png
    <output>/<recipe>/<N>/      the SavedModel, with assets.extra/model_card.json
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field

from kerasdl.export.translator import END, START, Translator
from kerasdl.training.recipe_main import recipe_main

RECIPE_OF_MODEL = {
    "seq2seq": "seq2seq_attention",
    "transformer": "transformer_translate",
}


@dataclass
class TranslationConfig:
    """Every hyperparameter of a translation run."""

    model: str = field(
        default="seq2seq", metadata={"choices": ("seq2seq", "transformer")}
    )
    dataset: str = field(
        default="fra_eng",
        metadata={"help": "fra_eng, ted_hrlr_translate or wmt14_translate"},
    )
    max_words: int = 10  # Source sentences of at most this many words.
    max_target_tokens: int = 20  # Target tokens (punctuation included) kept.
    epochs: int = 20
    batch_size: int = 64
    learning_rate: float = 1e-3
    lr_schedule: str = field(
        default="cosine", metadata={"choices": ("constant", "cosine")}
    )
    warmup_steps: int = 0  # Linear warm-up before the schedule (Transformer).
    max_tokens: int = 15_000  # Vocabulary cap per language.
    embedding_dim: int = 256  # seq2seq.
    units: int = 256  # seq2seq GRU units.
    hidden_dim: int = 256  # Transformer width.
    num_layers: int = 2
    num_heads: int = 4
    intermediate_dim: int = 512
    dropout: float = 0.2
    beam_size: int = 4
    length_penalty_alpha: float = 0.6
    early_stopping_patience: int = 3
    test_limit: int | None = None  # Decode only the first N test sentences.
    num_samples: int = 8  # Sample translations printed and plotted (heat maps: 4).
    seed: int = 0
    data_dir: str | None = None
    download: bool = False
    limit: int | None = None  # Cap on pairs per split (smoke tests).
    output: str = "saved_models"
    verbose: str = field(
        default="auto",
        metadata={
            "choices": ("auto", "0", "1", "2"),
            "help": "fit's progress: 1 bar, 2 lines",
        },
    )


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


def train_and_evaluate(
    config: TranslationConfig, workdir: str, recipe: str | None = None
) -> TranslationRunResult:
    """Trains a translator, reports BLEU (greedy and beam), exports; see module doc.

    `recipe` names the run, its model and its export (default: the recipe of
    `config.model`, `seq2seq_attention` or `transformer_translate`).
    """
    import keras
    import tensorflow as tf

    from kerasdl import training
    from kerasdl.data.text_translation import load_translation_dataset, standardize_text
    from kerasdl.export import export_translator, model_directory
    from kerasdl.models.seq2seq import Seq2SeqAttention
    from kerasdl.models.transformer_translator import TransformerTranslator
    from recipes import RECIPES

    recipe = recipe or RECIPE_OF_MODEL.get(config.model, config.model)
    workdir = str(workdir)
    os.makedirs(workdir, exist_ok=True)
    training.set_seed(config.seed)

    # Data and vocabularies ----------------------------------------------------------------
    try:
        data = load_translation_dataset(
            config.dataset,
            max_words=config.max_words,
            max_target_tokens=config.max_target_tokens,
            seed=config.seed,
            limit=config.limit,
            data_dir=config.data_dir,
            download=config.download,
        )
    except ValueError as error:
        raise training.UsageError(error) from None
    source_length = 2 * config.max_words + 2  # Words plus split-off punctuation.
    target_length = config.max_target_tokens + 2  # [start] ... [end]
    source_vectorizer = keras.layers.TextVectorization(
        max_tokens=config.max_tokens,
        standardize=None,
        split="whitespace",
        output_sequence_length=source_length,
        name="source_vectorization",
    )
    target_vectorizer = keras.layers.TextVectorization(
        max_tokens=config.max_tokens,
        standardize=None,
        split="whitespace",
        output_sequence_length=target_length,
        name="target_vectorization",
    )

    def wrap(targets):
        return tf.strings.join([START, standardize_text(targets), END], separator=" ")

    source_vectorizer.adapt(
        data.train.batch(1024).map(lambda s, t: standardize_text(s))
    )
    target_vectorizer.adapt(data.train.batch(1024).map(lambda s, t: wrap(t)))

    def to_model_inputs(sources, targets):
        target_ids = target_vectorizer(wrap(targets))  # (batch, target_length)
        inputs = {
            "source": source_vectorizer(standardize_text(sources)),
            "target_in": target_ids[:, :-1],
        }
        target_out = target_ids[:, 1:]
        return inputs, target_out, tf.cast(tf.not_equal(target_out, 0), tf.float32)

    def trim(inputs, target_out, weights):
        # Drop the padding columns no sentence in this batch reaches.
        source_length = longest_sentence(inputs["source"])
        target_length = longest_sentence(target_out)
        inputs = {
            "source": inputs["source"][:, :source_length],
            "target_in": inputs["target_in"][:, :target_length],
        }
        return inputs, target_out[:, :target_length], weights[:, :target_length]

    def longest_sentence(ids):
        return tf.reduce_max(tf.reduce_sum(tf.cast(tf.not_equal(ids, 0), tf.int32), 1))

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
        # knows the epoch's length (progress bar, no "ran out of data" warning).
        batches = int(dataset.reduce(0, lambda count, _: count + 1))
        dataset = dataset.apply(tf.data.experimental.assert_cardinality(batches))
        dataset = dataset.map(to_model_inputs, num_parallel_calls=tf.data.AUTOTUNE).map(
            trim, num_parallel_calls=tf.data.AUTOTUNE
        )
        return (
            dataset.cache().prefetch(tf.data.AUTOTUNE)
            if not training_split
            else (dataset.prefetch(tf.data.AUTOTUNE))
        )

    train, validation = pipeline(data.train, True), pipeline(data.validation, False)

    # Model --------------------------------------------------------------------------------
    sizes = (source_vectorizer.vocabulary_size(), target_vectorizer.vocabulary_size())
    try:
        if config.model == "seq2seq":
            model = Seq2SeqAttention(
                *sizes,
                embedding_dim=config.embedding_dim,
                units=config.units,
                dropout=config.dropout,
                name=recipe,
            )
        else:
            model = TransformerTranslator(
                *sizes,
                hidden_dim=config.hidden_dim,
                num_layers=config.num_layers,
                num_heads=config.num_heads,
                intermediate_dim=config.intermediate_dim,
                dropout=config.dropout,
                name=recipe,
            )
    except ValueError as error:
        raise training.UsageError(error) from None
    steps_per_epoch = int(train.cardinality())
    learning_rate = config.learning_rate
    if config.lr_schedule == "cosine":
        learning_rate = keras.optimizers.schedules.CosineDecay(
            0.0 if config.warmup_steps else config.learning_rate,
            decay_steps=max(1, config.epochs * steps_per_epoch - config.warmup_steps),
            warmup_target=config.learning_rate if config.warmup_steps else None,
            warmup_steps=config.warmup_steps,
        )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        # Mean over real target tokens, whatever the batch's padded length.
        loss=keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, reduction="mean_with_sample_weight"
        ),
        weighted_metrics=["accuracy"],  # Token accuracy on real (unpadded) tokens.
    )

    # Train with teacher forcing -------------------------------------------------------------
    run = training.fit_with_early_stopping(
        model,
        train,
        validation,
        epochs=config.epochs,
        patience=config.early_stopping_patience,
        workdir=workdir,
        verbose=config.verbose,
    )
    history, log_path = run.history, run.log_path
    training_seconds, epochs_run = run.seconds, run.epochs_run

    # Decode the test split, BLEU --------------------------------------------------------------
    translator = Translator(
        model,
        source_vectorizer,
        target_vectorizer,
        target_length,
        config.length_penalty_alpha,
    )
    greedy = tf.function(lambda texts: translator.translate(texts, 1))
    beam = tf.function(lambda texts: translator.translate(texts, config.beam_size))
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
    bleu = {
        name: training.corpus_bleu(hyps, references)
        for name, hyps in hypotheses.items()
    }
    single = training.corpus_bleu(hypotheses["beam"], [refs[:1] for refs in references])
    samples = [
        {"source": s, "beam": b, "greedy": g, "references": r}
        for s, b, g, r in zip(
            sources, hypotheses["beam"], hypotheses["greedy"], references
        )
    ][: config.num_samples]
    for sample in samples:
        print(
            f"  {sample['source']!r} -> {sample['beam']!r}  "
            f"(greedy {sample['greedy']!r}; reference {sample['references'][0]!r})"
        )
    heat_map = training.plot_attention(
        translator, sources[:4], os.path.join(workdir, "attention.png")
    )
    curves = training.plot_learning_curves(
        training.read_history(log_path),
        os.path.join(workdir, "learning_curves.png"),
        title=f"{recipe} on {data.name}",
    )

    # Export: raw English strings in, French strings out ---------------------------------------
    card = training.build_model_card(
        recipe=recipe,
        config=dataclasses.asdict(config),
        dataset={
            "name": data.name,
            "num_examples": data.num_examples,
            "source_language": data.source_language,
            "target_language": data.target_language,
            "source_vocabulary_size": sizes[0],
            "target_vocabulary_size": sizes[1],
            "input_dtype": "string",
        },
        metrics={
            "test_bleu_beam": bleu["beam"].score,
            "test_bleu_greedy": bleu["greedy"].score,
            "test_bleu_beam_single_reference": single.score,
            "bleu_signature": bleu["beam"].signature,
            "test_sentences_decoded": len(sources),
            **{f"final_{k}": float(v[-1]) for k, v in history.history.items()},
        },
        training={
            "epochs_run": epochs_run,
            "epochs_requested": config.epochs,
            "early_stopped": epochs_run < config.epochs,
            "training_seconds": round(training_seconds, 2),
            "workdir": os.path.abspath(workdir),
        },
        parameter_count=model.count_params(),
        signature={
            name: {
                "inputs": {"text": [None], "dtype": "string"},
                "outputs": {"translation": [None]},
            }
            for name in ("serving_default", "greedy_decode", "beam_decode")
        },
    )
    card["samples"] = samples
    export_path = export_translator(
        translator,
        model_directory(
            config.output,
            recipe,
            data.name,
            RECIPES[recipe].dataset if recipe in RECIPES else None,
        ),
        beam_size=config.beam_size,
        model_card=card,
        verification_texts=sources[:16],
        extra_assets={"learning_curves.png": curves, "attention.png": heat_map},
    )
    return TranslationRunResult(
        export_path,
        bleu["beam"].score,
        bleu["greedy"].score,
        epochs_run,
        training_seconds,
        samples,
        card,
        translator,
    )


def _standardized_reference(text: str) -> str:
    """A reference as the model writes its output: lowercase, `.`/`,` attached."""
    import tensorflow as tf

    from kerasdl.data.text_translation import standardize_text

    standardized = standardize_text(tf.constant([text]))[0].numpy().decode("utf-8")
    return standardized.replace(" .", ".").replace(" ,", ",")


# Command line ------------------------------------------------------------------------


def _report(result: TranslationRunResult) -> None:
    print(
        f"Test BLEU: beam {result.bleu_beam:.2f}, greedy {result.bleu_greedy:.2f} "
        f"({result.epochs_run} epochs, {result.training_seconds:.1f} s)"
    )
    print(f"Model exported to: {result.export_path}")


# main(defaults, argv=None, *, recipe, prog=None) -> exit status; see recipe_main.
main = recipe_main(
    train_and_evaluate,
    _report,
    description="Train, evaluate (BLEU) and export the {recipe} recipe.",
    workdir_help="logs, curves, attention map",
    skip=("model",),
)


train_and_evaluate_translation = train_and_evaluate  # Its earlier name.
