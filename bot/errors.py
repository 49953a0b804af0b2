"""What `bot` raises, drawn once.

BotError (storage.errors.BatonError)
├── ConfigError             start-up stops: one line per bad variable (config)
├── DatabaseNotReady        start-up stops: the schema is not this Baton's (database)
├── ManifestUrlError        the public URL for the app manifest is not https (manifest;
│                           also a ValueError)
├── ScheduleInputError      `/baton schedule` text cannot be read (schedules_ui; also a
│                           ValueError)
├── IntakeFailed            a request could not be stored (intake)
├── NotInstalled            no token for the workspace (workspaces; also slack_sdk's
│                           SlackApiError, so Slack error handling sees `not_installed`)
└── DeliveryError           one outbox attempt did not reach Slack (delivery)
    ├── Retry                   it may pass: tried again with backoff
    └── GiveUp                  Slack refused for good: the row ends as failed
"""

from __future__ import annotations

from storage.errors import BatonError


class BotError(BatonError):
    """Base class for errors from the bot package."""


class ManifestUrlError(BotError, ValueError):
    """The URL Slack should call is not an https URL with a host (the message says which)."""
