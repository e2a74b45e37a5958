"""Training step time of the char_* recipes' models, float32 against a mixed policy.

Run:

    python benchmarks/mixed_precision.py                       # every char_* recipe
    python benchmarks/mixed_precision.py --recipes char_lstm --policies float32,mixed_bfloat16

What is timed: `train_on_batch` on one real batch of *The Time Machine*
(the recipe's own pipeline, batch size and sequence length), the model, optimizer
(clipping, moving average) and loss as `kerasdl train <recipe>` builds and
compiles them (`language_modeling.build_for_training`) with each `--policies`
entry as its `--dtype-policy`.
Each side first takes a few untimed steps (tracing); then the sides are timed in
turn, `--steps` steps each, rotating who goes first, `--repeats` times, and the
median milliseconds per step are reported with the ratio to the first policy, so
load from other processes hits every side alike.

On a CPU, bfloat16 matrix products are fast only with AMX or AVX512_BF16
(`lscpu | grep -o 'amx_bf16\\|avx512_bf16'`); elsewhere expect mixed_bfloat16 to be
slower than float32.
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import time

CHAR_RECIPES = "char_rnn,char_gru,char_lstm,char_lstm_deep,char_transformer"


def time_recipe(recipe: str, policies: list[str], steps: int, repeats: int):
    import dataclasses

    from kerasdl.tasks import language_modeling as task

    config = importlib.import_module(f"kerasdl.recipes.{recipe}").CONFIG
    data = task.load_data(config)
    x, y = next(iter(data.train))
    x, y = x.numpy(), y.numpy()
    sides = {
        policy: task.build_for_training(
            dataclasses.replace(config, dtype_policy=policy), data, name=recipe
        )[1]
        for policy in policies
    }
    for model in sides.values():
        for _ in range(3):
            model.train_on_batch(x, y)
    times = {policy: [] for policy in policies}
    for repeat in range(repeats):
        order = policies[repeat % len(policies) :] + policies[: repeat % len(policies)]
        for policy in order:
            start = time.perf_counter()
            for _ in range(steps):
                sides[policy].train_on_batch(x, y)
            times[policy].append((time.perf_counter() - start) / steps * 1e3)
    return {policy: statistics.median(values) for policy, values in times.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", default=CHAR_RECIPES, help="comma-separated")
    parser.add_argument(
        "--policies", default="float32,mixed_bfloat16", help="comma-separated"
    )
    parser.add_argument("--steps", type=int, default=10, help="steps per timed turn")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    policies = args.policies.split(",")
    print(f"| recipe | {' | '.join(f'{p} ms/step' for p in policies)} | speed-up |")
    print(f"| --- | {' | '.join('---' for _ in policies)} | --- |")
    for recipe in args.recipes.split(","):
        ms = time_recipe(recipe, policies, args.steps, args.repeats)
        ratios = ", ".join(
            f"{ms[policies[0]] / ms[p]:.2f}x ({p})" for p in policies[1:]
        )
        cells = " | ".join(f"{ms[p]:.1f}" for p in policies)
        print(f"| {recipe} | {cells} | {ratios} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
