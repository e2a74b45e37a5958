"""Random sampling decoding: temperature, top-k and top-p (nucleus) sampling.

`sample_next` draws one token per row from a `(batch, vocabulary_size)` block
of logits; `sample` is the decoding loop around it, with the same
`next_token_fn(tokens, cache, step) -> (scores, cache)` convention, buffer and
padding-after-end behaviour as `greedy_search` (see `kerasdl.decoding.search`).

Both use `keras.ops` only and static shapes, so they run eagerly, inside
`tf.function` and under `jax.jit`. Randomness is seeded: an int seed (or a
`keras.random.SeedGenerator` in a fresh state) gives the same tokens every
time. The uniform numbers are drawn with `keras.random.uniform` (for `sample`,
all `max_length` steps at once, before the loop, so the loop body itself is
stateless) and turned into tokens by inverse-CDF lookup.

Under `jax.jit` pass an int seed: a `SeedGenerator` updates its state, which
JAX only allows inside a `keras.StatelessScope`.
"""

import math

import keras
from keras import ops

from kerasdl.decoding.search import _initial_buffer, _validate, token_by_token


def _softmax(logits):
    # ops.softmax warns on a size-1 axis, which top_k=1 makes on purpose.
    exp = ops.exp(logits - ops.max(logits, axis=-1, keepdims=True))
    return exp / ops.sum(exp, axis=-1, keepdims=True)


def _validate_sampling(temperature, top_k, top_p):
    if (
        isinstance(temperature, bool)
        or not isinstance(temperature, (int, float))
        or not math.isfinite(temperature)
        or temperature <= 0
    ):
        raise ValueError(
            "`temperature` must be a finite number > 0 (for temperature -> 0, "
            "use `greedy_search`, or `top_k=1`). "
            f"Received: temperature={temperature!r}"
        )
    if top_k is not None and (
        isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1
    ):
        raise ValueError(
            f"`top_k` must be None or an int >= 1. Received: top_k={top_k!r}"
        )
    if top_p is not None and (
        isinstance(top_p, bool)
        or not isinstance(top_p, (int, float))
        or not 0.0 < top_p <= 1.0
    ):
        raise ValueError(
            f"`top_p` must be None or a number in (0, 1]. Received: top_p={top_p!r}"
        )


def _candidates(logits, temperature, top_k, top_p):
    """Tempered, filtered logits and the token ids they stand for.

    Returns `(logits, token_ids)`: without filtering, the tempered
    `(batch, vocab)` logits and `None` (position = token id); with top-k or
    top-p, `(batch, n)` logits sorted in descending order, removed tokens at
    `-inf`, and their `(batch, n)` token ids.
    """
    logits = ops.cast(logits, "float32") / float(temperature)
    vocab = logits.shape[-1]
    if vocab is None:
        raise ValueError(
            "The vocabulary size (last axis of the logits) must be known. "
            f"Received: shape={logits.shape}"
        )
    use_top_p = top_p is not None and top_p < 1.0
    if top_k is None and not use_top_p:
        return logits, None

    # top-k: the k largest logits, sorted (top-p alone sorts all of them).
    k = vocab if top_k is None else min(top_k, vocab)
    logits, token_ids = ops.top_k(logits, k)  # (batch, k), descending
    if use_top_p:
        # Keep token i iff the tokens before it hold less than top_p of the
        # (top-k renormalized) probability: the smallest set reaching top_p,
        # always including the most likely token.
        probs = _softmax(logits)
        mass_before = ops.cumsum(probs, axis=-1) - probs
        logits = ops.where(ops.less(mass_before, top_p), logits, float("-inf"))
    return logits, token_ids


def _draw(logits, token_ids, uniform):
    """Inverse-CDF sampling: one token per row, for `uniform` in [0, 1)."""
    probs = _softmax(logits)  # (batch, n); removed tokens exactly 0
    cdf = ops.cumsum(probs, axis=-1)
    threshold = ops.expand_dims(uniform, -1) * cdf[:, -1:]
    # The first position whose cdf exceeds the threshold: its cdf is above the
    # previous one (<= threshold), so it has probability > 0 and removed or
    # impossible tokens never come, even for uniform == 0.
    position = ops.sum(ops.cast(ops.less_equal(cdf, threshold), "int32"), axis=-1)
    # Rounding can push the threshold past the last cdf: clip to the last
    # token with probability > 0.
    positions = ops.arange(probs.shape[-1], dtype="int32")
    last_positive = ops.max(ops.where(ops.greater(probs, 0.0), positions, 0), axis=-1)
    position = ops.minimum(position, last_positive)  # (batch,)
    if token_ids is None:
        return position
    return ops.cast(
        ops.take_along_axis(token_ids, ops.expand_dims(position, -1), axis=-1)[:, 0],
        "int32",
    )


def sample_next(logits, *, temperature=1.0, top_k=None, top_p=None, seed=None):
    """Draws one token per row from `softmax(logits / temperature)`.

    Filters are applied in this order: divide by `temperature`; keep the
    `top_k` largest logits; of those, keep the smallest set of most likely
    tokens whose (renormalized) probability reaches `top_p`, which always
    includes the most likely token; then sample from what is left,
    renormalized. `top_k=1` is greedy (argmax) decoding.

    Args:
        logits: float `(batch, vocabulary_size)` logits or log-probabilities;
            the vocabulary size must be static.
        temperature: float > 0; below 1 sharpens, above 1 flattens the
            distribution. Defaults to `1.0`.
        top_k: optional int >= 1, number of most likely tokens to keep (more
            than the vocabulary keeps all). Defaults to `None` (all).
        top_p: optional float in (0, 1], nucleus probability mass. Defaults
            to `None` (no nucleus filter, same as `1.0`).
        seed: int, `keras.random.SeedGenerator` or `None`. The same int seed
            gives the same tokens; `None` uses Keras' global generator (not
            reproducible, and not allowed under `jax.jit`). Defaults to `None`.

    Returns:
        int32 `(batch,)` token ids.

    Example:

    >>> from keras import ops
    >>> logits = ops.convert_to_tensor([[2.0, 1.0, 0.5, -1.0]])
    >>> ops.convert_to_numpy(sample_next(logits, top_k=1, seed=0)).tolist()
    [0]

    Reference:
        - [Holtzman et al., 2020](https://arxiv.org/abs/1904.09751) (top-p).
    """
    _validate_sampling(temperature, top_k, top_p)
    logits = ops.convert_to_tensor(logits)
    if len(logits.shape) != 2:
        raise ValueError(
            "`logits` must have shape (batch, vocabulary_size). "
            f"Received: shape={logits.shape}"
        )
    candidates, token_ids = _candidates(logits, temperature, top_k, top_p)
    uniform = keras.random.uniform((ops.shape(logits)[0],), seed=seed)
    return _draw(candidates, token_ids, uniform)


def sample(
    next_token_fn,
    start_tokens,
    max_length,
    end_token_id=None,
    pad_token_id=0,
    cache=None,
    *,
    temperature=1.0,
    top_k=None,
    top_p=None,
    seed=None,
):
    """Sampling decoding: at every step draw the next token with `sample_next`.

    The loop of `greedy_search` with a random draw in place of the argmax:
    one `keras.ops.while_loop` over a `max_length` buffer, stopping when every
    sequence has produced `end_token_id`; after a sequence's end token the
    remaining positions are `pad_token_id` and add nothing to its
    log-probability. With `top_k=1` it returns exactly what `greedy_search`
    returns.

    Args:
        next_token_fn: callable `(tokens, cache, step) -> (scores, cache)`,
            see `kerasdl.decoding.search`.
        start_tokens: int `(batch,)` start tokens (e.g. BOS), or
            `(batch, prompt_length)` prompts, all of the same length.
        max_length: int, length of the output buffer, prompt included.
        end_token_id: optional int, the token that ends a sequence. Defaults
            to `None` (always decode to `max_length`).
        pad_token_id: int, filler for positions not generated. Defaults to `0`.
        cache: optional nest of tensors with leading axis `batch`, passed to
            and returned by `next_token_fn`. Defaults to `None` (`{}`).
        temperature: float > 0. Defaults to `1.0`.
        top_k: optional int >= 1. Defaults to `None` (all tokens).
        top_p: optional float in (0, 1]. Defaults to `None` (no nucleus).
        seed: int, `keras.random.SeedGenerator` or `None`; drawn once for the
            whole loop. Pass an int under `jax.jit`. Defaults to `None`.

    Returns:
        `(tokens, log_probs)`: int32 `(batch, max_length)` and float32
        `(batch,)`, the summed log-probability of the generated tokens under
        the model (`log_softmax(scores)`, before temperature and filters).

    Example:

    ```python
    tokens, log_probs = sample(next_token_fn, bos, max_length=32,
                               end_token_id=eos, top_p=0.9, seed=1337)
    ```
    """
    _validate_sampling(temperature, top_k, top_p)
    start_tokens, prompt_length = _validate(
        max_length, start_tokens, end_token_id, pad_token_id
    )
    tokens = _initial_buffer(start_tokens, max_length, pad_token_id)
    batch = ops.shape(tokens)[0]
    cache = {} if cache is None else cache
    # All the randomness up front: one uniform number per step and row.
    uniforms = keras.random.uniform((max_length, batch), seed=seed)

    def draw(scores, log_probs, step):
        candidates, token_ids = _candidates(scores, temperature, top_k, top_p)
        next_token = _draw(candidates, token_ids, ops.take(uniforms, step, axis=0))
        chosen = ops.take_along_axis(
            log_probs, ops.expand_dims(next_token, -1), axis=-1
        )[:, 0]
        return next_token, chosen

    return token_by_token(
        next_token_fn,
        tokens,
        cache,
        prompt_length,
        max_length,
        draw,
        pad_token_id,
        end_token_id,
    )
