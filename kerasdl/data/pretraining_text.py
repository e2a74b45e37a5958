"""`load_pretraining_dataset`: other English text for pretraining language models.

*The Time Machine* trains on 161,725 characters: a language model learns English
spelling, common words and punctuation from them and then overfits. Reading other
English first, then the book (`--pretrain-epochs`), gives it those for free.

| corpus | text | characters |
| --- | --- | --- |
| `"tatoeba"` | the English sides of the embedded Tatoeba pairs (`fra-eng`, `deu-eng`; CC BY 2.0), every distinct sentence once | 891,249 |

The text is laid out as the book is: straight quotes become the book's curly
ones (`'` -> `’`, a pair of `"` -> `“…”`), the sentences are shuffled (seeded)
and joined eight to a paragraph, each paragraph wrapped at 70 columns, a blank
line between paragraphs. It is tokenized at the book's level and encoded with
the *book's* vocabulary, so the model's input and output layers keep their
meaning; characters the book lacks (digits, `$`, `%`: 0.05% of the text) map to
the unknown id. The last 5% of the text is held out: pretraining's early
stopping watches it, never the book's validation split.

Example:

```python
from kerasdl.data import load_language_modeling_dataset
from kerasdl.data.pretraining_text import load_pretraining_dataset

book = load_language_modeling_dataset(sequence_length=32)
corpus = load_pretraining_dataset(book.vocabulary, sequence_length=32)
inputs, targets = next(iter(corpus.train))
```
"""

import dataclasses
import os
import random
import re
import textwrap

import numpy as np
import tensorflow as tf

from kerasdl.data import timemachine
from kerasdl.data.errors import DatasetFormatError

PRETRAINING_CORPORA = ("tatoeba",)
TATOEBA_FILES = ("fra-eng/fra.txt", "deu-eng/deu.txt")
SENTENCES_PER_PARAGRAPH = 8
LINE_WIDTH = 70  # The Gutenberg text's lines: 68 characters at the median, 71 at most.
_QUOTED = re.compile(r'"([^"]*)"')


def book_typography(sentence):
    """Straight quotes -> the book's curly ones.

    Example:

    >>> book_typography('He said "I don\\'t know."')
    'He said “I don’t know.”'
    """
    return _QUOTED.sub("\u201c\\1\u201d", sentence.replace("'", "\u2019"))


def read_tatoeba_english(embedded_dir=None):
    """The distinct English sentences of the embedded Tatoeba pairs, in file order.

    Args:
        embedded_dir: the folder holding `fra-eng/` and `deu-eng/`. Defaults to
            kerasdl's embedded data.

    Raises:
        DatasetFormatError: a file is missing or has no tab-separated pairs.
    """
    embedded_dir = embedded_dir or timemachine.EMBEDDED_DIR
    sentences = {}
    for name in TATOEBA_FILES:
        path = os.path.join(embedded_dir, name)
        try:
            with open(path, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except (OSError, UnicodeDecodeError) as error:
            raise DatasetFormatError(
                f"Cannot read the Tatoeba pairs {path} ({error}); expected the "
                "embedded UTF-8 file of '<english>\\t<translation>' lines"
            ) from None
        english = [line.split("\t", 1)[0] for line in lines if "\t" in line]
        if not english:
            raise DatasetFormatError(f"{path} has no '<english>\\t<translation>' lines")
        sentences.update(dict.fromkeys(english))
    return list(sentences)


def read_pretraining_text(name="tatoeba", seed=0, embedded_dir=None):
    """The corpus `name` as one text in the book's layout (module docstring).

    Args:
        name: one of `PRETRAINING_CORPORA`. Defaults to `"tatoeba"`.
        seed: seed of the sentence order. Defaults to `0`.
        embedded_dir: where the corpus files are. Defaults to kerasdl's
            embedded data.

    Returns:
        The text: paragraphs of wrapped lines, separated by blank lines.
    """
    if name not in PRETRAINING_CORPORA:
        raise ValueError(
            f"name must be one of {PRETRAINING_CORPORA}. Received: name={name!r}"
        )
    sentences = [book_typography(s) for s in read_tatoeba_english(embedded_dir)]
    random.Random(seed).shuffle(sentences)
    n = SENTENCES_PER_PARAGRAPH
    paragraphs = (
        textwrap.fill(" ".join(sentences[i : i + n]), LINE_WIDTH)
        for i in range(0, len(sentences), n)
    )
    return "\n\n".join(paragraphs)


@dataclasses.dataclass
class PretrainingDataset:
    """A pretraining corpus encoded with a book's vocabulary.

    Attributes:
        name: the corpus name.
        train: `tf.data.Dataset` of `(inputs, targets)` int32
            `(batch_size, sequence_length)` batches, random windows drawn anew
            every epoch (as the book's `sampling="random"`).
        validation: the held-out end of the text, in order.
        num_tokens: tokens in the whole corpus.
        unknown_fraction: share of the corpus' tokens outside the vocabulary.
    """

    name: str
    train: tf.data.Dataset
    validation: tf.data.Dataset
    num_tokens: int
    unknown_fraction: float


def load_pretraining_dataset(
    vocabulary,
    *,
    name="tatoeba",
    level="char",
    sequence_length=64,
    batch_size=32,
    validation_fraction=0.05,
    seed=0,
    embedded_dir=None,
):
    """Loads a pretraining corpus as batches of ids of `vocabulary`.

    Args:
        vocabulary: the `kerasdl.data.Vocabulary` of the book the model will
            then train on.
        name: one of `PRETRAINING_CORPORA`. Defaults to `"tatoeba"`.
        level: `"char"` or `"word"`, as the book's. Defaults to `"char"`.
        sequence_length: tokens per row. Defaults to `64`.
        batch_size: rows per batch. Defaults to `32`.
        validation_fraction: share of the text, at its end, held out. Defaults
            to `0.05`.
        seed: seed of the sentence order and of the windows. Defaults to `0`.
        embedded_dir: where the corpus files are. Defaults to kerasdl's
            embedded data.

    Returns:
        A `PretrainingDataset`.
    """
    text = read_pretraining_text(name, seed=seed, embedded_dir=embedded_dir)
    train_text, validation_text = timemachine.split_text(text, validation_fraction)
    train_ids = vocabulary.encode(timemachine.tokenize(train_text, level))
    validation_ids = vocabulary.encode(timemachine.tokenize(validation_text, level))
    for split, ids in (("training", train_ids), ("held-out", validation_ids)):
        timemachine.check_one_batch(
            f"The {name} corpus' {split} part", ids, sequence_length, batch_size
        )
    train, validation = timemachine.split_batches(
        train_ids, validation_ids, sequence_length, batch_size, "random", seed
    )
    all_ids = np.concatenate([train_ids, validation_ids])
    return PretrainingDataset(
        name=name,
        train=train,
        validation=validation,
        num_tokens=len(all_ids),
        unknown_fraction=float(np.mean(all_ids == timemachine.UNKNOWN_ID)),
    )
