"""What `orchestration` raises, drawn once."""

from __future__ import annotations


class OrchestrationError(Exception):
    """Base class; the message is a sentence a person can act on."""


class PlanningError(OrchestrationError):
    """No valid plan could be made for the request."""
