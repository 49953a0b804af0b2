"""What `orchestration` raises, drawn once.

OrchestrationError (storage.errors.BatonError)
├── PlanningError           no valid plan could be made for the request
│   └── InvalidPlan             a model's plan does not fit the catalog (supervisor)
└── WhenError               a schedule's `<when>` cannot be read (when; also a ValueError)
"""

from __future__ import annotations

from storage.errors import BatonError


class OrchestrationError(BatonError):
    """Base class; the message is a sentence a person can act on."""


class PlanningError(OrchestrationError):
    """No valid plan could be made for the request."""
