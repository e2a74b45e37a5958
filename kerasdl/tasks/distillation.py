"""Knowledge distillation for language models: a trained teacher's soft targets.

    kerasdl train char_lstm --distill-from runs/char_ensemble/timemachine

The teacher is the workdir of a published language-model run: one model's
(`kerasdl train char_lstm`), or an ensemble's (`kerasdl train char_ensemble`,
whose members are read from `<workdir>/<member>`). Each teacher model reads the
training stream as `language_modeling.token_log_probabilities` reads it (an RNN
carrying its states, a Transformer in overlapping windows), their next-token
probabilities are averaged, and the student trains on
`weight * teacher + (1 - weight) * one_hot(next token)` at every position, in the
very windows it would draw without a teacher (`kerasdl.data.timemachine`'s
`soft_target_batches`). Validation keeps the observed tokens, so the early-stopping
loss and every reported figure mean what they mean without distillation.

```python
from kerasdl.tasks import distillation, language_modeling as lm

config = lm.LanguageModelingConfig(distill_from="runs/char_ensemble/timemachine")
data = distillation.with_soft_targets(lm.load_data(config), config)
```
"""

from __future__ import annotations

import dataclasses
import os

from kerasdl.tasks.exit_codes import UsageError

# The teacher's distributions over the training stream are held in memory.
MAX_TEACHER_BYTES = 2 << 30


def teacher_runs(path, workdir=None) -> list:
    """The finished runs that make up the teacher in workdir `path`, checked
    without loading a model: `[(run_dir, config, recipe)]`, one for a single
    model's run, one per member for an ensemble's.

    Args:
        path: the teacher's workdir (`--distill-from`).
        workdir: the student's workdir, refused as a teacher's (the student's
            run would start there afresh and delete it). Defaults to `None`.

    Raises:
        UsageError: `path` is not the workdir of a published language-model run.
    """
    from kerasdl.tasks import language_modeling
    from kerasdl.tasks.run_directory import RunDirectory

    flag = "--distill-from"
    if not os.path.isdir(path):
        what = "is a file" if os.path.exists(path) else "does not exist"
        raise UsageError(
            f"{flag} {path} {what}; expected the workdir of a published "
            "language-model run (kerasdl train char_ensemble writes "
            "runs/char_ensemble/timemachine)"
        )
    if workdir is not None and os.path.realpath(path) == os.path.realpath(workdir):
        raise UsageError(
            f"{flag} {path} is this run's own --workdir; the student needs a "
            "workdir of its own"
        )
    run_dir = RunDirectory(path, recipe=None, writer=False)
    record = run_dir.read_record()
    config = record.get("config") or {}
    if run_dir.phase != "published":
        raise UsageError(
            f"{flag} {path} holds no finished run (phase: {run_dir.phase}); train "
            "the teacher there to the end first"
        )
    if "members" in config:  # An ensemble's run: its members' workdirs.
        names = [name.strip() for name in str(config["members"]).split(",")]
        return [
            run
            for name in names
            for run in teacher_runs(os.path.join(path, name), workdir)
        ]
    if config.get("model") not in language_modeling.MODEL_NAMES:
        raise UsageError(
            f"{flag} {path} holds a {record.get('recipe')} run, not a language "
            "model's; expected the workdir of a language-model recipe (char_*)"
        )
    if not os.path.exists(run_dir.final_checkpoint):
        raise UsageError(
            f"{flag} {path} has lost its final weights "
            f"({run_dir.final_checkpoint}); train the teacher again"
        )
    names = {f.name for f in dataclasses.fields(language_modeling.Config)}
    teacher_config = language_modeling.Config(
        **{key: value for key, value in config.items() if key in names}
    )
    return [(run_dir, teacher_config, record.get("recipe"))]


def load_teacher(path) -> list:
    """The trained models of the teacher in workdir `path` (`teacher_runs`):
    `[(model, config)]`."""
    from kerasdl.tasks.language_modeling import load_trained

    return [
        (load_trained(config, run_dir, name=recipe), config)
        for run_dir, config, recipe in teacher_runs(path)
    ]


def teacher_probabilities(teacher, ids):
    """The teacher models' next-token probabilities averaged, at every token of
    `ids` but the last: float32 `(len(ids) - 1, vocabulary size)`."""
    import numpy as np

    from kerasdl.tasks.language_modeling import token_log_probabilities

    total = None
    for model, config in teacher:
        log_probs = token_log_probabilities(
            model, ids, chunk_length=config.sequence_length
        )
        total = np.exp(log_probs) if total is None else total + np.exp(log_probs)
    return total / len(teacher)


def check_teacher(config, workdir=None) -> None:
    """Refuses a `config.distill_from` that is not a finished language-model
    run over the student's vocabulary (same data set, level and cap), or is
    the student's own `workdir`."""
    for _, teacher, recipe in teacher_runs(config.distill_from, workdir):
        ours = (config.dataset, config.level, config.max_vocabulary_size)
        theirs = (teacher.dataset, teacher.level, teacher.max_vocabulary_size)
        if ours != theirs:
            raise UsageError(
                f"--distill-from {config.distill_from}: the teacher {recipe} was "
                "trained on (dataset, level, max vocabulary size) = "
                f"{theirs}, this run on {ours}; they must share one vocabulary"
            )


def with_soft_targets(data, config):
    """`data` with training batches of soft targets from `config.distill_from`
    (weight `config.distillation_weight`) and one-hot validation targets.

    Raises:
        UsageError: the teacher is not a published language-model run, was
            trained on another vocabulary, or its distributions over the
            training stream would not fit in `MAX_TEACHER_BYTES`.
    """
    import tensorflow as tf

    from kerasdl.data import soft_target_batches

    size = data.vocabulary.size
    needed = (len(data.train_ids) - 1) * size * 4
    if needed > MAX_TEACHER_BYTES:
        raise UsageError(
            f"--distill-from: the teacher's distributions over the training stream "
            f"({len(data.train_ids) - 1} tokens x {size} vocabulary entries) need "
            f"{needed >> 20} MiB, over the {MAX_TEACHER_BYTES >> 20} MiB limit; "
            "distil at character level or cap --max-vocabulary-size"
        )
    teacher = load_teacher(config.distill_from)
    probabilities = teacher_probabilities(teacher, data.train_ids)
    train = soft_target_batches(
        data, probabilities, config.distillation_weight, seed=config.seed
    )
    validation = data.validation.map(
        lambda inputs, targets: (inputs, tf.one_hot(targets, size))
    )
    return dataclasses.replace(
        data,
        train=train.prefetch(tf.data.AUTOTUNE),
        validation=validation.prefetch(tf.data.AUTOTUNE),
    )
