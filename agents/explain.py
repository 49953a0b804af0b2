"""Model failures in words: one sentence for people, the whole story for the log.

This is the one place a `ModelError` becomes text a person reads. The sentence names the
provider and says what to do; the server's own words (tracebacks, paths, validation dumps)
never reach Slack — `log_failure` writes them to the log at WARNING with the run id, with
any secret they echo ("Incorrect API key provided: sk-…") hidden.
"""

from __future__ import annotations

import logging

from agents.errors import Failure, ModelError
from agents.redact import redact

log = logging.getLogger("baton.models")

_KEY_SETTING = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}
_URL_SETTING = {"openai": "OPENAI_BASE_URL", "anthropic": "ANTHROPIC_BASE_URL"}


def _vendor(error: ModelError) -> str:
    label = error.provider.lower()
    return "anthropic" if "anthropic" in label else "openai"


def _who(error: ModelError) -> str:
    return error.provider or "The model provider"


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def sentence(error: ModelError, *, attempts: int | None = None) -> str:
    """One sentence a person can act on: who failed, and what to do about it.

    `attempts`: how often a temporary failure was tried before giving up.
    """
    who = _capital(_who(error))
    model = f" `{error.model}`" if error.model else ""
    http = f" (HTTP {error.status})" if error.status else ""
    tries = [f"HTTP {error.status}"] if error.status else []
    if attempts and attempts > 1:
        tries.append(f"{attempts} attempts")
    tried = f" ({', '.join(tries)})" if tries else ""
    vendor = _vendor(error)
    match error.failure:
        case Failure.TIMEOUT:
            return f"{who} did not answer in time{tried}; try again in a minute, or ask for less."
        case Failure.UNREACHABLE:
            return (
                f"Baton could not reach {_who(error)}{tried}; check that it is running and that "
                f"{_URL_SETTING[vendor]} points to it."
            )
        case Failure.RATE_LIMITED:
            return f"{who} is rate limiting Baton{tried}; try again in a minute."
        case Failure.SERVER_ERROR:
            return f"{who} had a temporary problem{tried}; try again in a minute."
        case Failure.BAD_KEY:
            return f"{who} rejected the API key; check {_KEY_SETTING[vendor]}."
        case Failure.NO_CREDIT:
            return f"{who} says the account has run out of credit; add credit or use another model."
        case Failure.FORBIDDEN:
            return (
                f"{who} refused access to the model{model}; check the key's permissions "
                "or choose another model."
            )
        case Failure.UNKNOWN_MODEL:
            return (
                f"{who} does not know the model{model}; check BATON_MODEL or the agent's "
                "`model:` in the catalog."
            )
        case Failure.REFUSED_REQUEST:
            return (
                f"{who} refused Baton's request{http}; it may not support something Baton asked "
                "for — set OPENAI_COMPAT (see the README) or choose another model."
                if vendor == "openai"
                else f"{who} refused Baton's request{http}; choose another model or tell your Baton admin."
            )
        case Failure.TOO_LARGE:
            return f"The request was too large for {_who(error)}; narrow it down and try again."
        case Failure.BAD_OUTPUT:
            at = f" at {error.provider}" if error.provider else ""
            return (
                f"The model{model}{at} did not answer in the form Baton asked for; "
                "try again, or choose a stronger model."
            )
        case Failure.DECLINED:
            return f"The model{model} declined to answer; rephrase the request."
        case Failure.UNSUPPORTED | Failure.OTHER:
            # Baton's own words (e.g. from the offline `rules` model): already a sentence.
            text = redact(str(error)).strip()
            return _capital(text if text.endswith(".") else text + ".")


def short(error: ModelError) -> str:
    """A few words for a task's progress line ("timed out", "HTTP 503")."""
    http = f" (HTTP {error.status})" if error.status else ""
    match error.failure:
        case Failure.TIMEOUT:
            return "timed out"
        case Failure.UNREACHABLE:
            return "unreachable"
        case Failure.RATE_LIMITED:
            return "rate limited"
        case Failure.SERVER_ERROR:
            return f"server error{http}"
        case Failure.BAD_KEY:
            return "API key rejected"
        case Failure.NO_CREDIT:
            return "out of credit"
        case Failure.FORBIDDEN:
            return "access refused"
        case Failure.UNKNOWN_MODEL:
            return "unknown model"
        case Failure.REFUSED_REQUEST:
            return f"request refused{http}"
        case Failure.TOO_LARGE:
            return "request too large"
        case Failure.BAD_OUTPUT:
            return "unreadable answer"
        case Failure.DECLINED:
            return "declined to answer"
        case Failure.UNSUPPORTED | Failure.OTHER:
            return "failed"


def log_failure(run_id: str, where: str, model: str, error: ModelError) -> None:
    """The whole error, server text included (secrets it echoes hidden), for whoever runs Baton."""
    log.warning(
        "run %s, %s: %s failed (%s): %s",
        run_id,
        where,
        model,
        error.failure.value,
        redact(str(error)),
    )
