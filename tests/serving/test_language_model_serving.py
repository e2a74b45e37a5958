"""A language model's SavedModel served by `kerasdl serve`: generate and score over REST."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import ServerProcess, predict

from kerasdl.data.timemachine import Vocabulary, tokenize
from kerasdl.export.language_model import TextLanguageModel, export_language_model
from kerasdl.models import RNNLanguageModel

PROMPTS = ["the time", "so"]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    folder = tmp_path_factory.mktemp("language_model")
    vocabulary = Vocabulary.build(
        tokenize("the time traveller smiled, and so on.", "char")
    )
    keras.utils.set_random_seed(0)
    model = RNNLanguageModel(vocabulary.size, cell="gru", units=8, embedding_dim=4)
    model(np.zeros((1, 1), "int32"))
    text_model = TextLanguageModel(model, vocabulary, "char", max_sequence_length=24)
    export_language_model(text_model, folder / "lm")
    server = ServerProcess(
        "--model_name=lm", f"--model_base_path={folder / 'lm'}", log_path=folder / "log"
    )
    try:
        yield server.wait_available(["lm"]), text_model
    finally:
        server.stop()


def test_rest_answers_generate_and_score_as_the_eager_model(served):
    server, text_model = served
    url = f"{server.url}/v1/models/lm:predict"
    prompts = tf.constant(PROMPTS)

    reply = predict(url, {"inputs": {"prompt": PROMPTS}})
    assert reply.status_code == 200, reply.text
    expected = text_model.generate(prompts)["continuation"].numpy()
    outputs = reply.json()["outputs"]
    assert outputs["continuation"] == [t.decode("utf-8") for t in expected]
    assert outputs["continuation_length"] == [23, 23]

    options = {"max_length": 6, "temperature": 0.7, "top_k": 3, "top_p": 0.9, "seed": 5}
    reply = predict(
        url,
        {"signature_name": "generate", "inputs": {"prompt": PROMPTS, **options}},
    )
    assert reply.status_code == 200, reply.text
    expected = text_model.generate(prompts, **options)["continuation"].numpy()
    assert reply.json()["outputs"]["continuation"] == [
        t.decode("utf-8") for t in expected
    ]

    texts = ["the time traveller", "a"]
    reply = predict(url, {"signature_name": "score", "inputs": {"text": texts}})
    assert reply.status_code == 200, reply.text
    scored = reply.json()["outputs"]
    expected = text_model.score(tf.constant(texts))
    np.testing.assert_allclose(
        scored["negative_log_likelihood"],
        expected["negative_log_likelihood"].numpy(),
        rtol=1e-5,
    )
    assert scored["num_predicted"] == [17, 0]


def test_a_bad_sampling_option_is_a_400_that_names_it(served):
    server, _ = served
    options = {"max_length": 6, "temperature": 1.0, "top_k": 0, "top_p": 1.5, "seed": 1}
    reply = predict(
        f"{server.url}/v1/models/lm:predict",
        {"signature_name": "generate", "inputs": {"prompt": PROMPTS, **options}},
    )
    assert reply.status_code == 400, reply.text
    assert "top_p must be in (0, 1]" in reply.json()["error"]
