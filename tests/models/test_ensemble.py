"""`kerasdl.models.ensemble`: averaged and voted ensembles as one model."""

import keras
import numpy as np
import pytest

from kerasdl.models import MajorityVote, ensemble, mlp


def members(count=3, num_classes=4, input_shape=(8, 8, 1), **kwargs):
    keras.utils.set_random_seed(0)
    return [
        mlp(input_shape, num_classes, depth=1, width=8, name=f"member_{i}", **kwargs)
        for i in range(count)
    ]


def images(count=32, shape=(8, 8, 1)):
    return np.random.default_rng(0).normal(size=(count, *shape)).astype("float32")


def test_average_is_exactly_the_mean_of_member_probabilities():
    models = members(3)
    model = ensemble(models)
    x = images()
    predictions = [np.asarray(m(x, training=False)) for m in models]
    output = np.asarray(model(x, training=False))
    assert output.dtype == np.float32 and output.shape == (32, 4)
    mean = np.mean(np.stack(predictions), axis=0)
    if keras.backend.backend() == "tensorflow":
        np.testing.assert_array_equal(output, mean)
    else:
        # XLA turns the division by n into a multiplication by 1/n: within 1 ulp.
        np.testing.assert_array_max_ulp(output, mean, maxulp=1)
    np.testing.assert_allclose(output.sum(axis=1), 1.0, atol=1e-6)


def test_vote_is_the_majority():
    models = members(5)
    model = ensemble(models, method="vote")
    x = images(64)
    votes = np.stack([np.asarray(m(x, training=False)).argmax(-1) for m in models])
    counts = np.stack([(votes == c).sum(axis=0) for c in range(4)], axis=-1)
    output = np.asarray(model(x, training=False))
    np.testing.assert_array_equal(output, (counts / 5).astype("float32"))
    majority = np.array([np.bincount(v, minlength=4).argmax() for v in votes.T])
    np.testing.assert_array_equal(output.argmax(-1), majority)
    assert len(set(votes.ravel())) > 1  # the members do disagree


def test_vote_ties_go_to_the_lowest_class():
    a = np.array([[0.1, 0.2, 0.7], [0.6, 0.3, 0.1]], "float32")
    b = np.array([[0.1, 0.8, 0.1], [0.2, 0.2, 0.6]], "float32")
    output = np.asarray(MajorityVote()([a, b]))
    np.testing.assert_array_equal(output, [[0.0, 0.5, 0.5], [0.5, 0.0, 0.5]])
    np.testing.assert_array_equal(output.argmax(-1), [1, 0])


def test_members_are_shared_not_copied():
    models = members(2)
    model = ensemble(models)
    assert model.get_layer("member_0") is models[0]
    assert len(model.weights) == sum(len(m.weights) for m in models)
    x = images(4)
    before = np.asarray(model(x))
    models[1].get_layer("logits").bias.assign(np.array([5.0, 0, 0, 0], "float32"))
    after = np.asarray(model(x))
    assert not np.allclose(before, after)
    np.testing.assert_allclose(
        after, (np.asarray(models[0](x)) + np.asarray(models[1](x))) / 2, atol=1e-7
    )


def test_same_model_twice_counts_twice():
    models = members(2)
    model = ensemble([models[0], models[0], models[1]])
    x = images(4)
    p0, p1 = np.asarray(models[0](x)), np.asarray(models[1](x))
    np.testing.assert_allclose(np.asarray(model(x)), (2 * p0 + p1) / 3, atol=1e-7)


def test_uint8_members_keep_their_input_dtype():
    models = members(2, rescale=1 / 255, input_dtype="uint8")
    model = ensemble(models, name="raw_images")
    assert model.name == "raw_images"
    assert model.inputs[0].dtype == "uint8" and model.layers[0].name == "images"
    raw = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 1)).astype("uint8")
    expected = (np.asarray(models[0](raw)) + np.asarray(models[1](raw))) / 2
    np.testing.assert_allclose(np.asarray(model(raw)), expected, atol=1e-7)


@pytest.mark.parametrize("method", ["average", "vote"])
def test_keras_round_trip(tmp_path, method):
    model = ensemble(members(3, normalization="batch"), method=method)
    x = images(8)
    expected = np.asarray(model(x, training=False))
    model.save(tmp_path / "ensemble.keras")
    reloaded = keras.saving.load_model(tmp_path / "ensemble.keras")
    assert [l.name for l in reloaded.layers] == [l.name for l in model.layers]
    np.testing.assert_array_equal(np.asarray(reloaded(x, training=False)), expected)


def test_training_the_ensemble_trains_the_members():
    models = members(2)
    model = ensemble(models)
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    x, y = images(16), np.arange(16) % 4
    kernel = np.array(models[0].get_layer("hidden_1").kernel)
    before = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=5, batch_size=16, verbose=0)
    assert model.evaluate(x, y, verbose=0) < before
    assert not np.allclose(kernel, models[0].get_layer("hidden_1").kernel)


@pytest.mark.parametrize("method", ["average", "vote"])
def test_exports_as_one_servable_saved_model(tmp_path, method):
    tf = pytest.importorskip("tensorflow")
    from kerasdl.export import export_saved_model

    model = ensemble(members(3), method=method)
    x = images(8)
    expected = np.asarray(model(x, training=False))
    result = export_saved_model(
        model, tmp_path / "ensemble", input_shape=(8, 8, 1), input_dtype="float32"
    )
    assert result.version == 1
    assert sorted(p.name for p in (tmp_path / "ensemble").iterdir()) == ["1"]
    served = tf.saved_model.load(result.path).signatures["serving_default"](
        images=tf.constant(x)
    )
    np.testing.assert_allclose(served["probabilities"].numpy(), expected, atol=1e-6)
    np.testing.assert_array_equal(served["class_id"].numpy(), expected.argmax(-1))


def test_invalid_arguments():
    models = members(2)
    with pytest.raises(ValueError, match="at least one model.*Received: models=\\[\\]"):
        ensemble([])
    with pytest.raises(ValueError, match="method.*Received: method='median'"):
        ensemble(models, method="median")
    with pytest.raises(TypeError, match="keras.Model.*models\\[1\\] of type str"):
        ensemble([models[0], "lenet"])
    other_shape = mlp((8, 8, 3), 4, depth=1, width=8, name="rgb")
    with pytest.raises(
        ValueError,
        match="equal input shapes.*'member_0': \\(8, 8, 1\\).*'rgb': \\(8, 8, 3\\)",
    ):
        ensemble([models[0], other_shape])
    other_classes = mlp((8, 8, 1), 10, depth=1, width=8, name="ten")
    with pytest.raises(ValueError, match="equal numbers of classes.*'ten': 10"):
        ensemble([models[0], other_classes])
    other_dtype = mlp((8, 8, 1), 4, depth=1, width=8, input_dtype="uint8", name="u8")
    with pytest.raises(ValueError, match="equal input dtypes.*'u8': uint8"):
        ensemble([models[0], other_dtype])
    namesake = mlp((8, 8, 1), 4, depth=1, width=8, name="member_0")
    with pytest.raises(ValueError, match="distinct names.*'member_0', 'member_0'"):
        ensemble([models[0], namesake])
