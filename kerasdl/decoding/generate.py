"""`generate_tokens`: greedy or beam search from a start token, never emitting padding."""

from keras import ops

from kerasdl.decoding.search import beam_search, greedy_search, tile_for_beams


def generate_tokens(
    next_token_fn,
    cache,
    source_tokens,
    start_token_id,
    end_token_id,
    max_length,
    beam_size,
    length_penalty_alpha,
):
    """Greedy (`beam_size=1`) or beam search from `start_token_id`.

    The decoding loop the translators (`Seq2SeqAttention`,
    `TransformerTranslator`) share: every sequence starts with `start_token_id`,
    padding (id 0) is never generated (it would leave a gap in the output), and
    the beam search tiles `cache` over the beams itself.

    Args:
        next_token_fn: callable `(tokens, cache, step) -> (scores, cache)`, as
            for `greedy_search`.
        cache: nest of tensors with leading axis `batch` (e.g. encoder outputs).
        source_tokens: the `(batch, ...)` source batch; only its batch size is
            read.
        start_token_id: int, the first token of every output.
        end_token_id: int, the token that ends a sequence.
        max_length: int, output length, start token included.
        beam_size: int, 1 for greedy search, more for beam search.
        length_penalty_alpha: float, GNMT length-penalty exponent for beam
            search (unused by greedy search).

    Returns:
        int32 `(batch, max_length)` tokens, the start token first.

    Example:

    >>> import numpy as np
    >>> from keras import ops
    >>> def next_token_fn(tokens, cache, step):  # always prefers token 0, then 2
    ...     return ops.tile(ops.array([[5.0, 0.0, 1.0, -1.0]]), (2, 1)), cache
    >>> tokens = generate_tokens(next_token_fn, {}, np.zeros((2, 7)), 1, 3, 4, 1, 0.6)
    >>> ops.convert_to_numpy(tokens).tolist()
    [[1, 2, 2, 2], [1, 2, 2, 2]]
    """
    batch = ops.shape(source_tokens)[0]
    start = ops.full((batch,), start_token_id, dtype="int32")
    step_fn = next_token_fn

    def next_token_fn(tokens, cache, step):
        scores, cache = step_fn(tokens, cache, step)
        not_padding = ops.not_equal(ops.arange(ops.shape(scores)[-1]), 0)
        return ops.where(not_padding, scores, -1e9), cache

    if beam_size == 1:
        tokens, _ = greedy_search(
            next_token_fn, start, max_length, end_token_id=end_token_id, cache=cache
        )
        return tokens
    tokens, _ = beam_search(
        next_token_fn,
        start,
        max_length,
        beam_size=beam_size,
        end_token_id=end_token_id,
        length_penalty_alpha=length_penalty_alpha,
        cache=tile_for_beams(cache, beam_size),
    )
    return tokens
