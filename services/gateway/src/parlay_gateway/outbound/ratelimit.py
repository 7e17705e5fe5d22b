"""Token-bucket arithmetic (pure) and the retry schedule.

A channel account's bucket holds up to `burst` tokens and gains `rate` per second; a send takes
one. The bucket's state lives in Postgres (outbound_rate_buckets) and is updated in the claim
transaction, so every sender replica draws from the same bucket.
"""

from __future__ import annotations

import random


def refill(tokens: float, elapsed_seconds: float, rate: float, burst: float) -> float:
    return min(burst, tokens + max(0.0, elapsed_seconds) * rate)


def seconds_until(tokens: float, rate: float, need: float = 1.0) -> float:
    """How long until the bucket holds `need` tokens."""
    if tokens >= need:
        return 0.0
    return (need - tokens) / rate


def backoff_seconds(
    attempt: int,
    *,
    base: float,
    cap: float,
    retry_after: float | None = None,
    jitter: float = 0.2,
    rng: random.Random | None = None,
) -> float:
    """Delay before attempt `attempt + 1`: base * 2^(attempt-1) (capped, +-jitter), but never
    shorter than the provider's Retry-After."""
    exponential = min(cap, base * (2 ** max(0, attempt - 1)))
    r = rng or random
    exponential *= 1.0 + jitter * (2 * r.random() - 1)
    if retry_after is not None:
        return max(retry_after, 0.0) if retry_after > 0 else exponential
    return max(0.0, exponential)
