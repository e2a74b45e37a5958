"""`MajorityVote`: the fraction of inputs voting for each class."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kerasdl")
class MajorityVote(keras.layers.Layer):
    """Averages one-hot votes: the fraction of members that predict each class.

    Each input is a member's `(batch, num_classes)` class scores; the member votes
    for its argmax (the lowest class index among equal maxima). The output is the
    mean of the one-hot votes, `(batch, num_classes)` in the layer's compute
    dtype (float32 by default), so every row sums to 1 and its argmax is the
    majority class. When classes tie for the most votes, the argmax (Keras' and
    NumPy's) is the lowest tied class index.

    Call arguments:
        inputs: a list of tensors of equal shape `(batch, num_classes)`.

    Example:

    ```python
    a = np.array([[0.7, 0.2, 0.1]], "float32")
    b = np.array([[0.1, 0.6, 0.3]], "float32")
    c = np.array([[0.5, 0.4, 0.1]], "float32")
    MajorityVote()([a, b, c])  # [[2/3, 1/3, 0]]
    ```
    """

    def call(self, inputs):
        inputs = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        num_classes = inputs[0].shape[-1]
        # The same order of operations as `keras.layers.Average`: sum, then divide.
        votes = None
        for scores in inputs:
            vote = ops.one_hot(
                ops.argmax(scores, axis=-1), num_classes, dtype=self.compute_dtype
            )  # (batch, num_classes)
            votes = vote if votes is None else ops.add(votes, vote)
        return ops.divide(votes, ops.cast(len(inputs), self.compute_dtype))

    def compute_output_shape(self, input_shape):
        if (
            isinstance(input_shape, list)
            and input_shape
            and isinstance(input_shape[0], (list, tuple))
        ):
            return tuple(input_shape[0])
        return tuple(input_shape)
