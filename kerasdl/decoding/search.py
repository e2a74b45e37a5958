"""Greedy and beam search over a `next_token_fn` callback, as graph loops.

Both searches run as one `keras.ops.while_loop`, so they work eagerly, inside
`tf.function` (and a SavedModel exported from it) and under `jax.jit`, with
static shapes: the token buffer is always `max_length` long and positions not
generated yet hold `pad_token_id`.

The model is reached through one callback,

    next_token_fn(tokens, cache, step) -> (scores, cache)

* `tokens`: int32 `(rows, max_length)`; `tokens[:, :step]` are known (the
  prompt and the tokens generated so far), the rest are `pad_token_id`.
  `rows` is `batch` for greedy search and `batch * beam_size` for beam search.
* `cache`: whatever nest of tensors the caller passed in (encoder outputs,
  RNN states, a key/value cache, or `{}`), each with `rows` as its leading
  axis. Return it updated (same shapes and dtypes). Beam search reorders its
  rows when beams are re-ranked; tile its initial value with
  `tile_for_beams(x, beam_size)`.
* `step`: int32 scalar, the position being generated.
* `scores`: `(rows, vocabulary_size)` logits or log-probabilities of the
  token at `step`. Both work: the searches apply `log_softmax`, which leaves
  log-probabilities unchanged.

A Transformer decoder can ignore `cache` except for the encoder output and
read its logits at position `step - 1` (recomputing the prefix each step); an
RNN decoder feeds `tokens[:, step - 1]` and keeps its state in `cache`.
"""

import math

import keras
from keras import ops

NEG_INF = -1e9  # finite "minus infinity": keeps sums and divisions NaN-free


def tile_for_beams(x, beam_size):
    """Repeats every batch row `beam_size` times, for a beam search cache.

    Works on a tensor or any nest of tensors (e.g. a dict of encoder outputs
    and states): `(batch, ...) -> (batch * beam_size, ...)`, rows of the same
    example next to each other, which is the layout `beam_search` hands to
    `next_token_fn`.

    Example:

    ```python
    cache = {"encoder_outputs": tile_for_beams(encoder_outputs, 4)}
    tokens, log_probs = beam_search(fn, start_tokens, max_length=20,
                                    beam_size=4, cache=cache)
    ```
    """
    return keras.tree.map_structure(lambda t: ops.repeat(t, beam_size, axis=0), x)


def length_penalty(lengths, alpha, kind="gnmt"):
    """Length normalizer `lp(length)` that beam scores are divided by.

    `kind="gnmt"`: `((5 + length) / 6) ** alpha` (Wu et al., 2016);
    `kind="simple"`: `length ** alpha`. `alpha = 0` disables it (lp = 1);
    larger `alpha` favours longer outputs.
    """
    lengths = ops.cast(ops.maximum(lengths, 1), "float32")
    if kind == "gnmt":
        return ops.power((5.0 + lengths) / 6.0, alpha)
    return ops.power(lengths, alpha)


def _validate(max_length, start_tokens, end_token_id, pad_token_id):
    if not isinstance(max_length, int) or max_length < 1:
        raise ValueError(
            f"`max_length` must be a positive int. Received: max_length={max_length!r}"
        )
    if end_token_id is not None and end_token_id == pad_token_id:
        raise ValueError(
            "`end_token_id` and `pad_token_id` must differ. Received: "
            f"end_token_id={end_token_id}, pad_token_id={pad_token_id}"
        )
    start_tokens = ops.cast(ops.convert_to_tensor(start_tokens), "int32")
    if len(start_tokens.shape) == 1:
        start_tokens = ops.expand_dims(start_tokens, 1)
    if len(start_tokens.shape) != 2:
        raise ValueError(
            "`start_tokens` must have shape (batch,) or (batch, prompt_length). "
            f"Received: shape={start_tokens.shape}"
        )
    prompt_length = start_tokens.shape[1]
    if prompt_length is None or prompt_length >= max_length:
        raise ValueError(
            "The prompt length must be known and shorter than `max_length`. "
            f"Received: prompt_length={prompt_length}, max_length={max_length}"
        )
    return start_tokens, prompt_length


def _initial_buffer(start_tokens, max_length, pad_token_id):
    batch = ops.shape(start_tokens)[0]
    padding = ops.full(
        (batch, max_length - start_tokens.shape[1]), pad_token_id, dtype="int32"
    )
    return ops.concatenate([start_tokens, padding], axis=1)  # (batch, max_length)


def _write_column(tokens, column, step):
    """`tokens[..., step] = column` without a Python-int index (graph-safe)."""
    at_step = ops.equal(ops.arange(tokens.shape[-1], dtype="int32"), step)
    return ops.where(at_step, ops.expand_dims(column, -1), tokens)


def _log_probs(scores):
    return ops.log_softmax(ops.cast(scores, "float32"), axis=-1)


def token_by_token(
    next_token_fn,
    tokens,
    cache,
    prompt_length,
    max_length,
    choose,
    pad_token_id,
    end_token_id,
):
    """The loop greedy search and sampling share: one token per row and step.

    `choose(scores, log_probs, step) -> (next_token, its log-probability)`, both
    `(batch,)`. Rows that produced `end_token_id` get `pad_token_id` from then on
    and stop adding to their total; the loop ends at `max_length` or when every
    row has ended. Returns `(tokens, total log-probability)`.
    """
    batch = ops.shape(tokens)[0]

    def cond(step, tokens, cache, finished, total):
        return ops.logical_and(
            ops.less(step, max_length), ops.logical_not(ops.all(finished))
        )

    def body(step, tokens, cache, finished, total):
        scores, cache = next_token_fn(tokens, cache, step)
        next_token, chosen = choose(scores, _log_probs(scores), step)
        next_token = ops.where(finished, pad_token_id, next_token)
        total = total + ops.where(finished, 0.0, chosen)
        if end_token_id is not None:
            finished = ops.logical_or(finished, ops.equal(next_token, end_token_id))
        tokens = _write_column(tokens, next_token, step)
        return step + 1, tokens, cache, finished, total

    _, tokens, _, _, total = ops.while_loop(
        cond,
        body,
        (
            ops.convert_to_tensor(prompt_length, "int32"),
            tokens,
            cache,
            ops.zeros((batch,), "bool"),
            ops.zeros((batch,), "float32"),
        ),
    )
    return tokens, total


def greedy_search(
    next_token_fn,
    start_tokens,
    max_length,
    end_token_id=None,
    pad_token_id=0,
    cache=None,
):
    """Greedy decoding: at every step take the most probable next token.

    Stops when every sequence has produced `end_token_id` or the buffer is
    full. After a sequence's end token the remaining positions are
    `pad_token_id` and add nothing to its log-probability.

    Args:
        next_token_fn: callable `(tokens, cache, step) -> (scores, cache)`,
            see the module docstring.
        start_tokens: int `(batch,)` start tokens (e.g. BOS), or
            `(batch, prompt_length)` prompts, all of the same length.
        max_length: int, length of the output buffer, prompt included.
        end_token_id: optional int, the token that ends a sequence. Defaults
            to `None` (always decode to `max_length`).
        pad_token_id: int, filler for positions not generated. Defaults to `0`.
        cache: optional nest of tensors with leading axis `batch`, passed to
            and returned by `next_token_fn`. Defaults to `None` (`{}`).

    Returns:
        `(tokens, log_probs)`: int32 `(batch, max_length)` and float32
        `(batch,)`, the summed log-probability of the generated tokens.
    """
    start_tokens, prompt_length = _validate(
        max_length, start_tokens, end_token_id, pad_token_id
    )
    tokens = _initial_buffer(start_tokens, max_length, pad_token_id)
    cache = {} if cache is None else cache

    def most_likely(scores, log_probs, step):
        next_token = ops.cast(ops.argmax(log_probs, axis=-1), "int32")
        return next_token, ops.max(log_probs, axis=-1)

    return token_by_token(
        next_token_fn,
        tokens,
        cache,
        prompt_length,
        max_length,
        most_likely,
        pad_token_id,
        end_token_id,
    )


def beam_search(
    next_token_fn,
    start_tokens,
    max_length,
    beam_size=4,
    end_token_id=None,
    pad_token_id=0,
    length_penalty_alpha=0.0,
    length_penalty_type="gnmt",
    cache=None,
    return_all_beams=False,
):
    """Beam search: keep the `beam_size` best partial sequences at every step.

    Every step expands each of the `beam_size` beams by every vocabulary token
    and keeps the `beam_size` best of the `beam_size * vocabulary_size`
    candidates. A beam that has produced `end_token_id` is finished: it stays a
    candidate (extended only by `pad_token_id`, at no cost) and competes with
    the open beams until the end, so a short, probable sequence is not lost.

    Candidates are ranked by `log_prob / lp(length)` where `length` counts the
    generated tokens (end token included, prompt excluded) and `lp` is
    `length_penalty(length, length_penalty_alpha, length_penalty_type)`:
    GNMT's `((5 + length) / 6) ** alpha` or `length ** alpha`. With `alpha = 0`
    (the default) this is the plain summed log-probability, which favours
    short outputs; GNMT used `alpha` in `[0.6, 0.7]` for translation.

    `beam_size=1` is greedy search. Beam search is a heuristic: a wide enough
    beam finds the most probable sequence, but a narrow one can, on some
    distributions, end below the greedy sequence (a beam that looks better
    early can fall behind later).

    Args:
        next_token_fn: callable `(tokens, cache, step) -> (scores, cache)` with
            `batch * beam_size` rows, see the module docstring.
        start_tokens: int `(batch,)` or `(batch, prompt_length)`.
        max_length: int, length of the output buffer, prompt included.
        beam_size: int, number of beams. Defaults to `4`.
        end_token_id: optional int. Defaults to `None`.
        pad_token_id: int. Defaults to `0`.
        length_penalty_alpha: float `alpha` of the length penalty. Defaults
            to `0.0` (none).
        length_penalty_type: `"gnmt"` or `"simple"`. Defaults to `"gnmt"`.
        cache: optional nest of tensors with leading axis `batch * beam_size`
            (build it with `tile_for_beams`). Defaults to `None` (`{}`).
        return_all_beams: bool. Defaults to `False`.

    Returns:
        `(tokens, log_probs)`. With `return_all_beams=False`: int32
        `(batch, max_length)` and float32 `(batch,)`, the best sequence and
        its summed log-probability. With `True`: `(batch, beam_size,
        max_length)` and `(batch, beam_size)`, best first.

    Reference:
        - [Wu et al., 2016](https://arxiv.org/abs/1609.08144), section 7
          (length penalty).
    """
    if not isinstance(beam_size, int) or beam_size < 1:
        raise ValueError(
            f"`beam_size` must be a positive int. Received: beam_size={beam_size!r}"
        )
    if length_penalty_type not in ("gnmt", "simple"):
        raise ValueError(
            '`length_penalty_type` must be "gnmt" or "simple". '
            f"Received: length_penalty_type={length_penalty_type!r}"
        )
    if not isinstance(length_penalty_alpha, (int, float)) or math.isnan(
        length_penalty_alpha
    ):
        raise ValueError(
            "`length_penalty_alpha` must be a number. "
            f"Received: length_penalty_alpha={length_penalty_alpha!r}"
        )
    start_tokens, prompt_length = _validate(
        max_length, start_tokens, end_token_id, pad_token_id
    )
    k = beam_size
    tokens = _initial_buffer(start_tokens, max_length, pad_token_id)
    batch = ops.shape(tokens)[0]
    tokens = ops.repeat(ops.expand_dims(tokens, 1), k, axis=1)  # (B, K, L)
    cache = {} if cache is None else cache
    alpha = float(length_penalty_alpha)

    def normalized(log_probs, lengths):
        if alpha == 0.0:
            return log_probs
        return log_probs / length_penalty(lengths, alpha, length_penalty_type)

    def cond(step, tokens, cache, beam_log_probs, finished, lengths):
        return ops.logical_and(
            ops.less(step, max_length), ops.logical_not(ops.all(finished))
        )

    def body(step, tokens, cache, beam_log_probs, finished, lengths):
        flat_tokens = ops.reshape(tokens, (-1, max_length))  # (B*K, L)
        scores, cache = next_token_fn(flat_tokens, cache, step)
        log_probs = _log_probs(scores)
        vocab = log_probs.shape[-1]
        log_probs = ops.reshape(log_probs, (-1, k, vocab))  # (B, K, V)

        # A finished beam has one continuation, pad, at no cost.
        is_pad = ops.equal(ops.arange(vocab, dtype="int32"), pad_token_id)
        finished_row = ops.where(is_pad, 0.0, NEG_INF)  # (V,)
        log_probs = ops.where(ops.expand_dims(finished, -1), finished_row, log_probs)

        # Score every (beam, token) candidate; rank by the normalized score.
        candidates = ops.expand_dims(beam_log_probs, -1) + log_probs  # (B, K, V)
        candidate_lengths = lengths + ops.cast(ops.logical_not(finished), "int32")
        ranking = normalized(candidates, ops.expand_dims(candidate_lengths, -1))
        _, best = ops.top_k(ops.reshape(ranking, (-1, k * vocab)), k)  # (B, K)
        parent = best // vocab  # (B, K), index of the beam that is extended
        next_token = ops.cast(best % vocab, "int32")

        # Reorder the beams, then write the chosen tokens.
        beam_log_probs = ops.take_along_axis(
            ops.reshape(candidates, (-1, k * vocab)), best, axis=1
        )
        parent_finished = ops.take_along_axis(finished, parent, axis=1)
        lengths = ops.take_along_axis(candidate_lengths, parent, axis=1)
        tokens = ops.take_along_axis(tokens, ops.expand_dims(parent, -1), axis=1)
        tokens = _write_column(tokens, next_token, step)
        finished = parent_finished
        if end_token_id is not None:
            finished = ops.logical_or(finished, ops.equal(next_token, end_token_id))
        rows = ops.reshape(
            ops.expand_dims(ops.arange(batch, dtype=parent.dtype) * k, -1) + parent,
            (-1,),
        )  # (B*K,) cache rows of the parents
        cache = keras.tree.map_structure(lambda t: ops.take(t, rows, axis=0), cache)
        return step + 1, tokens, cache, beam_log_probs, finished, lengths

    initial_log_probs = ops.where(
        ops.equal(ops.arange(k), 0), 0.0, NEG_INF
    )  # only beam 0 is alive at first: the beams start identical
    initial_log_probs = ops.broadcast_to(
        ops.cast(initial_log_probs, "float32"), (batch, k)
    )
    _, tokens, _, beam_log_probs, _, lengths = ops.while_loop(
        cond,
        body,
        (
            ops.convert_to_tensor(prompt_length, "int32"),
            tokens,
            cache,
            initial_log_probs,
            ops.zeros((batch, k), "bool"),
            ops.zeros((batch, k), "int32"),
        ),
    )

    # Final ranking by the length-normalized score.
    _, order = ops.top_k(normalized(beam_log_probs, lengths), k)
    tokens = ops.take_along_axis(tokens, ops.expand_dims(order, -1), axis=1)
    beam_log_probs = ops.take_along_axis(beam_log_probs, order, axis=1)
    if return_all_beams:
        return tokens, beam_log_probs
    return tokens[:, 0], beam_log_probs[:, 0]
