"""The running bot as the listeners, and the modules they call, see it.

`bot/app.py` builds the one there is (`bot.app.Baton`) and hands it to the listeners. They and
everything they call depend on this Protocol rather than on bot/app.py, so no module that
the app imports imports the app back, not even for type checking.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any, Protocol

from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_sdk.web.async_client import AsyncWebClient

from agents.providers.registry import Models
from agents.spec import Catalog
from agents.telemetry import Telemetry
from agents.toolbox import Toolbox
from bot.background import Background
from bot.config import Settings
from bot.members import ChannelMembers
from bot.names import Names
from bot.workspaces import Row, Workspaces
from orchestration.engine import Orchestrator
from orchestration.scheduler import HandOver, Scheduler
from storage.db import Database
from storage.new_runs import IntakeQueue


class Deliveries(Protocol):
    """The outbox's deliverer (`bot.delivery.Deliverer`)."""

    async def deliver_run(self, run_id: str, *, lease_held: bool = False) -> None: ...

    async def deliver_edits(self, run_id: str) -> None: ...

    async def deliver_copies(self, run_id: str, refs: list[str]) -> None: ...

    async def sweep(self) -> datetime | None: ...


class Baton(Protocol):
    """The bot's parts, shared by every listener."""

    @property
    def settings(self) -> Settings: ...
    @property
    def db(self) -> Database: ...
    @property
    def catalog(self) -> Catalog: ...
    @property
    def client(self) -> AsyncWebClient: ...
    @property
    def models(self) -> Models: ...
    @property
    def toolbox(self) -> Toolbox: ...
    @property
    def orchestrator(self) -> Orchestrator: ...
    @property
    def app(self) -> AsyncApp: ...
    @property
    def scheduler(self) -> Scheduler: ...
    @property
    def telemetry(self) -> Telemetry: ...
    @property
    def background(self) -> Background: ...
    @property
    def workspaces(self) -> Workspaces | None: ...
    @property
    def identity(self) -> AuthorizeResult | None: ...
    @property
    def deliverer(self) -> Deliveries: ...
    @property
    def intake(self) -> IntakeQueue: ...
    @property
    def later(self) -> HandOver: ...
    @property
    def wake_workers(self) -> Callable[[], Coroutine[Any, Any, None]]: ...
    @property
    def stopping(self) -> asyncio.Event: ...

    def client_for(self, team_id: str | None) -> AsyncWebClient: ...

    async def client_for_run(self, run_id: str) -> AsyncWebClient: ...

    def names_for(self, team_id: str | None) -> Names: ...

    def members_for(self, team_id: str | None) -> ChannelMembers: ...

    async def members_for_run(self, run_id: str) -> ChannelMembers: ...

    def own(self, row: Row | None, team_id: str | None) -> Row | None: ...
