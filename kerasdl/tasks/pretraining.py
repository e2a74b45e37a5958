"""Pretraining for language models: other English text first, then the book.

    kerasdl train char_lstm --pretrain-epochs 6

With `--pretrain-epochs N` a language-model run first trains its freshly built
model for up to N epochs on a pretraining corpus (`--pretrain-corpus`,
`kerasdl.data.pretraining_text`: the English sides of the embedded Tatoeba pairs,
in the book's typography, encoded with the book's vocabulary), with the run's own
optimizer settings over those steps and early stopping on the corpus' held-out
end. The run then trains on the book as it would from scratch, with a fresh
optimizer, from the pretrained weights. The book's validation split is never
seen by pretraining.

Pretraining is a run of its own in `<workdir>/pretraining` (checkpoints every
epoch): a killed run resumes it where it stopped, and a run killed later reuses
its final weights. A new run in the workdir (after a published one, or
`--restart`) pretrains afresh.

```python
from kerasdl.tasks import language_modeling as lm, pretraining

config = lm.LanguageModelingConfig(pretrain_epochs=1, units=32)
data = lm.load_data(config)
model, fit_model, callbacks = lm.build_for_training(config, data)
# with run_dir an opened RunDirectory of the run:
# summary = pretraining.pretrain(model, config, data, run_dir)
```
"""

from __future__ import annotations

import dataclasses
import os

from kerasdl.tasks.exit_codes import UsageError

SUBDIRECTORY = "pretraining"
_STARTED = "pretraining_started"  # in the run's record: resume, not restart


def load_corpus(config, data):
    """The `PretrainingDataset` of `config.pretrain_corpus`, in the book's
    vocabulary, level, row length and batch size."""
    from kerasdl.data.pretraining_text import load_pretraining_dataset

    try:
        return load_pretraining_dataset(
            data.vocabulary,
            name=config.pretrain_corpus,
            level=config.level,
            sequence_length=config.sequence_length,
            batch_size=config.batch_size,
            seed=config.seed,
        )
    except ValueError as error:
        raise UsageError(error) from None


def pretraining_config(config):
    """`config` as pretraining trains: its epochs, the observed next tokens
    (no teacher), one batch at a time (no carried states)."""
    return dataclasses.replace(
        config,
        epochs=config.pretrain_epochs,
        distill_from=None,
        stateful=False,
        sampling="random",
    )


def pretrain(model, config, data, run_dir) -> dict:
    """Trains `model` on the pretraining corpus in `<run_dir>/pretraining`.

    Args:
        model: the run's freshly built language model (not a stateful trainer).
        config: the run's `LanguageModelingConfig`, `pretrain_epochs > 0`.
        data: the book's `LanguageModelingDataset` (its vocabulary is used).
        run_dir: the run's opened `kerasdl.tasks.RunDirectory`.

    Returns:
        The model card's `pretraining` section. The model holds the pretrained
        weights (the best held-out epoch's) and is compiled for pretraining:
        compile it again before training on the book.
    """
    from kerasdl.callbacks import AveragedWeightsForValidation
    from kerasdl.tasks import steps
    from kerasdl.tasks.fit import fit
    from kerasdl.tasks.language_modeling import compile_model
    from kerasdl.tasks.run_directory import RunDirectory

    corpus = load_corpus(config, data)
    pre_config = pretraining_config(config)
    # A run already under way resumes its pretraining; a new one starts afresh
    # (`RunDirectory.reset` forgets the run's record, and this mark with it).
    resume = bool(run_dir.read_record().get(_STARTED))
    run_dir.write_record(**{_STARTED: True})
    path = run_dir.file(SUBDIRECTORY)
    print(
        f"Pretraining on {corpus.name} ({corpus.num_tokens:,} tokens, "
        f"{corpus.unknown_fraction:.2%} unknown to the book's vocabulary) for up "
        f"to {config.pretrain_epochs} epochs in {path}."
    )
    recipe = f"{run_dir.recipe}/pretraining"
    with RunDirectory(path, recipe=recipe, restart=not resume) as pre_dir:
        pre_dir.check_resume(pre_config)
        compile_model(
            model, pre_config, steps_per_epoch=int(corpus.train.cardinality())
        )
        steps.check_space(pre_dir, config.output, model)
        averaged = [AveragedWeightsForValidation()] if config.ema_momentum else []
        fitted = fit(
            model,
            corpus.train,
            corpus.validation,
            run_dir=pre_dir,
            epochs=config.pretrain_epochs,
            patience=config.early_stopping_patience,
            verbose=config.verbose,
            extra_callbacks=averaged,
            after_fit="training on the book from them",
        )
    best = fitted.best_epoch
    held_out = fitted.history.get("val_loss", [])
    return {
        "corpus": corpus.name,
        "tokens": corpus.num_tokens,
        "unknown_fraction": round(corpus.unknown_fraction, 6),
        "epochs_requested": config.pretrain_epochs,
        "epochs_run": fitted.epochs_run,
        "best_epoch": best,
        "held_out_loss": float(held_out[best - 1]) if best and held_out else None,
        "seconds": round(fitted.seconds, 2),
        "workdir": os.path.abspath(path),
    }
