"""Sequence-model benchmarks: Transformer training speed and decoding throughput.

Part 1 (training): tokens/second of one training step of a small Transformer
encoder-decoder (2 + 2 post-norm blocks, d=128, 4 heads, FFN 256, vocab 1000,
source/target length 32) built three ways with the same architecture:

* `kerasdl`   kerasdl.layers.TransformerEncoder / TransformerDecoder
* `keras`     blocks written here around keras.layers.MultiHeadAttention
              (the built-in baseline; ratio = variant / keras)
* `keras_hub` keras_hub.layers.TransformerEncoder / TransformerDecoder, when
              `import keras_hub` works (it is not a kerasdl dependency; to add
              it without touching the venv's keras/tensorflow:
              `pip install --no-deps --target /tmp/khub keras-hub tokenizers`
              and run with `PYTHONPATH=/tmp/khub`).

The variants are timed in alternating rounds (A B C A B C ...) after a warm-up,
and the table reports medians over rounds.

Part 2 (decoding): sentences/second of translating a batch with a tiny
untrained kerasdl encoder-decoder, greedy vs beam 4, eager vs inside a
`tf.function` (the graph a SavedModel export serves). Untrained models rarely
emit the end token, so every run decodes the full `max_length`: this measures
the decoding machinery, not translation quality.

    python benchmarks/sequence.py                 # both parts
    python benchmarks/sequence.py --part training --rounds 7 --steps 20
    python benchmarks/sequence.py --jit-compile   # XLA (slow to compile on CPU)
"""

import argparse
import json
import statistics
import time

# kerasdl first, as users import it: it sets TensorFlow's oneDNN default before
# TensorFlow loads (kerasdl/__init__.py); TF_ENABLE_ONEDNN_OPTS=0 measures without.
import kerasdl

# isort: split
import keras
import numpy as np
import tensorflow as tf

from kerasdl.decoding import beam_search, greedy_search, tile_for_beams

VOCAB, DIM, HEADS, FFN, LAYERS, LENGTH = 1000, 128, 4, 256, 2, 32


# --- The built-in baseline: the same post-norm blocks around Keras' MHA. ---


class KerasEncoderBlock(keras.layers.Layer):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.attention = keras.layers.MultiHeadAttention(
            HEADS, DIM // HEADS, dropout=0.1
        )
        self.norm1 = keras.layers.LayerNormalization(epsilon=1e-5)
        self.norm2 = keras.layers.LayerNormalization(epsilon=1e-5)
        self.ffn1 = keras.layers.Dense(FFN, activation="relu")
        self.ffn2 = keras.layers.Dense(DIM)
        self.drop1 = keras.layers.Dropout(0.1)
        self.drop2 = keras.layers.Dropout(0.1)

    def call(self, x, padding_mask=None, training=None):
        mask = None if padding_mask is None else padding_mask[:, None, :]
        h = self.attention(x, x, attention_mask=mask, training=training)
        x = self.norm1(x + self.drop1(h, training=training))
        h = self.ffn2(self.ffn1(x))
        return self.norm2(x + self.drop2(h, training=training))


class KerasDecoderBlock(keras.layers.Layer):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.self_attention = keras.layers.MultiHeadAttention(
            HEADS, DIM // HEADS, dropout=0.1
        )
        self.cross_attention = keras.layers.MultiHeadAttention(
            HEADS, DIM // HEADS, dropout=0.1
        )
        self.norms = [keras.layers.LayerNormalization(epsilon=1e-5) for _ in range(3)]
        self.drops = [keras.layers.Dropout(0.1) for _ in range(3)]
        self.ffn1 = keras.layers.Dense(FFN, activation="relu")
        self.ffn2 = keras.layers.Dense(DIM)

    def call(self, x, memory, target_mask=None, source_mask=None, training=None):
        h = self.self_attention(
            x,
            x,
            attention_mask=target_mask[:, None, :],
            use_causal_mask=True,
            training=training,
        )
        x = self.norms[0](x + self.drops[0](h, training=training))
        h = self.cross_attention(
            x, memory, attention_mask=source_mask[:, None, :], training=training
        )
        x = self.norms[1](x + self.drops[1](h, training=training))
        h = self.ffn2(self.ffn1(x))
        return self.norms[2](x + self.drops[2](h, training=training))


def build_seq2seq(kind):
    """Functional encoder-decoder; `kind` picks the blocks."""
    source = keras.Input((LENGTH,), dtype="int32", name="source")
    target = keras.Input((LENGTH,), dtype="int32", name="target")
    source_mask = keras.ops.not_equal(source, 0)
    target_mask = keras.ops.not_equal(target, 0)
    x = keras.layers.Embedding(VOCAB, DIM)(source)
    x = x + kerasdl.layers.SinePositionEncoding()(x)
    y = keras.layers.Embedding(VOCAB, DIM)(target)
    y = y + kerasdl.layers.SinePositionEncoding()(y)
    for _ in range(LAYERS):
        if kind == "kerasdl":
            x = kerasdl.layers.TransformerEncoder(FFN, HEADS, dropout=0.1)(
                x, padding_mask=source_mask
            )
        elif kind == "keras_hub":
            import keras_hub

            x = keras_hub.layers.TransformerEncoder(FFN, HEADS, dropout=0.1)(
                x, padding_mask=source_mask
            )
        else:
            x = KerasEncoderBlock()(x, padding_mask=source_mask)
    for _ in range(LAYERS):
        if kind == "kerasdl":
            y = kerasdl.layers.TransformerDecoder(FFN, HEADS, dropout=0.1)(
                y, x, decoder_padding_mask=target_mask, encoder_padding_mask=source_mask
            )
        elif kind == "keras_hub":
            import keras_hub

            y = keras_hub.layers.TransformerDecoder(FFN, HEADS, dropout=0.1)(
                y, x, decoder_padding_mask=target_mask, encoder_padding_mask=source_mask
            )
        else:
            y = KerasDecoderBlock()(
                y, x, target_mask=target_mask, source_mask=source_mask
            )
    logits = keras.layers.Dense(VOCAB)(y)
    return keras.Model([source, target], logits, name=f"seq2seq_{kind}")


def available_kinds():
    kinds = ["keras", "kerasdl"]
    try:
        import keras_hub  # noqa: F401

        kinds.append("keras_hub")
    except Exception as error:  # noqa: BLE001 - any import failure means "skip"
        print(f"keras_hub not importable ({type(error).__name__}: {error}); skipped")
    return kinds


def benchmark_training(rounds, steps, batch_size, jit_compile):
    rng = np.random.default_rng(0)
    source = rng.integers(1, VOCAB, size=(batch_size, LENGTH)).astype("int32")
    target = rng.integers(1, VOCAB, size=(batch_size, LENGTH)).astype("int32")
    source[:, LENGTH * 3 // 4 :] = 0  # some padding, so masks do real work
    target[:, LENGTH * 3 // 4 :] = 0
    models = {}
    for kind in available_kinds():
        keras.utils.set_random_seed(0)
        model = build_seq2seq(kind)
        model.compile(
            optimizer=keras.optimizers.Adam(1e-4),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            jit_compile=jit_compile,
        )
        start = time.perf_counter()
        model.train_on_batch([source, target], target)  # trace / compile
        print(
            f"{kind:10s} params={model.count_params():,} "
            f"first step (trace{'+XLA' if jit_compile else ''}) "
            f"{time.perf_counter() - start:.1f}s"
        )
        models[kind] = model
    times = {kind: [] for kind in models}
    for _ in range(rounds):  # alternate variants within every round
        for kind, model in models.items():
            start = time.perf_counter()
            for _ in range(steps):
                loss = model.train_on_batch([source, target], target)
            times[kind].append(time.perf_counter() - start)
            if not np.isfinite(loss):
                raise RuntimeError(f"{kind}: loss is not finite")
    tokens = steps * batch_size * LENGTH
    result = {k: tokens / statistics.median(v) for k, v in times.items()}
    print(
        f"\nTraining tokens/s (median of {rounds} rounds x {steps} steps, "
        f"batch {batch_size}, jit_compile={jit_compile}, backend "
        f"{keras.backend.backend()}, devices {[d.device_type for d in tf.config.list_logical_devices()]})"
    )
    print("| blocks | tokens/s | min..max | ratio vs keras |")
    print("|---|---:|---:|---:|")
    for kind, rate in result.items():
        lo = tokens / max(times[kind])
        hi = tokens / min(times[kind])
        print(
            f"| {kind} | {rate:,.0f} | {lo:,.0f}..{hi:,.0f} | "
            f"{rate / result['keras']:.2f}x |"
        )
    return result


# --- Part 2: decoding throughput (tiny untrained kerasdl translator). ---


class TinyTranslator(tf.Module):
    def __init__(self, vocab=VOCAB, dim=64, max_length=20):
        super().__init__()
        self.max_length = max_length
        self.source_embedding = keras.layers.Embedding(vocab, dim)
        self.target_embedding = keras.layers.Embedding(vocab, dim)
        self.encoder = kerasdl.layers.TransformerEncoder(128, 4)
        self.decoder = kerasdl.layers.TransformerDecoder(128, 4)
        self.head = keras.layers.Dense(vocab)

    def cache(self, source, beams):
        mask = keras.ops.not_equal(source, 0)
        encoded = self.encoder(self.source_embedding(source), padding_mask=mask)
        return tile_for_beams({"encoded": encoded, "mask": mask}, beams)

    def next_token_fn(self, tokens, cache, step):
        x = self.decoder(
            self.target_embedding(tokens),
            cache["encoded"],
            encoder_padding_mask=cache["mask"],
        )
        return keras.ops.take(self.head(x), step - 1, axis=1), cache

    def translate(self, source, beam_size):
        start = keras.ops.ones((keras.ops.shape(source)[0],), "int32")
        if beam_size == 1:
            return greedy_search(
                self.next_token_fn,
                start,
                self.max_length,
                end_token_id=2,
                cache=self.cache(source, 1),
            )
        return beam_search(
            self.next_token_fn,
            start,
            self.max_length,
            beam_size=beam_size,
            end_token_id=2,
            cache=self.cache(source, beam_size),
            length_penalty_alpha=0.6,
        )


def benchmark_decoding(rounds, batch_size):
    translator = TinyTranslator()
    source = (
        np.random.default_rng(1)
        .integers(3, VOCAB, size=(batch_size, 16))
        .astype("int32")
    )
    spec = [tf.TensorSpec((None, None), tf.int32)]
    graphs = {}
    for beams in (1, 4):

        @tf.function(input_signature=spec)
        def graph(source, beams=beams):
            return translator.translate(source, beams)

        graphs[beams] = graph
    runs = {}
    for beams in (1, 4):
        name = "greedy" if beams == 1 else f"beam {beams}"
        runs[f"{name}, eager"] = lambda b=beams: translator.translate(source, b)
        runs[f"{name}, tf.function (exported graph)"] = lambda b=beams: graphs[b](
            source
        )
    for run in runs.values():
        run()  # warm-up and tracing
    times = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            start = time.perf_counter()
            tokens, _ = run()
            keras.ops.convert_to_numpy(tokens)
            times[name].append(time.perf_counter() - start)
    print(
        f"\nDecoding sentences/s (batch {batch_size}, max_length "
        f"{translator.max_length}, untrained model, median of {rounds})"
    )
    print("| search | sentences/s | ms / batch |")
    print("|---|---:|---:|")
    result = {}
    for name, values in times.items():
        median = statistics.median(values)
        result[name] = batch_size / median
        print(f"| {name} | {batch_size / median:,.1f} | {1000 * median:,.0f} |")
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--part", choices=["all", "training", "decoding"], default="all"
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--jit-compile", action="store_true")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    results = {}
    if args.part in ("all", "training"):
        results["training_tokens_per_second"] = benchmark_training(
            args.rounds, args.steps, args.batch_size, args.jit_compile
        )
    if args.part in ("all", "decoding"):
        results["decoding_sentences_per_second"] = benchmark_decoding(
            args.rounds, min(args.batch_size, 16)
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
