"""Assembles Baton: configuration in, a Bolt app with everything wired behind it out.

Read this first: `create()` builds each part once, in the order a request flows through
them — Slack client, database, catalog, models and tools, orchestrator, listeners.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import aiohttp
from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from agents.counters import Metrics
from agents.errors import CatalogError
from agents.providers.capabilities import CompatSettings, parse_compat
from agents.providers.registry import Models, ModelSettings
from agents.redact import remember
from agents.spec import Catalog, load_catalog
from agents.telemetry import Telemetry, otlp_exporter
from agents.toolbox import Toolbox
from agents.tools.base import ToolContext
from agents.tools.registry import ALL_TOOLS, tool_names
from bot.background import Background
from bot.config import ConfigError, Mode, Settings, check_common, environment, secret
from bot.database import open_database
from bot.delivery import Deliverer, DeliveryOptions
from bot.digest_posts import DigestSink
from bot.gateway import SlackToolGateway
from bot.install import oauth_settings
from bot.listeners import register
from bot.members import ChannelMembers
from bot.metrics_endpoint import SlackCallCounter
from bot.names import Names
from bot.progress import ProgressOptions, SlackProgress
from bot.slack_ops import slack_error
from bot.work import Later, Waker
from bot.workspaces import Row, StoredAuthorize, Workspaces, seen_from
from orchestration.deps import RunDeps
from orchestration.engine import Orchestrator
from orchestration.limits import Limits
from orchestration.run_events import EventSink
from orchestration.scheduler import Scheduler
from storage import runs
from storage.clock import REAL, Clock
from storage.db import Database
from storage.installations import adopt_unowned
from storage.models import Run, RunSource
from storage.new_runs import IntakeQueue

log = logging.getLogger(__name__)


@dataclass
class Baton:
    """The running bot's parts, shared by every listener (which see it as `bot.parts.Baton`).

    Built in the order a request flows: what is given here first, then (`__post_init__`) the
    parts that call back into the bot: the deliverer, the orchestrator (a run's events are
    shown through `sink`, its tools reach Slack through `tool_context`), and the scheduler.
    """

    settings: Settings
    db: Database
    catalog: Catalog
    client: AsyncWebClient
    models: Models
    toolbox: Toolbox
    app: AsyncApp
    progress: ProgressOptions
    # Who is in which channel (`conversations.members`), cached briefly.
    members: ChannelMembers
    limits: Limits = field(default_factory=Limits)
    telemetry: Telemetry = field(default_factory=Telemetry.off)
    delivery: DeliveryOptions = field(default_factory=DeliveryOptions)
    background: Background = field(default_factory=Background)
    # Set by close(): the housekeeping loop finishes its sweep and stops.
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    housekeeping: asyncio.Task[None] | None = None
    # OAuth mode: a token per workspace. None: one workspace, `client` carries its token.
    workspaces: Workspaces | None = None
    # With one workspace: who Baton is there (`auth.test`, asked once at start).
    identity: AuthorizeResult | None = None

    def __post_init__(self) -> None:
        self.deliverer = Deliverer(self, self.delivery)
        # Requests arriving together are stored together before their acks.
        self.intake = IntakeQueue(self.db, wake=self.settings.baton_workers == "external")
        # With BATON_WORKERS=external: tell the workers there is work (bot/work.py).
        self.wake_workers = Waker(self.db)
        self.names = Names(self.client)
        # OAuth mode: each workspace's names and channel members, asked with its own token.
        self._names: dict[str, Names] = {}
        self._members: dict[str, ChannelMembers] = {}
        self._allow = frozenset(
            [*self.settings.baton_http_allow_hosts, *self.catalog.http_allow_hosts]
        )
        self.orchestrator = Orchestrator(
            RunDeps(
                db=self.db,
                catalog=self.catalog,
                models=self.models,
                tools=self.toolbox,
                tool_context=self.tool_context,
                limits=self.limits,
                telemetry=self.telemetry,
            ),
            sinks=self.sink,
        )
        # Continues a run after the ack: in `background` here, or by a worker.
        self.later = Later(
            self.background,
            execute=self.orchestrator.execute,
            wake_workers=self.wake_workers,
            external=self.settings.baton_workers == "external",
        )
        self.scheduler = Scheduler(
            self.db,
            self.later,
            grace=timedelta(seconds=self.settings.baton_schedule_grace),
            owner=f"{socket.gethostname()}:{os.getpid()}",
        )

    def client_for(self, team_id: str | None) -> AsyncWebClient:
        """The Web API client with the token of `team_id`'s workspace."""
        if self.workspaces is None:
            return self.client
        return self.workspaces.client(team_id)

    async def client_for_run(self, run_id: str) -> AsyncWebClient:
        """The client of the workspace a run belongs to."""
        if self.workspaces is None:
            return self.client
        run = await runs.get_run(self.db, run_id)
        return self.workspaces.client(run.team_id if run is not None else None)

    def names_for(self, team_id: str | None) -> Names:
        """Names of people and channels as `team_id`'s workspace gives them."""
        if self.workspaces is None:
            return self.names
        team = team_id or ""
        found = self._names.get(team)
        if found is None:
            found = self._names[team] = Names(self.client_for(team_id))
        return found

    def members_for(self, team_id: str | None) -> ChannelMembers:
        """Who is in which channel of `team_id`'s workspace (cached as `members` is)."""
        if self.workspaces is None:
            return self.members
        team = team_id or ""
        found = self._members.get(team)
        if found is None:
            found = self._members[team] = ChannelMembers(
                self.client_for(team_id), ttl=self.members.ttl, clock=self.members.clock
            )
        return found

    async def members_for_run(self, run_id: str) -> ChannelMembers:
        """The channel members of the workspace a run belongs to."""
        if self.workspaces is None:
            return self.members
        run = await runs.get_run(self.db, run_id)
        return self.members_for(run.team_id if run is not None else None)

    def own(self, row: Row | None, team_id: str | None) -> Row | None:
        """The run or schedule, if people in `team_id` may reach it by its id: with many
        workspaces, each reaches only its own (one workspace reaches every row)."""
        if self.workspaces is None:
            return row
        return seen_from(row, team_id)

    def sink(self, run: Run) -> EventSink:
        """Where a run's events are shown: its thread, or a digest for a scheduled run."""
        if run.source == RunSource.SCHEDULE:
            return DigestSink(self, run)
        # A sink is made for a drive of the run: the lease is held while it delivers.
        return SlackProgress(
            client=self.client_for(run.team_id),
            db=self.db,
            run=run,
            options=self.progress,
            deliver=functools.partial(self.deliverer.deliver_run, lease_held=True),
            spawn=self.background.spawn,
            names=self.names_for(run.team_id),
        )

    def tool_context(self, run_id: str, task_id: str, key: str) -> ToolContext:
        """What a tool call of the run may reach: allowed hosts, webhooks, the run's Slack."""
        return ToolContext(
            run_id=run_id,
            task_id=task_id,
            http_allow_hosts=self._allow,
            webhooks=dict(self.catalog.webhooks),
            slack=SlackToolGateway(
                functools.partial(self.client_for_run, run_id),
                functools.partial(self.members_for_run, run_id),
            ),
            idempotency_key=key,
        )

    async def close(self) -> None:
        self.stopping.set()
        self.scheduler.stop()
        if self.housekeeping is not None:
            # Let a sweep in progress finish its queries rather than cut them off.
            await asyncio.wait([self.housekeeping], timeout=10)
        await self.background.cancel_all()
        await self.toolbox.aclose()
        await self.models.aclose()
        await self.db.dispose()
        await self.telemetry.shutdown()
        if self.client.session is not None:
            await self.client.session.close()


def slack_client(settings: Settings, metrics: Metrics | None = None) -> AsyncWebClient:
    """One Web API client for everything; it waits out 429s as Slack's Retry-After says.

    Nothing that answers Slack waits on it: listeners ack first (see `create`). With
    `metrics`, every call it makes is counted by method and result (429s included). In OAuth
    mode it carries no token: it is the model each workspace's client copies.
    """
    counting = [SlackCallCounter(metrics)] if metrics is not None else []
    timeout = int(max(settings.baton_slack_timeout, 1))
    return AsyncWebClient(
        token=secret(settings.slack_bot_token),
        base_url=settings.slack_api_url,
        timeout=timeout,
        # One session for every call (closed by `Baton.close`): without it slack_sdk opens
        # a connection — a TLS handshake with Slack — for each call and closes it after.
        session=aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)),
        retry_handlers=[
            *counting,
            AsyncConnectionErrorRetryHandler(max_retry_count=2),
            AsyncRateLimitErrorRetryHandler(max_retry_count=10),
        ],
    )


def model_settings(
    settings: Settings, catalog: Catalog | None = None, *, timeout: float | None = None
) -> ModelSettings:
    """What the model providers need from the configuration (and the catalog's
    `openai_compat:`, which OPENAI_COMPAT overrides key by key); `timeout` in place of
    BATON_MODEL_TIMEOUT."""
    compat = catalog.openai_compat if catalog is not None else CompatSettings()
    if settings.openai_compat:
        compat = parse_compat(settings.openai_compat).over(compat)
    return ModelSettings(
        default_model=settings.default_model,
        openai_api_key=secret(settings.openai_api_key),
        openai_base_url=settings.openai_base_url,
        anthropic_api_key=secret(settings.anthropic_api_key),
        anthropic_base_url=settings.anthropic_base_url,
        fallback_models=tuple(settings.baton_fallback_models),
        openai_compat=compat,
        timeout=settings.baton_model_timeout if timeout is None else timeout,
    )


def telemetry_from(settings: Settings) -> Telemetry:
    """Spans and counters; spans leave the machine only if OTEL_EXPORTER_OTLP_ENDPOINT is set."""
    endpoint = settings.otel_exporter_otlp_endpoint
    return Telemetry.create(
        exporter=otlp_exporter(endpoint) if endpoint else None,
        capture_content=settings.otel_instrumentation_genai_capture_message_content,
        service_name=settings.otel_service_name,
    )


def limits_from(settings: Settings) -> Limits:
    return Limits(
        max_parallel=settings.baton_max_parallel,
        task_timeout=settings.baton_task_timeout,
        run_deadline=settings.baton_run_deadline,
        budget_usd=settings.baton_budget_usd,
        budget_tokens=settings.baton_budget_tokens,
        lease_seconds=settings.baton_lease_seconds,
    )


def toolbox_for(catalog: Catalog, settings: Settings) -> Toolbox:
    """Baton's own tools and the catalog's MCP servers (none is started until needed).

    Raises ConfigError when a server entry names an environment variable that is not set.
    """
    if not catalog.mcp_servers:
        return Toolbox(ALL_TOOLS)
    # The MCP SDK takes seconds to import: only a catalog with servers pays for it.
    from agents.mcp.server_entries import missing_variables
    from agents.mcp.servers import McpServers

    environ = environment()
    if missing := missing_variables(catalog.mcp_servers, environ):
        raise ConfigError([f"BATON_AGENTS_FILE: {line}" for line in missing])
    return Toolbox(
        ALL_TOOLS,
        McpServers(
            catalog.mcp_servers,
            environ=environ,
            require=catalog.approvals.require,
            call_timeout=settings.baton_tool_timeout,
        ),
    )


async def identity(client: AsyncWebClient, settings: Settings) -> AuthorizeResult:
    """Who Baton is in Slack (`auth.test`), asked once at start-up.

    Bolt would otherwise ask on the first request, before that request's ack: a throttled
    Slack would then hold the ack.
    """
    try:
        resp = await client.auth_test()
    except SlackApiError as e:
        raise ConfigError(
            [f"SLACK_BOT_TOKEN: Slack refused it ({slack_error(e)}); check the bot token"]
        ) from e
    except (aiohttp.ClientError, OSError, TimeoutError) as e:
        raise ConfigError(
            [f"SLACK_API_URL: cannot reach Slack at {settings.slack_api_url} ({type(e).__name__})"]
        ) from e
    return AuthorizeResult.from_auth_test_response(
        auth_test_response=resp, bot_token=client.token, user_token=None
    )


async def bolt_app(
    settings: Settings,
    *,
    mode: Mode,
    client: AsyncWebClient,
    db: Database,
    workspaces: Workspaces | None,
) -> tuple[AsyncApp, AuthorizeResult | None]:
    """Bolt, authorising each request: with Baton's one identity (asked once, here, and
    given back with the app), or in OAuth mode from the installation of the request's
    workspace."""
    # Bolt's own client carries no token: `authorize` gives each request its workspace's.
    bolt_client = AsyncWebClient(
        base_url=settings.slack_api_url,
        timeout=client.timeout,
        retry_handlers=client.retry_handlers,
    )
    # Slack's answer waits for the listener to return. That stays true to the 3 s limit
    # because a listener does no Web API call and at most one bounded write (storing the
    # request) before it acks; everything else runs after, in `Background`.
    common: dict[str, Any] = {
        "signing_secret": secret(settings.slack_signing_secret) or "",
        "client": bolt_client,
        "request_verification_enabled": mode == "http",
        "process_before_response": True,
    }
    if workspaces is None:
        me = await identity(client, settings)
        if me.team_id:
            # Rows from before Baton knew workspaces apart belong to this one; then they
            # keep working if Baton is later installed into many.
            await adopt_unowned(db, me.team_id)

        async def authorize() -> AuthorizeResult:
            return me

        return AsyncApp(authorize=authorize, **common), me
    oauth = AsyncApp(
        oauth_settings=oauth_settings(settings, db, workspaces),
        # Bolt takes an AsyncAuthorize as is (its annotation names only plain functions).
        authorize=StoredAuthorize(db),  # type: ignore[arg-type]
        **common,
    )
    return oauth, None


async def create(
    settings: Settings,
    *,
    mode: Mode,
    progress: ProgressOptions | None = None,
    limits: Limits | None = None,
    telemetry: Telemetry | None = None,
    delivery: DeliveryOptions | None = None,
    clock: Clock = REAL,
) -> Baton:
    """Build and connect every part. Raises ConfigError for anything a person must fix.

    The database is brought to head first, or start-up stops with DatabaseNotReady.

    `telemetry` defaults to what the settings say (`telemetry_from`). `clock` is what every
    part reads the time from (through `baton.db.clock`).
    """
    problems = check_common(settings)
    if problems:
        raise ConfigError(problems)
    # From here on, nothing shown, stored or logged carries one of these.
    remember(settings.secret_values())
    try:
        catalog = load_catalog(settings.baton_agents_file, known_tools=tool_names())
    except CatalogError as e:
        raise ConfigError([f"BATON_AGENTS_FILE: {line}" for line in str(e).splitlines()]) from e
    toolbox = toolbox_for(catalog, settings)
    models = Models(model_settings(settings, catalog), toolbox.by_model_name())
    if found := models.problems(catalog):
        raise ConfigError(found)

    db = await open_database(settings, clock=clock)
    telemetry = telemetry or telemetry_from(settings)
    client = slack_client(settings, telemetry.metrics)
    workspaces = Workspaces(db, client) if settings.oauth else None
    try:
        app, me = await bolt_app(settings, mode=mode, client=client, db=db, workspaces=workspaces)
    except BaseException:
        assert client.session is not None
        await client.session.close()
        raise
    baton = Baton(
        settings=settings,
        db=db,
        catalog=catalog,
        client=client,
        models=models,
        toolbox=toolbox,
        app=app,
        progress=progress or ProgressOptions(streaming=settings.baton_streaming),
        members=ChannelMembers(client),
        limits=limits or limits_from(settings),
        telemetry=telemetry,
        delivery=delivery or DeliveryOptions(),
        workspaces=workspaces,
        identity=me,
    )
    register(baton)
    return baton
