"""Waiting between retries."""

import random


class Backoff:
    """Exponential backoff with full jitter: 0.2 s, 0.4 s ... capped, each drawn from [d/2, d]."""

    def __init__(self, base: float = 0.2, cap: float = 10.0):
        self.base, self.cap, self.failures = base, cap, 0

    def next(self) -> float:
        delay = min(self.cap, self.base * 2**self.failures)
        self.failures += 1
        return random.uniform(delay / 2, delay)

    def reset(self) -> None:
        self.failures = 0
