"""Exports write TF Serving's assets.extra/tf_serving_warmup_requests."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from kerasdl import export
from kerasdl.export.warmup import (
    WARMUP_PATH,
    warmup_batches,
    write_warmup_requests,
)


def _read(path):
    logs = []
    for record in tf.data.TFRecordDataset(str(path)):
        log = prediction_log_pb2.PredictionLog()
        log.ParseFromString(record.numpy())
        logs.append(log)
    return logs


def _classifier():
    inputs = keras.Input((8, 8, 1), dtype="uint8", name="images")
    x = keras.layers.Rescaling(1 / 255)(inputs)
    outputs = keras.layers.Dense(3, activation="softmax")(keras.layers.Flatten()(x))
    return keras.Model(inputs, outputs)


def test_image_export_writes_requests_of_real_images(tmp_path):
    images = np.random.default_rng(0).integers(0, 255, (20, 8, 8, 1), dtype="uint8")
    result = export.export_saved_model(
        _classifier(),
        tmp_path / "lenet",
        input_shape=(8, 8, 1),
        input_dtype="uint8",
        verification_images=images,
    )
    logs = _read(f"{result.path}/{WARMUP_PATH}")
    assert [log.WhichOneof("log_type") for log in logs] == ["predict_log"] * 2
    requests = [log.predict_log.request for log in logs]
    assert {r.model_spec.signature_name for r in requests} == {"serving_default"}
    assert {r.model_spec.name for r in requests} == {"lenet"}
    batches = [tf.make_ndarray(r.inputs["images"]) for r in requests]
    assert [b.shape for b in batches] == [(1, 8, 8, 1), (8, 8, 8, 1)]
    assert all(b.dtype == np.uint8 for b in batches)
    np.testing.assert_array_equal(batches[1], images[:8])


def test_warmup_can_be_turned_off(tmp_path):
    result = export.export_saved_model(
        _classifier(),
        tmp_path / "m",
        input_shape=(8, 8, 1),
        input_dtype="uint8",
        warmup=False,
    )
    assert not (tmp_path / "m" / "1" / WARMUP_PATH).exists()
    assert result.version == 1


def test_export_signatures_writes_string_requests(tmp_path):
    layer = keras.layers.Dense(2)
    layer.build((None, 3))
    path = export.export_signatures(
        [layer],
        tmp_path / "echo",
        {
            "shout": (
                lambda t: {"upper": tf.strings.upper(t)},
                [tf.TensorSpec([None], tf.string, name="text")],
            )
        },
        warmup_requests=[("shout", {"text": np.array([b"hi", "h\u00e9".encode()])})],
    )
    (log,) = _read(f"{path}/{WARMUP_PATH}")
    request = log.predict_log.request
    assert request.model_spec.signature_name == "shout"
    assert tf.make_ndarray(request.inputs["text"]).tolist() == [
        b"hi",
        "h\u00e9".encode(),
    ]


def test_warmup_batches_shrink_to_the_examples_and_a_byte_budget():
    examples = {"x": np.zeros((5, 10), "float32")}
    assert [b["x"].shape[0] for b in warmup_batches(examples)] == [1, 5]
    assert [b["x"].shape[0] for b in warmup_batches(examples, (1, 8), 100)] == [1]
    assert warmup_batches({"x": np.zeros((0, 3))}) == []


def test_more_than_tf_serving_reads_is_refused(tmp_path):
    with pytest.raises(ValueError, match="at most 1000"):
        write_warmup_requests(
            tmp_path, [("serving_default", {"x": np.zeros(1)})] * 1001
        )


# --- string-input exports: the text classifier and the translator --------------------


def _text_classifier(texts):
    from kerasdl.models.text_classifier import rnn_text_classifier

    keras.utils.set_random_seed(0)
    vectorizer = keras.layers.TextVectorization(
        max_tokens=20, output_sequence_length=6, name="text_vectorization"
    )
    vectorizer.adapt(tf.constant(texts))
    return rnn_text_classifier(vectorizer, 3, embedding_dim=4, units=4, dropout=0.0)


def _translator():
    from kerasdl.data.text_translation import standardize_text
    from kerasdl.export import Translator
    from kerasdl.models.seq2seq import Seq2SeqAttention

    keras.utils.set_random_seed(0)
    sources = tf.constant(["I am cold.", "Hello!", "Who are you?"])
    targets = tf.constant(
        ["[start] j'ai froid . [end]", "[start] salut ! [end]", "[start] qui ? [end]"]
    )

    def vectorizer(length, name):
        return keras.layers.TextVectorization(
            standardize=None,
            split="whitespace",
            output_sequence_length=length,
            name=name,
        )

    source, target = vectorizer(6, "source"), vectorizer(7, "target")
    source.adapt(standardize_text(sources))
    target.adapt(targets)
    model = Seq2SeqAttention(
        source.vocabulary_size(), target.vocabulary_size(), embedding_dim=4, units=4
    )
    model(
        {
            "source": source(standardize_text(sources)),
            "target_in": target(targets)[:, :-1],
        }
    )
    return Translator(model, source, target, 7)


def _string_requests(logs):
    """`(signature, model name, texts)` of each record, which must all be Predict
    requests with one DT_STRING `text` input of shape (batch,)."""
    out = []
    for log in logs:
        assert log.WhichOneof("log_type") == "predict_log"
        request = log.predict_log.request
        assert list(request.inputs) == ["text"]
        proto = request.inputs["text"]
        assert proto.dtype == tf.string.as_datatype_enum
        assert [d.size for d in proto.tensor_shape.dim] == [len(proto.string_val)]
        out.append(
            (
                request.model_spec.signature_name,
                request.model_spec.name,
                tf.make_ndarray(proto).tolist(),
            )
        )
    return out


def test_text_classifier_export_writes_string_requests(tmp_path):
    texts = [f"sentence number {i} about {w}" for i, w in enumerate("abcdefghij")]
    path = export.export_text_classifier(
        _text_classifier(texts),
        tmp_path / "intent",
        class_names=["a", "b", "c"],
        verification_texts=texts,
    )
    requests = _string_requests(_read(f"{path}/{WARMUP_PATH}"))
    encoded = [t.encode() for t in texts]
    assert requests == [
        ("serving_default", "intent", encoded[:1]),
        ("serving_default", "intent", encoded[:8]),
    ]


def test_text_classifier_default_texts_give_requests_of_one_and_three(tmp_path):
    texts = ["hello there", "a longer test sentence"]
    path = export.export_text_classifier(
        _text_classifier(texts), tmp_path / "intent", class_names=["a", "b", "c"]
    )
    requests = _string_requests(_read(f"{path}/{WARMUP_PATH}"))
    assert [r[2] for r in requests] == [
        [b"hello"],
        [b"hello", b"", b"a longer test sentence"],
    ]


def test_translator_export_writes_one_request_per_signature(tmp_path):
    path = export.export_translator(_translator(), tmp_path / "translate", beam_size=2)
    requests = _string_requests(_read(f"{path}/{WARMUP_PATH}"))
    one, two = [b"I am cold."], [b"I am cold.", b"Hello!"]
    assert requests == [
        ("serving_default", "translate", one),
        ("beam_decode", "translate", one),
        ("greedy_decode", "translate", one),
        ("serving_default", "translate", two),
    ]


def test_translator_export_with_one_text_writes_no_larger_batch(tmp_path):
    path = export.export_translator(
        _translator(),
        tmp_path / "translate",
        beam_size=2,
        verification_texts=["Hello!"],
    )
    requests = _string_requests(_read(f"{path}/{WARMUP_PATH}"))
    assert [(r[0], r[2]) for r in requests] == [
        ("serving_default", [b"Hello!"]),
        ("beam_decode", [b"Hello!"]),
        ("greedy_decode", [b"Hello!"]),
    ]
