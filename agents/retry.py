"""The one retry policy for model calls: exponential backoff with full jitter.

Providers only classify failures (`TransientModelError` or not); this module decides when to
try again, so every vendor is retried the same way.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TypeVar

from agents.errors import TransientModelError

T = TypeVar("T")

RetryHook = Callable[[int, TransientModelError, float], Awaitable[None]]


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 4
    base_delay: float = 0.5  # seconds before the second attempt (without jitter)
    max_delay: float = 8.0
    jitter: bool = True
    # A server that asks for a longer pause than this is not waited for: the error is raised
    # at once, so a task fails in seconds instead of holding its slot for minutes.
    max_retry_after: float = 60.0

    def delay(self, attempt: int, error: TransientModelError) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        backoff = random.uniform(0, ceiling) if self.jitter else ceiling
        return max(backoff, error.retry_after or 0.0)


async def call_with_retries(
    fn: Callable[[], Awaitable[T]],
    *,
    policy: RetryPolicy,
    on_retry: RetryHook | None = None,
) -> T:
    """Await `fn()`, calling it again after each `TransientModelError` until attempts run out.

    `on_retry(attempt, error, delay)` is awaited before each pause; `attempt` is the 1-based
    number of the attempt that failed and `delay` the seconds about to be waited.
    """
    attempt = 1
    while True:
        try:
            return await fn()
        except TransientModelError as error:
            if attempt >= policy.max_attempts:
                raise
            if error.retry_after is not None and error.retry_after > policy.max_retry_after:
                raise
            delay = policy.delay(attempt, error)
            if on_retry is not None:
                await on_retry(attempt, error, delay)
            await asyncio.sleep(delay)
            attempt += 1


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from `retry-after-ms` or `retry-after` (seconds or an HTTP date), if usable."""
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
