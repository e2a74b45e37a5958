"""Ensembles of trained classifiers as one Functional model (averaged or voted).

A vote uses `kerasdl.layers.MajorityVote` (registered by `import kerasdl`).
"""

import keras

from kerasdl.layers.merging import MajorityVote

METHODS = ("average", "vote")
# Top-level layer names of the ensemble that a member may not take.
RESERVED_NAMES = ("images", "probabilities")


def ensemble(models, method="average", name="ensemble"):
    """Combines trained classifiers into one Functional model on their shared input.

    The ensemble feeds one `Input` (named `"images"`, with the members' input shape
    and dtype) to every member and combines their `(batch, num_classes)` outputs:

    - `"average"`: the mean of the members' probabilities (`keras.layers.Average`),
      so the output is `(p_1 + ... + p_n) / n`: bit for bit on TensorFlow; on
      JAX, XLA multiplies by `1 / n` instead of dividing (within 1 ulp).
    - `"vote"`: each member votes for its argmax class; the output is the fraction
      of votes per class (`MajorityVote`), whose argmax is the majority class. Ties
      for the most votes go to the lowest class index (the argmax of the vote
      fractions; `kerasdl.export`'s `class_id` is that argmax too).

    The output layer is named `"probabilities"` and computes in float32. The
    members are called, not copied: the ensemble shares their weights, so
    training it trains them, and `.keras` saving, `kerasdl.export.export_saved_model`
    and serving treat it as one model; `import kerasdl` is all a `.keras` file
    of either kind needs to reload.

    Args:
        models: a non-empty sequence of Keras models, each with one input and one
            `(batch, num_classes)` output; all with the same input shape, input
            dtype and number of classes, and with distinct names (build them with
            e.g. `name=f"lenet_{i}"`). The same model object may appear more than
            once (it then counts once per appearance).
        method: `"average"` or `"vote"`. Defaults to `"average"`.
        name: the ensemble model's name. Defaults to `"ensemble"`.

    Returns:
        A Functional `keras.Model` mapping the shared input to `(batch, num_classes)`
        float32 scores.

    Raises:
        ValueError: empty `models`, an unknown `method`, a member with more than
            one input or output, members whose input shapes, input dtypes or
            numbers of classes differ, or two different members with the same name.
        TypeError: a member that is not a `keras.Model`.

    Example:

    ```python
    members = [
        kerasdl.models.lenet((28, 28, 1), 10, name=f"lenet_{i}")
        for i in range(3)
    ]
    model = kerasdl.models.ensemble(members, method="vote")
    ```
    """
    if method not in METHODS:
        raise ValueError(
            f"`method` must be one of {METHODS}. Received: method={method!r}"
        )
    members = list(models) if models is not None else []
    if not members:
        raise ValueError(
            f"`models` must hold at least one model. Received: models={models!r}"
        )
    _check_members(members)

    # Shared input.
    reference = members[0]
    inputs = keras.Input(
        reference.inputs[0].shape[1:], dtype=reference.inputs[0].dtype, name="images"
    )

    # Members, then the combination.
    member_outputs = [member(inputs) for member in members]  # n x (B, classes)
    if method == "average":
        combine = keras.layers.Average(dtype="float32", name="probabilities")
    else:
        combine = MajorityVote(dtype="float32", name="probabilities")
    # float32 layers cast float16 member outputs (mixed precision) themselves.
    outputs = combine(member_outputs)  # (B, classes)
    return keras.Model(inputs, outputs, name=name)


def _check_members(members):
    for index, member in enumerate(members):
        if not isinstance(member, keras.Model):
            raise TypeError(
                f"Every member must be a keras.Model. Received: models[{index}] of "
                f"type {type(member).__name__}"
            )
        inputs = getattr(member, "inputs", None) or []
        outputs = getattr(member, "outputs", None) or []
        if len(inputs) != 1 or len(outputs) != 1 or len(outputs[0].shape) != 2:
            raise ValueError(
                "Every member must be a built model with one input and one "
                f"(batch, num_classes) output. Received: models[{index}] "
                f"({member.name!r}) with {len(inputs)} input(s) and outputs of shapes "
                f"{[tuple(o.shape) for o in outputs]}"
            )

    checks = (
        ("input shapes", lambda m: tuple(m.inputs[0].shape[1:])),
        ("input dtypes", lambda m: str(m.inputs[0].dtype)),
        ("numbers of classes", lambda m: m.outputs[0].shape[-1]),
    )
    for attribute, value_of in checks:
        if len({value_of(m) for m in members}) > 1:
            raise ValueError(
                f"Ensemble members must have equal {attribute}. Received: "
                + ", ".join(f"{m.name!r}: {value_of(m)}" for m in members)
            )

    distinct = list({id(m): m for m in members}.values())
    names = [m.name for m in distinct]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    reserved = sorted(set(names) & set(RESERVED_NAMES))
    if duplicates or reserved:
        raise ValueError(
            "Ensemble members need distinct names other than "
            f"{RESERVED_NAMES} (build them with e.g. `name=f'lenet_{{i}}'`). "
            f"Received names: {[m.name for m in members]}"
        )
