"""Exported translation throughput: key/value-cached vs uncached Transformer decoding.

Builds the `transformer_translate` recipe's model (kerasdl/recipes/transformer_translate.py:
d=128, 2 encoder + 2 decoder blocks, 4 heads, 512-wide feed-forward) over the
fra-eng vocabularies, loads trained weights from a `kerasdl train
transformer_translate` run (`--checkpoint <workdir>/checkpoints/final.npz`), and
exports it twice with the task's export code (`kerasdl.export.export_translator`):

* `cached`    `TransformerTranslator.generate` as shipped: one decoder step per
              new token, the blocks' self-attention keys/values in fixed-size
              buffers, the cross-attention keys/values computed once per sentence;
* `uncached`  the same weights and code with `use_cache=False`: every step reruns
              the decoder over the whole output buffer (the decoding before the cache).

Both SavedModels are reloaded and their `serving_default` (beam search, beam 4,
length penalty 0.6) translates the same fra-eng test sentences in batches; the two
are timed in alternating rounds after a warm-up, and the table gives the median
sentences/s and the ratio. It also checks that the two exports return the same
translations, sentence by sentence.

Without `--checkpoint` the weights are untrained: such a model never emits the end
token, so every sentence runs to the full `max_length` (22 tokens), which is the
worst case for the uncached side.

    python benchmarks/decoding.py --checkpoint runs/transformer_translate/checkpoints/final.npz
    python benchmarks/decoding.py --sentences 256 --rounds 3 --batch-size 64

Measured on this 2-core CPU, shared with other jobs (so both rates are low; they
were measured in alternating rounds), with the weights of a full 9-epoch
`kerasdl train transformer_translate` run (test BLEU 46.1 beam), 512 test sentences,
batches of 64, 5.6 generated tokens per sentence on average:

    | decoding | sentences/s |
    |---|---:|
    | uncached | 8.7 |
    | cached | 70.1 |
    Speed-up: 8.02x; identical translations: 512/512
"""

import argparse
import dataclasses
import statistics
import tempfile
import time

# kerasdl first, as users import it (it sets TensorFlow's oneDNN default).
import kerasdl  # noqa: F401

# isort: split
import tensorflow as tf

from kerasdl import training
from kerasdl.callbacks.resumable_checkpoint import ResumableCheckpoint
from kerasdl.export import export_translator
from kerasdl.export.translator import Translator
from kerasdl.recipes.transformer_translate import CONFIG
from kerasdl.tasks import translation as task


class UncachedTranslator(Translator):
    """The shipped `Translator`, decoding without the key/value cache."""

    def generate(self, texts, beam_size: int = 1):
        return self.model.generate(
            self.source_ids(texts),
            self.start_id,
            self.end_id,
            self.max_length,
            beam_size=beam_size,
            length_penalty_alpha=self.length_penalty_alpha,
            use_cache=False,
        )


def build_translators(checkpoint):
    """`(cached, uncached, test sentences)` over the recipe's model and data."""
    config = dataclasses.replace(CONFIG)
    training.set_seed(config.seed)
    data = task.load_data(config)
    vocab = task.build_vectorizers(config, data)
    model = task.build_model(config, vocab)
    task.build(model)
    if checkpoint:
        with tempfile.TemporaryDirectory() as directory:
            ResumableCheckpoint(directory).restore_from(checkpoint, model)
    arguments = (model, vocab.source, vocab.target, vocab.target_length)
    cached = Translator(*arguments, config.length_penalty_alpha)
    uncached = UncachedTranslator(*arguments, config.length_penalty_alpha)
    for vectorizer in (vocab.source, vocab.target):  # built, as training leaves them
        vectorizer(tf.constant(["hello ."]))
    return cached, uncached, list(data.test_sources), config


def translate_all(signature, batches):
    outputs = []
    for batch in batches:
        outputs += list(signature(text=batch)["translation"].numpy())
    return outputs


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--checkpoint", help="final.npz of a `kerasdl train transformer_translate` run"
    )
    parser.add_argument("--sentences", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    cached, uncached, sources, config = build_translators(args.checkpoint)
    sources = sources[: args.sentences]
    batches = [
        tf.constant(sources[first : first + args.batch_size])
        for first in range(0, len(sources), args.batch_size)
    ]
    signatures = {}
    with tempfile.TemporaryDirectory() as directory:
        for name, translator in (("uncached", uncached), ("cached", cached)):
            start = time.perf_counter()
            path = export_translator(
                translator,
                f"{directory}/{name}",
                beam_size=config.beam_size,
                verification_texts=sources[:16],
                warmup=False,
            )
            signatures[name] = tf.saved_model.load(path).signatures["serving_default"]
            print(f"exported {name} in {time.perf_counter() - start:.1f} s")

        # Warm-up (traces every batch shape), and the translations compared.
        outputs = {name: translate_all(s, batches) for name, s in signatures.items()}
        same = sum(a == b for a, b in zip(outputs["cached"], outputs["uncached"]))
        ids = cached.generate(batches[0], config.beam_size).numpy()
        lengths = (ids[:, 1:] > 0).sum(axis=1)  # generated tokens, end token included

        seconds = {name: [] for name in signatures}
        for _ in range(args.rounds):
            for name, signature in signatures.items():
                start = time.perf_counter()
                translate_all(signature, batches)
                seconds[name].append(time.perf_counter() - start)

    rates = {
        name: len(sources) / statistics.median(times) for name, times in seconds.items()
    }
    print(
        f"\nExported serving_default (beam {config.beam_size}, length penalty "
        f"{config.length_penalty_alpha}), {len(sources)} fra-eng test sentences in "
        f"batches of {args.batch_size}, max_length {cached.max_length}; weights: "
        f"{args.checkpoint or 'untrained (every sentence runs to max_length)'}"
    )
    print(
        f"Generated tokens per sentence (first batch): mean {lengths.mean():.1f}, "
        f"min {lengths.min()}, max {lengths.max()}"
    )
    print("| decoding | sentences/s | s per pass (rounds) |")
    print("|---|---:|---|")
    for name in ("uncached", "cached"):
        times = ", ".join(f"{t:.2f}" for t in seconds[name])
        print(f"| {name} | {rates[name]:.1f} | {times} |")
    print(f"Speed-up: {rates['cached'] / rates['uncached']:.2f}x")
    print(f"Identical translations: {same}/{len(sources)}")
    for source, a, b in zip(sources, outputs["cached"], outputs["uncached"]):
        if a != b:
            print(f"  differs: {source!r}: cached {a!r}, uncached {b!r}")


if __name__ == "__main__":
    main()
