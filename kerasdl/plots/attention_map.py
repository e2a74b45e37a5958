"""Attention heat maps of a translator's greedy translations, as one PNG."""

from __future__ import annotations

import os


def plot_attention(
    translator, sources: list[str], png_path: str | os.PathLike
) -> str | None:
    """Plots the attention weights of a few sentences' greedy translations.

    One heat map per sentence, side by side: generated target tokens (rows, up to
    the end token) over standardized source words (columns).

    Args:
        translator: a `kerasdl.export.Translator` whose model has
            `attention_weights(source_ids, target_in)` -> `(batch, target, source)`.
        sources: the raw source sentences, e.g. four test sentences.
        png_path: where the PNG goes.

    Returns:
        `png_path`, or `None` when `sources` is empty (nothing is written).

    Example:

    ```python
    plot_attention(translator, ["I am cold.", "Tom is here."], "attention.png")
    ```
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import tensorflow as tf

    from kerasdl.data.text_translation import standardize_text

    if not sources:
        return None
    texts = tf.constant(sources)
    tokens = translator.generate(texts, 1).numpy()  # (n, max_length)
    weights = np.asarray(
        translator.model.attention_weights(translator.source_ids(texts), tokens[:, :-1])
    )  # (n, T, S)
    words = [t.decode("utf-8").split() for t in standardize_text(texts).numpy()]
    figure, axes = plt.subplots(
        1, len(sources), figsize=(4.5 * len(sources), 4.5), squeeze=False
    )
    for axis, row, weight, source_words in zip(axes[0], tokens, weights, words):
        generated = []
        for token in row[1:]:
            generated.append(translator.vocabulary[token])
            if token == translator.end_id:
                break
        matrix = weight[: len(generated), : len(source_words)]
        axis.imshow(matrix, cmap="viridis", aspect="auto")
        axis.set_xticks(range(len(source_words)), source_words, rotation=60, fontsize=8)
        axis.set_yticks(range(len(generated)), generated, fontsize=8)
    figure.suptitle("Attention: generated (rows) over source (columns)")
    figure.tight_layout()
    figure.savefig(png_path, dpi=100)
    plt.close(figure)
    return png_path
