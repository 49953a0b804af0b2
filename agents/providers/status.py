"""What a model server's failure means, whichever SDK reported it: worth retrying or not,
in words a person can act on.

Both SDK wrappers sort their own exception classes first (a stream that broke off, a quota
code), then hand what is left here, so a timeout, a 429 or a 401 reads alike for every vendor.
"""

from __future__ import annotations

from agents.errors import Failure, ModelError, PermanentModelError, TransientModelError


def timed_out(label: str, model: str) -> TransientModelError:
    return TransientModelError(
        f"{label} did not answer in time", failure=Failure.TIMEOUT, provider=label, model=model
    )


def unreachable(label: str, model: str, why: str) -> TransientModelError:
    return TransientModelError(
        f"could not reach {label}: {why}", failure=Failure.UNREACHABLE, provider=label, model=model
    )


def from_status(
    status: int, *, label: str, model: str, detail: str, retry_after: float | None
) -> ModelError:
    """An HTTP error status from the model server, with the server's own words (`detail`)."""
    shown = f" ({status}){': ' + detail if detail else ''}"
    if status == 429:
        return TransientModelError(
            f"{label} is rate limiting requests{shown}",
            retry_after=retry_after,
            failure=Failure.RATE_LIMITED,
            provider=label,
            model=model,
            status=status,
        )
    if status == 529:  # Anthropic's "overloaded"
        return TransientModelError(
            f"{label} is overloaded{shown}", provider=label, model=model, status=status
        )
    if status >= 500 or status in (408, 409):
        return TransientModelError(
            f"{label} had a temporary problem{shown}", provider=label, model=model, status=status
        )
    reason, failure = _PERMANENT.get(status, ("refused the request", Failure.REFUSED_REQUEST))
    return PermanentModelError(
        f"{label} {reason}{shown}", failure=failure, provider=label, model=model, status=status
    )


_PERMANENT = {
    400: ("rejected the request", Failure.REFUSED_REQUEST),
    401: ("rejected the API key", Failure.BAD_KEY),
    402: ("wants a payment on the account", Failure.NO_CREDIT),
    403: ("refused access to this model or feature", Failure.FORBIDDEN),
    404: ("does not know this model or endpoint", Failure.UNKNOWN_MODEL),
    413: ("found the request too large", Failure.TOO_LARGE),
    422: ("could not process the request", Failure.REFUSED_REQUEST),
}
