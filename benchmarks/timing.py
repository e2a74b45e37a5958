"""Alternating timer shared by the benchmark scripts (standard library only)."""

import statistics
import time


def time_alternating(fns, iters, repeats):
    """Median seconds per call of each fn, timing them in turn each repeat."""
    for fn in fns:  # warm up / compile
        fn()
        fn()
    samples = [[] for _ in fns]
    for repeat in range(repeats):
        # Rotate who goes first, so no side always runs right after another
        # (PyTorch's OpenMP threads keep spinning for a while after a call).
        for i in [(repeat + k) % len(fns) for k in range(len(fns))]:
            fn = fns[i]
            start = time.perf_counter()
            for _ in range(iters):
                fn()
            samples[i].append((time.perf_counter() - start) / iters)
    return [statistics.median(s) for s in samples]
