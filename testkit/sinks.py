"""Event sinks for runs driven without a Slack surface."""

from __future__ import annotations

from orchestration.run_events import RunEvent


class NullSink:
    """A sink that drops everything (runs driven from tests or the benchmark)."""

    async def publish(self, event: RunEvent) -> None:
        return None


class RecordingSink:
    """Keeps every event, in order."""

    def __init__(self) -> None:
        self.events: list[RunEvent] = []

    async def publish(self, event: RunEvent) -> None:
        self.events.append(event)
