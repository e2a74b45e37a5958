"""seq2seq_attention / transformer_translate: tiny run, export with the decoder inside,
SavedModel output identical to eager decoding, served by `kerasdl serve`."""

import dataclasses
import importlib
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests
import tensorflow as tf

from kerasdl.export import load_model_card

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RECIPES = ["seq2seq_attention", "transformer_translate"]
SENTENCES = ["I am cold.", "Tom is here.", "Where is my car?"]


@pytest.fixture(scope="module", params=RECIPES)
def exported(request, tmp_path_factory):
    """Trains one tiny model per recipe; returns (recipe, module, workdir, export path)."""
    recipe = request.param
    tmp = tmp_path_factory.mktemp(recipe)
    module = importlib.import_module(f"kerasdl.recipes.{recipe}")
    sizes = (
        {"embedding_dim": 16, "units": 16}
        if recipe == "seq2seq_attention"
        else {"hidden_dim": 16, "intermediate_dim": 32, "num_layers": 1, "num_heads": 2}
    )
    config = dataclasses.replace(
        module.CONFIG,
        epochs=1,
        limit=200,
        test_limit=8,
        batch_size=32,
        beam_size=2,
        num_samples=2,
        verbose="0",
        output=str(tmp / "saved_models"),
        **sizes,
    )
    result = module.TASK.run(config, str(tmp / "run"), recipe)
    return recipe, result, str(tmp / "run")


def test_run_reports_bleu_samples_and_attention_map(exported):
    recipe, result, workdir = exported
    card = load_model_card(result.export_path)
    assert card["recipe"] == recipe
    assert card["metrics"]["test_sentences_decoded"] == 8
    assert 0.0 <= card["metrics"]["test_bleu_beam"] <= 100.0
    assert len(result.samples) == 2 and set(result.samples[0]) >= {"source", "beam"}
    assert os.path.getsize(os.path.join(workdir, "attention.png")) > 0
    assert os.path.exists(
        os.path.join(result.export_path, "assets.extra", "attention.png")
    )


def test_export_signatures_match_eager_decoding(exported):
    """Strings in, strings out, in the graph; identical to eager `Translator` decoding."""
    _, result, _ = exported
    loaded = tf.saved_model.load(result.export_path)
    assert {"serving_default", "greedy_decode", "beam_decode"} <= set(loaded.signatures)
    texts = tf.constant(SENTENCES)
    served = loaded.signatures["serving_default"](text=texts)["translation"]
    assert served.dtype == tf.string and served.shape == (3,)
    beam = loaded.signatures["beam_decode"](text=texts)["translation"].numpy()
    assert list(beam) == list(served.numpy())
    greedy = loaded.signatures["greedy_decode"](text=texts)["translation"].numpy()
    # Eager decoding (no tf.function) with the in-memory translator of the run.
    eager_beam = result.translator.translate(texts, beam_size=2).numpy()
    eager_greedy = result.translator.translate(texts, beam_size=1).numpy()
    assert list(served.numpy()) == list(eager_beam)
    assert list(greedy) == list(eager_greedy)


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_kerasdl_serve_translates_instances(exported):
    recipe, result, _ = exported
    if recipe != "transformer_translate":
        pytest.skip("one server start is enough")
    port = _free_port()
    base = os.path.dirname(result.export_path)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kerasdl",
            "serve",
            f"--rest_api_port={port}",
            "--model_name=translate",
            f"--model_base_path={base}",
        ],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    try:
        url = f"http://127.0.0.1:{port}/v1/models/translate"
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                status = requests.get(url, timeout=2).json()
                states = [v["state"] for v in status.get("model_version_status", [])]
                if "AVAILABLE" in states:
                    break
            except (requests.ConnectionError, requests.Timeout, ValueError):
                pass
            assert process.poll() is None, "server exited early"
            time.sleep(0.5)
        reply = requests.post(
            f"{url}:predict", json={"instances": ["I am cold."]}, timeout=120
        )
        assert reply.status_code == 200, reply.text
        expected = tf.saved_model.load(result.export_path).signatures[
            "serving_default"
        ](text=tf.constant(["I am cold."]))["translation"]
        assert reply.json()["predictions"] == [expected.numpy()[0].decode("utf-8")]
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
