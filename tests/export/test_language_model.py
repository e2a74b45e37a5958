"""TextLanguageModel and its SavedModel: generate and score, eager == graph == reloaded."""

import json
import math
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from kerasdl.data.timemachine import Vocabulary, read_timemachine, tokenize
from kerasdl.export.language_model import TextLanguageModel, export_language_model
from kerasdl.models import RNNLanguageModel

TEXT = "the time traveller smiled. the fire burned brightly,\nand so on."
PROMPTS = tf.constant(
    ["the time", "", "fire burned brightly and so on, the time"]
)  # the last one longer than the buffer


@pytest.fixture(scope="module")
def text_model():
    vocabulary = Vocabulary.build(tokenize(TEXT, "char"))
    keras.utils.set_random_seed(0)
    model = RNNLanguageModel(vocabulary.size, cell="lstm", units=16, embedding_dim=8)
    model(np.zeros((1, 1), "int32"))
    return TextLanguageModel(model, vocabulary, "char", max_sequence_length=24)


def _texts(tensor):
    return [t.decode("utf-8") for t in tensor.numpy()]


def test_generate_in_a_graph_equals_eager(text_model):
    options = {
        "max_length": 12,
        "temperature": 0.8,
        "top_k": 5,
        "top_p": 0.9,
        "seed": 7,
    }
    eager = text_model.generate(PROMPTS, **options)
    graph = tf.function(text_model.generate)(PROMPTS, *options.values())
    assert _texts(graph["continuation"]) == _texts(eager["continuation"])
    assert eager["continuation_length"].numpy().tolist() == [12, 12, 12]
    assert all(len(text) == 12 for text in _texts(eager["continuation"]))


def test_graph_with_tensor_options_and_a_fixed_batch(text_model):
    # A concrete batch of one with every option a tensor: the decoding loop's
    # shapes stay fixed (they once went from (1, n) to (None, n) and failed).
    options = {
        "max_length": tf.constant(5),
        "temperature": tf.constant(1.0),
        "top_k": tf.constant(0),
        "top_p": tf.constant(1.0),
        "seed": tf.constant(3),
    }
    prompt = tf.constant(["the"])
    graph = tf.function(text_model.generate)(prompt, **options)
    eager = text_model.generate(prompt, **options)
    assert _texts(graph["continuation"]) == _texts(eager["continuation"])


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("max_length", -1, "max_length must be >= 0"),
        ("temperature", 0.0, "temperature must be > 0"),
        ("top_k", -3, "top_k must be >= 0"),
        ("top_p", 0.0, "top_p must be in \\(0, 1\\]"),
        ("top_p", 1.5, "top_p must be in \\(0, 1\\]"),
    ],
)
def test_bad_sampling_options_are_refused_by_name(text_model, option, value, message):
    options = {"max_length": 4, "temperature": 1.0, "top_k": 0, "top_p": 1.0}
    options[option] = value
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        text_model.generate(tf.constant(["the"]), **options)


def test_greedy_continuation_is_the_argmax_of_the_whole_sequence_logits(text_model):
    prompt = tf.constant(["the time"])
    out = text_model.generate(prompt, max_length=10, top_k=1, seed=3)
    ids = np.concatenate(
        [text_model.encode(prompt).to_tensor().numpy(), out["continuation_ids"]], 1
    )
    logits = np.array(text_model.model(ids[:, :-1]))
    logits[..., :2] = -np.inf  # padding and unknown are never generated
    # Each generated token has the largest logit (up to float32 ties).
    chosen = np.take_along_axis(logits[0, 7:], ids[0, 8:, None], -1)[:, 0]
    np.testing.assert_allclose(chosen, logits[0, 7:].max(-1), atol=1e-5)


def test_same_seed_same_continuation_other_seed_another(text_model):
    first = _texts(text_model.generate(PROMPTS, max_length=8, seed=1)["continuation"])
    again = _texts(text_model.generate(PROMPTS, max_length=8, seed=1)["continuation"])
    other = _texts(text_model.generate(PROMPTS, max_length=8, seed=2)["continuation"])
    assert first == again and first != other


def test_top_k_keeps_to_the_most_likely_tokens(text_model):
    prompt = tf.constant(["the time"] * 64)
    out = text_model.generate(prompt, max_length=1, top_k=2, seed=0)
    logits = np.array(text_model.model(text_model.encode(prompt[:1]).to_tensor()))
    logits[..., :2] = -np.inf
    allowed = set(np.argsort(logits[0, -1])[-2:].tolist())
    drawn = set(out["continuation_ids"].numpy()[:, 0].tolist())
    assert drawn <= allowed and len(drawn) == 2


def test_long_prompts_keep_their_end_and_the_buffer_holds(text_model):
    long_prompt = tf.constant(["x" * 30 + "the time traveller smiled. the fire"])
    out = text_model.generate(long_prompt, max_length=6, top_k=1)
    assert out["continuation_length"].numpy().tolist() == [6]
    # 24 positions: the prompt keeps its last 18 tokens.
    kept = text_model.generate(
        tf.constant(["raveller smiled. the fire"[-18:]]), max_length=6, top_k=1
    )
    assert _texts(out["continuation"]) == _texts(kept["continuation"])


def test_a_prompt_keeps_half_the_buffer_whatever_max_length_asks(text_model):
    prompt = "x" * 30 + "the time traveller smiled. the fire"
    for max_length in (16, 23, 100):  # 24 positions in all
        out = text_model.generate(tf.constant([prompt]), max_length, top_k=1)
        assert out["continuation_length"].numpy().tolist() == [12]
        kept = text_model.generate(tf.constant([prompt[-12:]]), 12, top_k=1)
        assert _texts(out["continuation"]) == _texts(kept["continuation"])
    short = text_model.generate(tf.constant(["the"]), 100, top_k=1)
    assert short["continuation_length"].numpy().tolist() == [21]  # 24 - 3


def test_score_is_the_summed_cross_entropy_of_each_text(text_model):
    texts = ["the time", "so", "", "a", "fire burned brightly"]
    out = text_model.score(tf.constant(texts))
    assert out["num_predicted"].numpy().tolist() == [7, 1, 0, 0, 19]
    for text, nll in zip(texts, out["negative_log_likelihood"].numpy()):
        if len(text) < 2:
            assert nll == 0.0
            continue
        ids = text_model.encode(tf.constant([text])).to_tensor().numpy()
        logits = np.asarray(text_model.model(ids[:, :-1]), "float64")[0]
        log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        expected = -log_probs[np.arange(len(text) - 1), ids[0, 1:]].sum()
        assert math.isclose(nll, expected, rel_tol=1e-5)


@pytest.mark.parametrize("level", ["char", "word"])
def test_in_graph_tokens_are_the_datasets_tokens_on_the_whole_book(level):
    text = read_timemachine()
    vocabulary = Vocabulary.build(tokenize(text, level))
    model = RNNLanguageModel(vocabulary.size, units=2, embedding_dim=2)
    text_model = TextLanguageModel(model, vocabulary, level)
    in_graph = text_model.encode(tf.constant([text])).flat_values.numpy()
    np.testing.assert_array_equal(in_graph, vocabulary.encode(tokenize(text, level)))


@pytest.mark.large  # ~75 s on a loaded 2-core CPU: tracing three signatures
def test_export_reproduces_eager_generation_and_scores(text_model, tmp_path):
    path = export_language_model(
        text_model, tmp_path / "lm", model_card={"recipe": "test"}
    )
    assert path == str(tmp_path / "lm" / "1")
    reloaded = tf.saved_model.load(path)
    # The options are optional: the loaded function takes the defaults, which the
    # SignatureDef also carries (TensorFlow's loaded signatures want every input).
    default = reloaded.serving_default(tf.constant(PROMPTS))
    eager = text_model.generate(PROMPTS)
    assert _texts(default["continuation"]) == _texts(eager["continuation"])
    defaults = {
        "max_length": tf.constant(100),
        "temperature": tf.constant(1.0),
        "top_k": tf.constant(0),
        "top_p": tf.constant(1.0),
        "seed": tf.constant(0),
    }
    signature = reloaded.signatures["serving_default"](prompt=PROMPTS, **defaults)
    assert _texts(signature["continuation"]) == _texts(eager["continuation"])
    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as file:
        proto.ParseFromString(file.read())
    for name in ("serving_default", "generate"):
        written = proto.meta_graphs[0].signature_def[name].defaults
        assert {k: tf.make_ndarray(v).item() for k, v in written.items()} == {
            k: v.numpy().item() for k, v in defaults.items()
        }
    # max_length 100 is clipped to the 24-token buffer less the first token.
    assert default["continuation_length"].numpy().tolist() == [23] * 3
    options = {
        "max_length": 9,
        "temperature": 0.5,
        "top_k": 0,
        "top_p": 0.8,
        "seed": 11,
    }
    generated = reloaded.signatures["generate"](
        prompt=PROMPTS,
        max_length=tf.constant(9),
        temperature=tf.constant(0.5),
        top_k=tf.constant(0),
        top_p=tf.constant(0.8),
        seed=tf.constant(11),
    )
    assert _texts(generated["continuation"]) == _texts(
        text_model.generate(PROMPTS, **options)["continuation"]
    )
    texts = tf.constant(["the time traveller", "x"])
    scored = reloaded.signatures["score"](text=texts)
    np.testing.assert_allclose(
        scored["negative_log_likelihood"].numpy(),
        text_model.score(texts)["negative_log_likelihood"].numpy(),
        rtol=1e-5,
    )
    assert scored["num_predicted"].numpy().tolist() == [17, 0]
    assert os.path.exists(
        os.path.join(path, "assets.extra", "tf_serving_warmup_requests")
    )
    with open(os.path.join(path, "assets.extra", "model_card.json")) as file:
        assert json.load(file)["recipe"] == "test"
    shown = subprocess.run(
        [
            os.path.join(os.path.dirname(sys.executable), "saved_model_cli"),
            "show",
            "--dir",
            path,
            "--tag_set",
            "serve",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for name in ("serving_default", "generate", "score"):
        assert f'"{name}"' in shown


def test_refuses_a_vocabulary_without_the_reserved_tokens():
    model = RNNLanguageModel(5, units=2, embedding_dim=2)
    with pytest.raises(ValueError, match="<pad>.*Received: tokens"):
        TextLanguageModel(model, ["a", "b", "c", "d", "e"], "char")
