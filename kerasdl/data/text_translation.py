"""`load_translation_dataset`: sentence pairs for machine translation (English -> X).

| name | pairs | split (train / validation / test) |
| --- | --- | --- |
| `"fra_eng"` | embedded Tatoeba English-French pairs (49,384) | by English sentence: 90/5/5 |
| `"ted_hrlr_translate"` | TFDS `ted_hrlr_translate/pt_to_en`, used English -> Portuguese | TFDS' splits |
| `"wmt14_translate"` | TFDS `wmt14_translate/fr-en`, used English -> French | TFDS' splits |

Text is normalized in two steps. In Python, once, `unicodedata` NFKC (which also
turns the no-break and thin spaces French puts before `? ! :` into plain spaces).
Then `standardize_text`, a TensorFlow function that the exported translators run
inside their graph as well: lowercase, typographic apostrophes to `'`, spaces around
punctuation so `.`, `?`, `,` ... are tokens of their own. Only pairs whose English has
at most `max_words` words (and whose target has at most `max_target_tokens` tokens
after standardization) are kept.

The fra-eng test split is held out BY ENGLISH SENTENCE: Tatoeba often has several
French translations of one English sentence; all of them go to the same split, so no
test sentence is ever seen in training, and the test set lists each English sentence
once with all its translations as references (multi-reference BLEU).
"""

import dataclasses
import os
import unicodedata

import numpy as np
import tensorflow as tf

from kerasdl.data.errors import DatasetFormatError
from kerasdl.data.text_classification import EMBEDDED_DIR
from kerasdl.data.tfds_prepared import prepared_builder

TFDS_TRANSLATION_DATASETS = {
    "ted_hrlr_translate": ("ted_hrlr_translate/pt_to_en", "en", "pt"),
    "wmt14_translate": ("wmt14_translate/fr-en", "en", "fr"),
}
TRANSLATION_DATASETS = ("fra_eng",) + tuple(TFDS_TRANSLATION_DATASETS)
SPLIT_SEED = 0
FRA_ENG_FRACTIONS = (0.9, 0.05, 0.05)
PUNCTUATION = r"""[.?!,;:¡¿«»"()]"""


@dataclasses.dataclass
class TranslationDataset:
    """Sentence pairs split into train/validation/test.

    Attributes:
        name: data set name, e.g. `"fra_eng"`.
        source_language: e.g. `"en"`.
        target_language: e.g. `"fr"`.
        train: unbatched `tf.data.Dataset` of `(source, target)` tf.string pairs
            (NFKC-normalized, not yet standardized), shuffled once with the seed.
        validation: the same for validation.
        test_sources: list of test source sentences (each English sentence once).
        test_references: for each test source, the list of its reference
            translations.
        num_examples: pairs per split (`"test"` counts sources).
    """

    name: str
    source_language: str
    target_language: str
    train: tf.data.Dataset
    validation: tf.data.Dataset
    test_sources: list
    test_references: list
    num_examples: dict


def normalize_unicode(text):
    """Python-side normalization applied to every sentence once: NFKC and trimming."""
    return " ".join(unicodedata.normalize("NFKC", text).split())


def standardize_text(text):
    """Lowercases and splits punctuation off, as a TensorFlow function.

    `(batch,)` tf.string -> `(batch,)` tf.string of space-separated tokens:
    `"I'm cold."` -> `"i'm cold ."`, `"Qui êtes-vous ?"` -> `"qui êtes-vous ?"`.
    Runs in the training pipeline and inside the exported translator, so served
    inputs are treated exactly like training data (NFKC is approximated in the
    graph by mapping the no-break/thin spaces and curly apostrophes it would fold).
    """
    text = tf.strings.lower(text, encoding="utf-8")
    text = tf.strings.regex_replace(text, "[\u2018\u2019\u02bc`]", "'")
    text = tf.strings.regex_replace(text, "[\u00a0\u202f\u2009]", " ")
    text = tf.strings.regex_replace(text, PUNCTUATION, r" \0 ")
    text = tf.strings.regex_replace(text, r"\s+", " ")
    return tf.strings.strip(text)


def detokenize(tokens, vocabulary, end_token_id, pad_token_id=0):
    """Token ids -> sentences, as a TensorFlow function.

    Args:
        tokens: int `(batch, length)`, generated ids without the start token.
        vocabulary: 1-D tf.string tensor, the target vocabulary.
        end_token_id: id that ends a sentence (it and everything after is dropped).
        pad_token_id: id of padding (dropped). Defaults to `0`.

    Returns:
        `(batch,)` tf.string, the words joined by spaces with no space before `.`
        and `,` (`"j'ai froid ."` -> `"j'ai froid."`).
    """
    tokens = tf.cast(tokens, tf.int32)
    before_end = tf.equal(
        tf.cumsum(tf.cast(tf.equal(tokens, end_token_id), tf.int32), axis=1), 0
    )
    keep = tf.logical_and(before_end, tf.not_equal(tokens, pad_token_id))
    words = tf.ragged.boolean_mask(tf.gather(vocabulary, tokens), keep)
    text = tf.strings.reduce_join(words, axis=-1, separator=" ")
    return tf.strings.regex_replace(text, r" ([.,])", r"\1")


def _token_counts(strings):
    standardized = standardize_text(tf.constant(strings, tf.string))
    return tf.strings.split(standardized).row_lengths().numpy()


def read_fra_eng(path=None):
    """Returns the NFKC-normalized `(english, french)` lists of `fra.txt`."""
    path = path or os.path.join(EMBEDDED_DIR, "fra-eng", "fra.txt")
    english, french = [], []
    with open(path, encoding="utf-8") as file:
        for line_number, line in enumerate(file, start=1):
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 2 or not parts[0] or not parts[1]:
                raise DatasetFormatError(
                    f"{path} line {line_number}: expected 'english<TAB>french'. "
                    f"Received: {line[:60]!r}"
                )
            english.append(normalize_unicode(parts[0]))
            french.append(normalize_unicode(parts[1]))
    return english, french


def _length_filter(sources, targets, max_words, max_target_tokens):
    source_words = np.asarray([len(s.split()) for s in sources])
    keep = (source_words <= max_words) & (_token_counts(targets) <= max_target_tokens)
    return [s for s, k in zip(sources, keep) if k], [
        t for t, k in zip(targets, keep) if k
    ]


def _fra_eng_splits(max_words, max_target_tokens, limit):
    english, french = _length_filter(*read_fra_eng(), max_words, max_target_tokens)
    # Group by the standardized English sentence: "I'm cold." and "I’m cold." are one.
    keys = standardize_text(tf.constant(english)).numpy()
    unique_keys = sorted(set(keys))
    order = np.random.default_rng(SPLIT_SEED).permutation(len(unique_keys))
    bounds = np.cumsum([round(f * len(unique_keys)) for f in FRA_ENG_FRACTIONS[:2]])
    split_of = {}
    for rank, index in enumerate(order):
        split_of[unique_keys[index]] = (
            "train"
            if rank < bounds[0]
            else "validation"
            if rank < bounds[1]
            else "test"
        )
    pairs = {"train": [], "validation": []}
    test = {}
    for key, source, target in zip(keys, english, french):
        split = split_of[key]
        if split == "test":
            entry = test.setdefault(key, (source, []))
            entry[1].append(target)
        else:
            pairs[split].append((source, target))
    test_items = [test[key] for key in sorted(test)]
    if limit is not None:
        pairs = {split: items[:limit] for split, items in pairs.items()}
        test_items = test_items[:limit]
    return pairs, test_items, ("en", "fr")


def _tfds_splits(name, data_dir, download, max_words, max_target_tokens, limit):
    full_name, source_key, target_key = TFDS_TRANSLATION_DATASETS[name]
    builder = prepared_builder(
        full_name,
        data_dir,
        download,
        loader="load_translation_dataset",
        offline="--dataset fra_eng (Tatoeba's English-French pairs, shipped with "
        "kerasdl)",
    )
    slices = {}
    for split in ("train", "validation", "test"):
        split_string = split if limit is None else f"{split}[:{limit}]"
        sources, targets = [], []
        for example in builder.as_dataset(split=split_string, shuffle_files=False):
            sources.append(
                normalize_unicode(example[source_key].numpy().decode("utf-8"))
            )
            targets.append(
                normalize_unicode(example[target_key].numpy().decode("utf-8"))
            )
        slices[split] = _length_filter(sources, targets, max_words, max_target_tokens)
    pairs = {split: list(zip(*slices[split])) for split in ("train", "validation")}
    test_items = [(source, [target]) for source, target in zip(*slices["test"])]
    return pairs, test_items, (source_key, target_key)


def load_translation_dataset(
    name="fra_eng",
    *,
    max_words=10,
    max_target_tokens=20,
    seed=0,
    limit=None,
    data_dir=None,
    download=False,
):
    """Loads sentence pairs for English -> X translation; see the module docstring.

    Args:
        name: one of `TRANSLATION_DATASETS` (`"fra-eng"` is accepted too).
        max_words: keep pairs whose source has at most this many words. Defaults
            to `10`.
        max_target_tokens: and whose standardized target has at most this many
            tokens (punctuation counts). Defaults to `20`.
        seed: seed of the one-time shuffle of the training pairs. Defaults to `0`.
        limit: keep at most this many pairs (test: sources) per split. Defaults to
            `None` (all).
        data_dir: TFDS data directory (TFDS sets only). Defaults to `None`.
        download: download and prepare a missing TFDS set. Defaults to `False`.

    Returns:
        A `TranslationDataset`.

    Raises:
        ValueError: unknown `name` or a non-positive `max_words`/`limit`.
        DatasetNotFoundError: a TFDS set is not prepared and `download=False`.

    Example:

    ```python
    data = kerasdl.data.load_translation_dataset("fra_eng")
    english, french = next(iter(data.train))
    data.test_sources[0], data.test_references[0]  # one sentence, all its translations
    ```
    """
    name = name.replace("-", "_")
    if name not in TRANSLATION_DATASETS:
        raise ValueError(
            f"Unknown translation dataset {name!r}. Expected one of "
            f"{', '.join(TRANSLATION_DATASETS)}."
        )
    for argument, value in (
        ("max_words", max_words),
        ("max_target_tokens", max_target_tokens),
    ):
        if not isinstance(value, int) or value < 1:
            raise ValueError(
                f"`{argument}` must be a positive int. Received: {argument}={value!r}"
            )
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise ValueError(
            f"`limit` must be a positive int or None. Received: limit={limit!r}"
        )
    if name == "fra_eng":
        pairs, test_items, languages = _fra_eng_splits(
            max_words, max_target_tokens, limit
        )
    else:
        pairs, test_items, languages = _tfds_splits(
            name, data_dir, download, max_words, max_target_tokens, limit
        )
    rng = np.random.default_rng(seed)
    pairs["train"] = [pairs["train"][i] for i in rng.permutation(len(pairs["train"]))]

    def dataset(items):
        sources = [s for s, _ in items]
        targets = [t for _, t in items]
        return tf.data.Dataset.from_tensor_slices(
            (tf.constant(sources, tf.string), tf.constant(targets, tf.string))
        )

    return TranslationDataset(
        name=name,
        source_language=languages[0],
        target_language=languages[1],
        train=dataset(pairs["train"]),
        validation=dataset(pairs["validation"]),
        test_sources=[source for source, _ in test_items],
        test_references=[references for _, references in test_items],
        num_examples={
            "train": len(pairs["train"]),
            "validation": len(pairs["validation"]),
            "test": len(test_items),
        },
    )
