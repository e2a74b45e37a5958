"""`load_language_modeling_dataset`: *The Time Machine* for language modelling.

H. G. Wells' novella (Project Gutenberg eBook #35) ships in
`kerasdl/data/embedded/timemachine/`. Only the story is used: the text before the
line `*** END OF THE PROJECT GUTENBERG EBOOK ...` (179,695 characters); the
Project Gutenberg licence after it stays in the file but never reaches a model.

**Split.** Contiguous: the first 90% of the story's characters train, the last 10%
validate, so no validation sentence has a neighbour in training. The vocabulary is
built from the training split only; a token seen only in validation maps to the
unknown id 1.

**Tokens.** `level="char"`: the characters exactly as in the book (case,
punctuation, curly quotes, line breaks), so generated text looks like the book;
75 distinct characters (d2l lowercases and drops everything but letters, which
makes the task easier but the samples unreadable). `level="word"`: lowercased
words (letters and digits, with inner apostrophes: `"traveller’s"`) and each
punctuation mark as its own token; the `_` that marks italics is dropped.

**Batching** (as *Dive into Deep Learning* contrasts them), every batch a pair
`(inputs, targets)` of int32 `(batch_size, sequence_length)` with
`targets[:, t] == inputs[:, t + 1]` in the token stream:

- `sampling="random"`: each epoch starts the stream at a random offset in
  `[0, sequence_length)`, cuts it into non-overlapping subsequences and shuffles
  them; neighbouring rows and batches are unrelated. For stateless models.
- `sampling="sequential"`: each epoch starts at a random offset, then the stream
  is laid out as `batch_size` contiguous rows, so row `j` of batch `i + 1`
  continues row `j` of batch `i`. For stateful RNNs that carry their state from
  batch to batch.

Both are seeded and draw a new offset (and order) every epoch; every epoch has the
same number of batches. The validation split is deterministic (offset 0, in
order): with `"random"` its consecutive subsequences in order, the last batch
possibly smaller; with `"sequential"` the same row layout as training (full batches
only, so a stateful model keeps its batch size).
"""

import collections
import dataclasses
import os
import re

import numpy as np
import tensorflow as tf

from kerasdl.data.errors import DatasetFormatError

EMBEDDED_DIR = os.path.join(os.path.dirname(__file__), "embedded")
TIMEMACHINE_PATH = os.path.join(EMBEDDED_DIR, "timemachine", "timemachine.txt")
END_MARKER = "*** END OF THE PROJECT GUTENBERG EBOOK"
LANGUAGE_MODELING_DATASETS = ("timemachine",)
LEVELS = ("char", "word")
SAMPLINGS = ("random", "sequential")
PAD_TOKEN = "<pad>"
UNKNOWN_TOKEN = "<unk>"
PAD_ID = 0
UNKNOWN_ID = 1
# A word: letters/digits with inner apostrophes; or one punctuation mark.
WORD_PATTERN = re.compile(r"[^\W_]+(?:['’][^\W_]+)*|[^\w\s]")


def read_timemachine(path=None):
    """Returns the story of *The Time Machine*, without the Gutenberg licence.

    Args:
        path: the book's text file. Defaults to the embedded copy.

    Returns:
        The text before the `*** END OF THE PROJECT GUTENBERG EBOOK` line.

    Raises:
        DatasetFormatError: the file is missing or has no end marker.
    """
    path = path or TIMEMACHINE_PATH
    if not os.path.isfile(path):
        raise DatasetFormatError(
            f"The Time Machine text file does not exist. Expected the Project "
            f"Gutenberg text (the embedded copy is {TIMEMACHINE_PATH}). "
            f"Received: path={path!r}"
        )
    with open(path, encoding="utf-8") as file:
        text = file.read()
    end = text.find(END_MARKER)
    if end < 0:
        raise DatasetFormatError(
            f"{path} has no '{END_MARKER}' line, so the story cannot be told apart "
            "from the licence. Expected the Project Gutenberg text of eBook #35."
        )
    return text[:end]


def split_text(text, validation_fraction=0.1):
    """Splits a text contiguously: the first characters train, the last validate.

    Args:
        text: the whole text.
        validation_fraction: share of the characters, at the end, for
            validation. Defaults to `0.1`.

    Returns:
        `(train_text, validation_text)`, with `train_text + validation_text == text`.
    """
    if not 0.0 < validation_fraction < 1.0:
        raise ValueError(
            "validation_fraction must be strictly between 0 and 1. "
            f"Received: validation_fraction={validation_fraction}"
        )
    cut = len(text) - round(len(text) * validation_fraction)
    return text[:cut], text[cut:]


def tokenize(text, level):
    """Splits a text into tokens.

    Args:
        text: a string.
        level: `"char"` (every character as it is, case and punctuation
            kept) or `"word"` (lowercased words, with inner apostrophes, and
            each punctuation mark as its own token; whitespace and `_` dropped).

    Returns:
        A list of token strings.

    Example:

    >>> tokenize("The Time—so.", "word")
    ['the', 'time', '—', 'so', '.']
    """
    if level == "char":
        return list(text)
    if level == "word":
        return WORD_PATTERN.findall(text.lower())
    raise ValueError(f"level must be one of {LEVELS}. Received: level={level!r}")


class Vocabulary:
    """A token <-> id table with reserved padding (0) and unknown (1) ids.

    Args:
        tokens: the full id -> token list, starting with `"<pad>"` and
            `"<unk>"`; tokens must be distinct.

    Example:

    >>> vocabulary = Vocabulary.build(list("abracadabra"))
    >>> vocabulary.tokens
    ['<pad>', '<unk>', 'a', 'b', 'r', 'c', 'd']
    >>> vocabulary.encode(list("barz"))
    array([3, 2, 4, 1], dtype=int32)
    """

    def __init__(self, tokens):
        tokens = list(tokens)
        if tokens[:2] != [PAD_TOKEN, UNKNOWN_TOKEN]:
            raise ValueError(
                f"tokens must start with {[PAD_TOKEN, UNKNOWN_TOKEN]}. "
                f"Received: tokens[:2]={tokens[:2]}"
            )
        if len(set(tokens)) != len(tokens):
            duplicates = [t for t, n in collections.Counter(tokens).items() if n > 1]
            raise ValueError(
                f"tokens must be distinct. Received duplicates: {duplicates[:5]}"
            )
        self.tokens = tokens
        self._ids = {token: i for i, token in enumerate(tokens)}

    @classmethod
    def build(cls, tokens, min_frequency=1, max_size=None):
        """Builds the vocabulary of a token list.

        Args:
            tokens: training tokens.
            min_frequency: tokens seen fewer times become unknown. Defaults
                to `1`.
            max_size: largest vocabulary size, the two reserved ids
                included; the most frequent tokens are kept. Defaults to
                `None` (no limit).

        Returns:
            A `Vocabulary`: `"<pad>"`, `"<unk>"`, then the tokens by decreasing
            frequency, ties in alphabetical order.
        """
        if min_frequency < 1:
            raise ValueError(
                f"min_frequency must be >= 1. Received: min_frequency={min_frequency}"
            )
        if max_size is not None and max_size < 3:
            raise ValueError(
                "max_size must be >= 3 (two reserved ids and one token) or None. "
                f"Received: max_size={max_size}"
            )
        counts = collections.Counter(tokens)
        reserved = {PAD_TOKEN, UNKNOWN_TOKEN}
        ranked = sorted(
            (t for t, n in counts.items() if n >= min_frequency and t not in reserved),
            key=lambda t: (-counts[t], t),
        )
        if max_size is not None:
            ranked = ranked[: max_size - 2]
        return cls([PAD_TOKEN, UNKNOWN_TOKEN] + ranked)

    @property
    def size(self):
        """Number of ids, the reserved ones included."""
        return len(self.tokens)

    def __len__(self):
        return len(self.tokens)

    def encode(self, tokens):
        """Tokens -> int32 ids (unknown tokens -> 1)."""
        ids = self._ids
        return np.fromiter(
            (ids.get(t, UNKNOWN_ID) for t in tokens), dtype=np.int32, count=len(tokens)
        )

    def decode(self, ids):
        """Ids -> tokens."""
        return [self.tokens[int(i)] for i in np.asarray(ids).reshape(-1)]

    def get_config(self):
        return {"tokens": list(self.tokens)}

    @classmethod
    def from_config(cls, config):
        return cls(config["tokens"])


@dataclasses.dataclass
class LanguageModelingDataset:
    """A tokenized text split for next-token prediction.

    Attributes:
        name: data set name, `"timemachine"`.
        level: `"char"` or `"word"`.
        vocabulary: the `Vocabulary`, built from the training split.
        train_ids: int32 1-D, the training token stream.
        validation_ids: int32 1-D, the validation token stream.
        train: `tf.data.Dataset` of `(inputs, targets)` int32
            `(batch_size, sequence_length)` batches, targets shifted by one.
        validation: the same for validation, deterministic.
        sequence_length: tokens per row.
        batch_size: rows per batch.
        sampling: `"random"` or `"sequential"`.
    """

    name: str
    level: str
    vocabulary: Vocabulary
    train_ids: np.ndarray
    validation_ids: np.ndarray
    train: tf.data.Dataset
    validation: tf.data.Dataset
    sequence_length: int
    batch_size: int
    sampling: str


def _windows(stream, starts, sequence_length):
    # starts: (batch,) -> (inputs, targets), each (batch, sequence_length).
    positions = starts[:, None] + tf.range(sequence_length + 1)[None, :]
    window = tf.gather(stream, positions)
    return window[:, :-1], window[:, 1:]


def _random_batches(stream, num_tokens, sequence_length, batch_size, seed):
    # Every offset in [0, sequence_length) leaves this many whole windows.
    num_windows = (num_tokens - sequence_length) // sequence_length
    num_batches = num_windows // batch_size

    def epoch(draw):
        offset = tf.cast(draw % sequence_length, tf.int32)
        order = tf.argsort(
            tf.random.stateless_uniform(
                [num_windows], seed=tf.stack([draw, tf.constant(1, tf.int64)])
            )
        )
        starts = offset + sequence_length * order[: num_batches * batch_size]
        return tf.data.Dataset.from_tensor_slices(
            tf.reshape(starts, (num_batches, batch_size))
        )

    draws = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    dataset = draws.take(1).flat_map(epoch)
    dataset = dataset.map(lambda starts: _windows(stream, starts, sequence_length))
    return dataset.apply(tf.data.experimental.assert_cardinality(num_batches))


def _sequential_batches(stream, num_tokens, sequence_length, batch_size, seed):
    # Every offset in [0, sequence_length) leaves rows of this length.
    row_length = (num_tokens - sequence_length) // batch_size
    num_batches = row_length // sequence_length

    def epoch(draw):
        offset = tf.cast(draw % sequence_length, tf.int32)
        row_starts = offset + row_length * tf.range(batch_size)
        steps = sequence_length * tf.range(num_batches)
        return tf.data.Dataset.from_tensor_slices(steps[:, None] + row_starts[None, :])

    if seed is None:
        draws = tf.data.Dataset.from_tensors(tf.constant(0, tf.int64))
    else:
        draws = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    dataset = draws.take(1).flat_map(epoch)
    dataset = dataset.map(lambda starts: _windows(stream, starts, sequence_length))
    return dataset.apply(tf.data.experimental.assert_cardinality(num_batches))


def _in_order_batches(stream, num_tokens, sequence_length, batch_size):
    num_windows = (num_tokens - 1) // sequence_length
    starts = tf.range(num_windows) * sequence_length
    dataset = tf.data.Dataset.from_tensor_slices(starts).batch(batch_size)
    return dataset.map(lambda starts: _windows(stream, starts, sequence_length))


def soft_target_batches(data, probabilities, weight, seed=0):
    """`data.train`'s batches with distributions for targets (distillation).

    The windows are those `data.train` draws with the same `seed` (identical
    inputs, batch by batch and epoch by epoch); each target is
    `weight * probabilities[i] + (1 - weight) * one_hot(data.train_ids[i + 1])`
    for the window's input position `i`.

    Args:
        data: a `LanguageModelingDataset`.
        probabilities: float32 `(len(data.train_ids) - 1, vocabulary size)`: row
            `i` a next-token distribution after `data.train_ids[: i + 1]` (a
            teacher's).
        weight: the share of `probabilities` in each target, in [0, 1].
        seed: the seed `data` was loaded with. Defaults to `0`.

    Returns:
        A `tf.data.Dataset` of `(inputs, targets)`: int32 `(batch_size,
        sequence_length)` and float32 `(batch_size, sequence_length, vocabulary
        size)`.

    Example:

    ```python
    data = load_language_modeling_dataset(sequence_length=32, batch_size=16)
    uniform = np.full((len(data.train_ids) - 1, data.vocabulary.size),
                      1 / data.vocabulary.size, "float32")
    train = soft_target_batches(data, uniform, 0.1)  # label smoothing
    ```
    """
    size = data.vocabulary.size
    count = len(data.train_ids)
    if np.shape(probabilities) != (count - 1, size):
        raise ValueError(
            "probabilities must have shape (len(train_ids) - 1, vocabulary size) = "
            f"{(count - 1, size)}; got {np.shape(probabilities)}"
        )
    if not 0 <= weight <= 1:
        raise ValueError(f"weight must be in [0, 1]; got {weight}")
    batches = _random_batches if data.sampling == "random" else _sequential_batches
    positions = batches(
        tf.range(count, dtype=tf.int32),
        count,
        data.sequence_length,
        data.batch_size,
        seed,
    )
    ids = tf.constant(data.train_ids, tf.int32)
    teacher = tf.constant(probabilities, tf.float32)

    def soft_targets(input_positions, target_positions):
        observed = tf.one_hot(tf.gather(ids, target_positions), size)
        targets = weight * tf.gather(teacher, input_positions) + (1 - weight) * observed
        return tf.gather(ids, input_positions), targets

    return positions.map(soft_targets)


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(
            f"{name} must be a positive integer. Received: {name}={value!r}"
        )


def load_language_modeling_dataset(
    name="timemachine",
    level="char",
    sequence_length=64,
    batch_size=32,
    sampling="random",
    validation_fraction=0.1,
    min_frequency=1,
    max_vocabulary_size=None,
    seed=0,
    path=None,
):
    """Loads *The Time Machine* as batches of `(inputs, targets)` token ids.

    Args:
        name: data set name; only `"timemachine"`. Defaults to `"timemachine"`.
        level: `"char"` or `"word"` (see the module docstring). Defaults to
            `"char"`.
        sequence_length: tokens per row. Defaults to `64`.
        batch_size: rows per batch. Defaults to `32`.
        sampling: `"random"` (shuffled subsequences) or `"sequential"` (row `j`
            of each batch continues row `j` of the previous one). Defaults to
            `"random"`.
        validation_fraction: share of the characters, at the end of the story,
            held out. Defaults to `0.1`.
        min_frequency: training tokens seen fewer times map to `<unk>`.
            Defaults to `1`.
        max_vocabulary_size: largest vocabulary, reserved ids included.
            Defaults to `None` (no limit).
        seed: seed of the per-epoch offsets and orders. Defaults to `0`.
        path: the book's text file. Defaults to the embedded copy.

    Returns:
        A `LanguageModelingDataset`.

    Example:

    >>> data = load_language_modeling_dataset(sequence_length=8, batch_size=2)
    >>> inputs, targets = next(iter(data.train))
    >>> inputs.shape
    TensorShape([2, 8])
    """
    if name not in LANGUAGE_MODELING_DATASETS:
        raise ValueError(
            f"name must be one of {LANGUAGE_MODELING_DATASETS}. Received: name={name!r}"
        )
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}. Received: level={level!r}")
    if sampling not in SAMPLINGS:
        raise ValueError(
            f"sampling must be one of {SAMPLINGS}. Received: sampling={sampling!r}"
        )
    _check_positive_int("sequence_length", sequence_length)
    _check_positive_int("batch_size", batch_size)
    if seed is not None and not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer or None. Received: seed={seed!r}")

    train_text, validation_text = split_text(
        read_timemachine(path), validation_fraction
    )
    train_tokens = tokenize(train_text, level)
    vocabulary = Vocabulary.build(
        train_tokens, min_frequency=min_frequency, max_size=max_vocabulary_size
    )
    train_ids = vocabulary.encode(train_tokens)
    validation_ids = vocabulary.encode(tokenize(validation_text, level))

    for split, ids in (("training", train_ids), ("validation", validation_ids)):
        check_one_batch(f"The {split} split", ids, sequence_length, batch_size)
    train, validation = split_batches(
        train_ids, validation_ids, sequence_length, batch_size, sampling, seed
    )
    return LanguageModelingDataset(
        name=name,
        level=level,
        vocabulary=vocabulary,
        train_ids=train_ids,
        validation_ids=validation_ids,
        train=train,
        validation=validation,
        sequence_length=sequence_length,
        batch_size=batch_size,
        sampling=sampling,
    )


def check_one_batch(what, ids, sequence_length, batch_size):
    """Raises `ValueError` naming `what` when `ids` hold no whole batch."""
    if (len(ids) - sequence_length) // sequence_length < batch_size:
        raise ValueError(
            f"{what} has {len(ids)} tokens, too few for one batch of "
            f"batch_size={batch_size} rows of sequence_length={sequence_length}; "
            "use smaller values."
        )


def split_batches(
    train_ids, validation_ids, sequence_length, batch_size, sampling, seed
):
    """`(train, validation)` batched datasets of two token streams, as
    `load_language_modeling_dataset` batches them for `sampling`."""
    train_stream = tf.constant(train_ids)
    validation_stream = tf.constant(validation_ids)
    if sampling == "random":
        train = _random_batches(
            train_stream, len(train_ids), sequence_length, batch_size, seed
        )
        validation = _in_order_batches(
            validation_stream, len(validation_ids), sequence_length, batch_size
        )
    else:
        train = _sequential_batches(
            train_stream, len(train_ids), sequence_length, batch_size, seed
        )
        validation = _sequential_batches(
            validation_stream, len(validation_ids), sequence_length, batch_size, None
        )
    return train.prefetch(tf.data.AUTOTUNE), validation.prefetch(tf.data.AUTOTUNE)
