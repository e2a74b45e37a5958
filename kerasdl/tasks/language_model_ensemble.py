"""An ensemble of language-model recipes as library steps: members, average, export.

    kerasdl train char_ensemble        # = python -m kerasdl.recipes.char_ensemble

Each member is a language-modelling recipe (`kerasdl.recipes`, such as
`char_lstm_deep`) run with its own defaults, plus `member_flags`, in
`<workdir>/<member>` by `kerasdl.tasks.language_modeling.run`: trained, resumed,
or, when that workdir already holds a published run with the same settings,
reused as it is. A member's own export goes to `<workdir>/<member>/saved_models`.
The members' final weights form a `kerasdl.models.LanguageModelEnsemble` (their
next-token probabilities averaged, equal weights) -> perplexity and bits per
token over the whole training and validation streams, each member reading them
as `language_modeling.token_cross_entropies` reads a single model, the
probabilities averaged token by token (`average_cross_entropies`) -> the
interpolated Kneser-Ney baseline on the same tokens -> sampled continuations ->
a SavedModel of the ensemble (`serving_default`, `generate`, `score`), as any
single language model exports.

```python
from kerasdl.tasks import language_model_ensemble as task

config = task.LanguageModelEnsembleConfig(
    members="char_lstm,char_transformer", member_flags={"epochs": 2}
)
result = task.run(config, "runs/char_ensemble")
```
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field

from kerasdl.tasks import config_fields as fields
from kerasdl.tasks.exit_codes import UsageError

DESCRIPTION = (
    "Train or reuse the member language models of {recipe}, average their "
    "probabilities, evaluate (perplexity) and export the ensemble."
)
FIXED_FIELDS = ()
# Member settings the ensemble sets itself.
RESERVED_MEMBER_FLAGS = ("model", "output", "dataset", "verbose")


@dataclass
class LanguageModelEnsembleConfig:
    """The members of a language-model ensemble, and how it is evaluated."""

    members: str = field(
        default="char_lstm_deep,char_lstm,char_transformer",
        metadata={"help": "comma-separated language-model recipes (at least two)"},
    )
    member_flags: dict = field(
        default_factory=dict,
        metadata={
            "help": "settings every member runs with over its recipe's defaults, "
            "as JSON (e.g. '{\"epochs\": 5}')"
        },
    )
    dataset: str = fields.dataset(
        "timemachine",
        "kerasdl.data.timemachine:LANGUAGE_MODELING_DATASETS",
        "what every member trains on",
    )
    ngram_order: int = field(
        default=7,
        metadata={"help": "order of the Kneser-Ney baseline", "min": 1, "max": 20},
    )
    sample_length: int = field(
        default=120,
        metadata={"help": "tokens sampled per prompt", "min": 1, "max": 10_000},
    )
    temperature: float = field(
        default=0.7,
        metadata={"help": "sampling temperature", "above": 0, "max": 100},
    )
    seed: int = fields.seed(
        0,
        "the samples' seed (each member trains with its recipe's seed; "
        "--member-flags sets another)",
    )
    output: str = fields.output()
    verbose: str = fields.verbose()


Config = LanguageModelEnsembleConfig


@dataclass
class LanguageModelEnsembleRunResult:
    export_path: str
    metrics: dict
    members: list
    samples: list
    model_card: dict


def member_names(config: LanguageModelEnsembleConfig) -> list[str]:
    """The member recipes of `config`, checked: known language-model recipes,
    at least two, each once."""
    from kerasdl.recipes import RECIPES

    names = [name.strip() for name in str(config.members).split(",")]
    known = sorted(  # Single models: not an ensemble of ensembles.
        name
        for name, recipe in RECIPES.items()
        if recipe.load().TASK.__name__ == "kerasdl.tasks.language_modeling"
    )
    for name in names:
        if name not in known:
            raise UsageError(
                f"--members: {name!r} is not a language-model recipe; expected a "
                f"comma-separated list of: {', '.join(known)}"
            )
    if len(names) < 2:
        raise UsageError(
            f"--members must name at least two recipes; got {config.members!r}"
        )
    if len(set(names)) != len(names):
        raise UsageError(
            f"--members names a recipe more than once; got {config.members!r} "
            "(the same recipe with the same settings trains the same model)"
        )
    return names


def member_config(config: LanguageModelEnsembleConfig, name: str, workdir):
    """Member `name`'s `LanguageModelingConfig`: its recipe's, with `member_flags`."""
    from kerasdl.recipes import get_recipe
    from kerasdl.tasks.language_modeling import LanguageModelingConfig

    flags = config.member_flags
    if not isinstance(flags, dict):
        raise UsageError(f"--member-flags must be a JSON object; got {flags!r}")
    known = {f.name for f in dataclasses.fields(LanguageModelingConfig)}
    for key in flags:
        if key in RESERVED_MEMBER_FLAGS or key not in known:
            allowed = sorted(known - set(RESERVED_MEMBER_FLAGS))
            raise UsageError(
                f"--member-flags: {key!r} is not a member setting; expected keys "
                f"among: {', '.join(allowed)}"
            )
    return dataclasses.replace(
        get_recipe(name).load().CONFIG,
        **flags,
        dataset=config.dataset,
        verbose=config.verbose,
        output=os.path.join(workdir, name, "saved_models"),
    )


def check_config(config: LanguageModelEnsembleConfig) -> None:
    """Every field's rule, the members and each member's settings."""
    from kerasdl.tasks import language_modeling, steps

    steps.check_config(config)
    for name in member_names(config):
        try:
            language_modeling.check_config(member_config(config, name, "."))
        except (UsageError, TypeError) as error:
            raise UsageError(f"--member-flags, member {name}: {error}") from None


def train_member(name, config, workdir, *, restart=False):
    """Runs (or reuses) member `name` in `workdir`; returns `(model, data, reused)`.

    A workdir that holds a published run of the same settings is reused: its
    final weights are loaded without training or exporting again.
    """
    from kerasdl.tasks import language_modeling
    from kerasdl.tasks.run_directory import RunDirectory

    run_dir = RunDirectory(workdir, recipe=name, writer=False)
    reused = not restart and run_dir.holds_published(config)
    if not reused:
        try:
            language_modeling.run(config, workdir, recipe=name, restart=restart)
        except UsageError as error:
            raise type(error)(f"member {name}: {error}") from None
    model = language_modeling.load_trained(config, run_dir, name=name)
    return model, language_modeling.load_data(config), reused


def average_cross_entropies(member_losses):
    """Per-token cross-entropy (nats) of the members' averaged probabilities.

    Args:
        member_losses: one array per member of the same tokens' negative
            log-probabilities (`language_modeling.token_cross_entropies`).

    Returns:
        float64 `(tokens,)`: `-log((p_1 + ... + p_n) / n)` token by token.
    """
    import numpy as np

    losses = np.stack([np.asarray(x, "float64") for x in member_losses])
    return -(np.logaddexp.reduce(-losses, axis=0) - math.log(len(losses)))


def evaluate(members, member_configs, data, ngram_order) -> dict:
    """Whole-stream perplexities of the ensemble and of each member; the baseline."""
    from kerasdl.tasks.language_modeling import (
        baseline_metrics,
        split_metrics,
        token_cross_entropies,
    )

    metrics = {"members": {model.name: {} for model in members}}
    for split, ids in (("train", data.train_ids), ("validation", data.validation_ids)):
        losses = [
            token_cross_entropies(model, ids, chunk_length=c.sequence_length)
            for model, c in zip(members, member_configs)
        ]
        metrics.update(split_metrics(split, average_cross_entropies(losses)))
        for model, member_losses in zip(members, losses):
            metrics["members"][model.name].update(split_metrics(split, member_losses))
    metrics.update(baseline_metrics(data, ngram_order)[0])
    return metrics


def run(
    config: LanguageModelEnsembleConfig,
    workdir,
    recipe: str | None = None,
    restart: bool = False,
) -> LanguageModelEnsembleRunResult:
    """Trains or reuses the members, evaluates and exports the ensemble."""
    from kerasdl.export import model_directory
    from kerasdl.export.model_card import build_model_card
    from kerasdl.models import LanguageModelEnsemble
    from kerasdl.recipes import default_dataset
    from kerasdl.tasks import language_modeling, steps

    check_config(config)
    recipe = recipe or "char_ensemble"
    names = member_names(config)
    base_dir = model_directory(
        config.output, recipe, config.dataset, default_dataset(recipe)
    )
    with steps.open_run(config, workdir, recipe=recipe, restart=restart) as run_dir:
        steps.remove_stale_exports(base_dir)
        configs = [member_config(config, name, run_dir.path) for name in names]
        members, summaries, data = [], [], None
        for name, member in zip(names, configs):
            model, member_data, reused = train_member(
                name, member, os.path.join(run_dir.path, name), restart=restart
            )
            if data is None:
                data = member_data
            elif list(member_data.vocabulary.tokens) != list(data.vocabulary.tokens):
                raise UsageError(
                    f"member {name} has another vocabulary than {names[0]} (its "
                    "level or vocabulary size differs); the members of an ensemble "
                    "must share one"
                )
            members.append(model)
            summaries.append(
                {
                    "recipe": name,
                    "workdir": os.path.abspath(os.path.join(run_dir.path, name)),
                    "reused_published_run": reused,
                    "parameter_count": model.count_params(),
                    "config": dataclasses.asdict(member),
                }
            )
        ensemble = LanguageModelEnsemble(members, name=recipe)
        metrics = evaluate(members, configs, data, config.ngram_order)
        text_model_ = language_modeling.text_model(ensemble, data)
        sample_list = language_modeling.samples(text_model_, config)
        for sample in sample_list:
            print(f"  {sample['prompt']!r} -> {sample['sampled']!r}")
        card = build_model_card(
            recipe=recipe,
            config=dataclasses.asdict(config),
            dataset=language_modeling.dataset_card(data),
            metrics=metrics,
            training={"members": summaries},
            parameter_count=ensemble.count_params(),
            signature=language_modeling.signature_card(),
        )
        card["samples"] = sample_list
        export_path = language_modeling.export(text_model_, base_dir, card=card)
        run_dir.mark_published(export_path)
    return LanguageModelEnsembleRunResult(
        export_path, metrics, summaries, sample_list, card
    )


def report(result: LanguageModelEnsembleRunResult) -> None:
    """Prints what `run` returned, for the command line."""
    m = result.metrics
    for name, member in m["members"].items():
        print(
            f"Member {name}: validation perplexity "
            f"{member['validation_perplexity']:.3f} "
            f"({member['validation_bits_per_token']:.3f} bits per token)"
        )
    print(
        f"Ensemble of {len(m['members'])}: perplexity train "
        f"{m['train_perplexity']:.3f}, validation {m['validation_perplexity']:.3f} "
        f"({m['validation_bits_per_token']:.3f} bits per token); {m['baseline']}: "
        f"validation {m['baseline_validation_perplexity']:.3f} "
        f"({m['baseline_validation_bits_per_token']:.3f} bits per token)"
    )
    print(f"Model exported to: {result.export_path}")
