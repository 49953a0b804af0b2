"""Where Baton's log goes and how it reads: one set-up for `baton run` and `baton sandbox`.

`text` is one readable line per record; `json` is one JSON object per line with `time`,
`level`, `logger`, `message`, and — when the record belongs to a run — `run_id`, `task_id`,
`team_id`, plus the `trace_id` and `span_id` of the span it was written in.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TextIO

from agents.redact import redact
from agents.telemetry import log_fields
from bot.config import LogFormat

if TYPE_CHECKING:
    from bot.config import Settings

# Chatty at INFO and of no use to an operator: a line per scheduler tick.
# Libraries whose INFO lines say nothing an operator acts on (ticks, migration plumbing);
# Alembic's "Running upgrade …" lines stay: they say what an upgrade did.
QUIETED = ("apscheduler", "alembic.runtime.plugins")


class _Fields(logging.Filter):
    """Stamps each record with the ids of the run, task and span it was written for."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.baton = log_fields()
        return True


class _Redacted(logging.Filter):
    """No record carries a secret: its message (and any traceback) is redacted before it is
    written, whoever logged it — Baton, a library, or an error's echo of a request."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(getattr(record, "baton", {}))
        if record.exc_info:
            entry["exception"] = record.exc_text or self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """`time LEVEL logger [run … · task …]: message`."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(where)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, str] = getattr(record, "baton", {})
        where = " · ".join(
            f"{label} {fields[key]}"
            for key, label in (("run_id", "run"), ("task_id", "task"))
            if key in fields
        )
        record.where = f" [{where}]" if where else ""
        return super().format(record)


class _BatonHandler(logging.StreamHandler[TextIO]):
    """Marks the handler this module installed, so a second set-up replaces it."""


def configure_logging(
    settings: Settings, *, quiet: bool = False, stream: TextIO | None = None
) -> LogFormat:
    """Set up the root logger from BATON_LOG_LEVEL and BATON_LOG_FORMAT; returns the format.

    `quiet` is for the sandbox, whose console shows its URL and nothing but warnings unless
    BATON_LOG_LEVEL asks for more. Records go to `stream` (default stderr).
    """
    out = stream if stream is not None else sys.stderr
    fmt = settings.baton_log_format or (LogFormat.TEXT if _is_terminal(out) else LogFormat.JSON)
    level = (settings.baton_log_level or ("WARNING" if quiet else "INFO")).upper()
    handler = _BatonHandler(out)
    handler.addFilter(_Redacted())
    handler.addFilter(_Fields())
    handler.setFormatter(JsonFormatter() if fmt == LogFormat.JSON else TextFormatter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _BatonHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in QUIETED:
        logging.getLogger(name).setLevel(
            logging.NOTSET if root.level <= logging.DEBUG else logging.WARNING
        )
    # The sandbox page shows every request; a line each would drown the console.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING if quiet else logging.NOTSET)
    return fmt


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
