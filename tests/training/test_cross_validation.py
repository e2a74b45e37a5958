"""`kerasdl.training.cross_validate`: stratified seeded folds, per-fold metrics, summary."""

import keras
import numpy as np
import pytest
from sklearn.datasets import load_digits

import kerasdl
from kerasdl.training import CrossValidationResult, cross_validate

FIT = {"epochs": 1, "batch_size": 32, "verbose": 0}


@pytest.fixture(scope="module")
def digits():
    """150 digits: 15 per class, features in 0..16."""
    x, y = load_digits(return_X_y=True)
    index = np.concatenate([np.flatnonzero(y == c)[:15] for c in range(10)])
    return x[index].astype("float32"), y[index]


def build_model():
    model = kerasdl.models.mlp((64,), 10, depth=1, width=16, rescale=1 / 16)
    # Eager: a few steps per fold, cheaper than tracing a graph for each new model.
    model.compile(
        keras.optimizers.Adam(1e-2),
        "sparse_categorical_crossentropy",
        metrics=["accuracy"],
        run_eagerly=True,
    )
    return model


@pytest.fixture(scope="module")
def result(digits):
    return cross_validate(build_model, *digits, folds=3, seed=0, fit_kwargs=FIT)


def test_folds_partition_the_data_and_are_stratified(digits, result):
    _, y = digits
    assert result.folds == 3 and len(result.fold_indices) == 3
    validation = np.concatenate([val for _, val in result.fold_indices])
    np.testing.assert_array_equal(np.sort(validation), np.arange(len(y)))
    for train, val in result.fold_indices:
        assert not set(train) & set(val)
        assert len(train) + len(val) == len(y)
        # 15 per class over 3 folds: exactly 5 of each class in every validation part.
        np.testing.assert_array_equal(np.bincount(y[val], minlength=10), [5] * 10)


def test_per_fold_metrics_and_their_mean_and_std(result):
    assert [list(fold) for fold in result.fold_metrics] == [["loss", "accuracy"]] * 3
    accuracies = [fold["accuracy"] for fold in result.fold_metrics]
    assert all(0.0 <= a <= 1.0 for a in accuracies)
    assert result.mean["accuracy"] == pytest.approx(np.mean(accuracies))
    assert result.std["accuracy"] == pytest.approx(np.std(accuracies))
    assert result.mean["loss"] == pytest.approx(
        np.mean([fold["loss"] for fold in result.fold_metrics])
    )
    assert [len(h["val_loss"]) for h in result.histories] == [1, 1, 1]
    assert result.summary().startswith(
        f"loss {result.mean['loss']:.2f} ± {result.std['loss']:.2f}, accuracy "
    )


def test_evaluation_is_on_the_fold_validation_part(digits, result):
    # The history's validation metrics (end of the only epoch) are the evaluation.
    for fold, history in zip(result.fold_metrics, result.histories):
        assert fold["accuracy"] == pytest.approx(history["val_accuracy"][-1])


def test_same_seed_same_folds_and_results(digits, result):
    again = cross_validate(build_model, *digits, folds=3, seed=0, fit_kwargs=FIT)
    for (train, val), (train2, val2) in zip(result.fold_indices, again.fold_indices):
        np.testing.assert_array_equal(train, train2)
        np.testing.assert_array_equal(val, val2)
    for fold, fold2 in zip(result.fold_metrics, again.fold_metrics):
        assert fold == pytest.approx(fold2, rel=1e-6)
    other = cross_validate(
        build_model, *digits, folds=3, seed=1, fit_kwargs=FIT, metrics=["accuracy"]
    )
    assert not np.array_equal(other.fold_indices[0][1], result.fold_indices[0][1])
    assert [list(fold) for fold in other.fold_metrics] == [["accuracy"]] * 3


def test_one_hot_labels_are_stratified_by_class(digits):
    x, y = digits
    one_hot = keras.utils.to_categorical(y, 10)

    def build_categorical():
        model = kerasdl.models.mlp((64,), 10, depth=1, width=8, rescale=1 / 16)
        model.compile(
            "adam", "categorical_crossentropy", metrics=["accuracy"], run_eagerly=True
        )
        return model

    result = cross_validate(
        build_categorical, x, one_hot, folds=3, fit_kwargs=FIT, metrics=["accuracy"]
    )
    for _, val in result.fold_indices:
        np.testing.assert_array_equal(np.bincount(y[val], minlength=10), [5] * 10)


def test_summary_of_known_metrics():
    result = CrossValidationResult(
        fold_metrics=[{"accuracy": 0.9}, {"accuracy": 0.95}, {"accuracy": 1.0}],
        fold_indices=[],
        histories=[],
        seed=0,
    )
    assert result.mean == {"accuracy": pytest.approx(0.95)}
    assert result.std == {"accuracy": pytest.approx(np.sqrt(0.005 / 3))}
    assert result.summary() == "accuracy 0.95 ± 0.04"
    assert result.summary(precision=3) == "accuracy 0.950 ± 0.041"


def test_invalid_arguments(digits):
    x, y = digits
    with pytest.raises(ValueError, match="folds.*>= 2.*Received: folds=1"):
        cross_validate(build_model, x, y, folds=1)
    with pytest.raises(ValueError, match="smallest class.*has 15.*Received: folds=16"):
        cross_validate(build_model, x, y, folds=16)
    with pytest.raises(ValueError, match="same number of examples.*150 inputs and 149"):
        cross_validate(build_model, x, y[:-1])
    with pytest.raises(
        ValueError, match="fit_kwargs.*Received: \\['validation_split'\\]"
    ):
        cross_validate(build_model, x, y, fit_kwargs={"validation_split": 0.1})

    def uncompiled():
        return kerasdl.models.mlp((64,), 10, depth=1, width=4)

    with pytest.raises(ValueError, match="compiled model"):
        cross_validate(uncompiled, x, y, folds=2)
    with pytest.raises(ValueError, match="Unknown metric.*\\['auc'\\]"):
        cross_validate(build_model, x, y, folds=2, fit_kwargs=FIT, metrics=["auc"])
