"""When a failed model call is tried again, and after how long.

The OpenAI SDK's own retries are switched off (`max_retries=0` on every shared client):
it would honour a Retry-After of up to a minute while the user watches a silent stream.
Here a call is retried only before it has produced any output, only for failures that a
second try can cure (429, 408, 409, 5xx, a refused or dropped connection; not a read timeout,
which already cost LLM_TIMEOUT), at most LLM_MAX_RETRIES times, after the upstream's
Retry-After when it is no longer than LLM_RETRY_AFTER_MAX, else after a short backoff.
A Retry-After beyond the bound is not waited for: the 429 goes to the client, with it.
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass

import openai

RETRYABLE_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
_MAX_BACKOFF = 4.0


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """The upstream's requested wait, from `retry-after-ms` or `retry-after` (secs or date);
    None when absent or meaningless (negative, not a number, infinite)."""
    if (milliseconds := headers.get("retry-after-ms")) is not None:
        return _seconds(milliseconds, scale=1000)
    value = headers.get("retry-after")
    if value is None:
        return None
    if (seconds := _seconds(value)) is not None:
        return seconds
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())


def _seconds(text: str, scale: float = 1) -> float | None:
    try:
        value = float(text) / scale
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def retry_after_header(headers: Mapping[str, str]) -> dict[str, str]:
    """The upstream's Retry-After as whole seconds for our client, or nothing if meaningless."""
    seconds = retry_after_seconds(headers)
    return {} if seconds is None else {"Retry-After": str(math.ceil(seconds))}


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_retries: int = 0
    max_retry_after: float = 10.0
    base_delay: float = 0.25

    def delay(self, error: BaseException, attempt: int) -> float | None:
        """Seconds to wait before retry number `attempt + 1`, or None not to retry."""
        if attempt >= self.max_retries:
            return None
        requested: float | None = None
        if isinstance(error, openai.APIStatusError):
            if error.status_code not in RETRYABLE_STATUSES:
                return None
            requested = retry_after_seconds(error.response.headers)
            if requested is not None and requested > self.max_retry_after:
                return None
        elif isinstance(error, openai.APITimeoutError) or not isinstance(
            error, openai.APIConnectionError
        ):
            return None
        backoff = min(self.base_delay * 2.0**attempt, _MAX_BACKOFF)
        # Never sooner than the backoff: "retry after 0" must not become a burst of retries.
        return backoff if requested is None else max(requested, backoff)
