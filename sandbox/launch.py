"""`baton sandbox`: the Slack stand-in, the demo shop, Baton in HTTP mode, and the page.

Baton starts exactly as `baton run --http` starts it — `check`, `create(mode="http")`,
`serve_http` — with settings that point it at the stand-in: `SLACK_API_URL` is the stand-in's
Web API, `SLACK_BOT_TOKEN` its token, `SLACK_SIGNING_SECRET` a secret made up for this run
(the page signs what people do with it), `BATON_AGENTS_FILE` the demo catalog unless one is
set, and a database of its own that is deleted on exit. The model is whatever the
configuration says: `rules` without keys, the real model with one.
"""

from __future__ import annotations

import secrets
import shutil
import socket
import tempfile
from pathlib import Path

from aiohttp import web
from pydantic import SecretStr

from bot.app import Baton, create
from bot.config import Settings, check
from bot.manifest import EVENTS_PATH
from bot.transports import serve_http
from sandbox.demo import ENDPOINTS, DemoShop, write_demo_catalog
from sandbox.methods import METHODS
from sandbox.relay import Relay
from sandbox.server import SandboxPage
from sandbox.web_api import SlackStandIn
from sandbox.workspace import DEFAULT_CHANNELS, DEFAULT_USERS, Channel, User

HOST = "127.0.0.1"
DEFAULT_PORT = 8765
REAL_SLACK = (
    "For real Slack, set SLACK_BOT_TOKEN and SLACK_APP_TOKEN and run `baton run` "
    '(README: "Create the Slack app").'
)

# Alice asks, Bob approves (the demo catalog names him), Carol may not decide.
PEOPLE = (*DEFAULT_USERS, User("U0CAROL", "carol", "Carol", tz="Asia/Tokyo"))
CHANNELS = (*DEFAULT_CHANNELS, Channel("C0DEPLOYS", "deploys"))


def sandbox_settings(
    settings: Settings, *, slack: SlackStandIn, signing_secret: str, catalog: Path, database: str
) -> Settings:
    """The person's settings with Slack, the database and (unless set) the catalog replaced."""
    return settings.model_copy(
        update={
            "slack_bot_token": SecretStr(slack.token),
            "slack_app_token": None,
            "slack_signing_secret": SecretStr(signing_secret),
            "slack_api_url": slack.api_url,
            "slack_client_id": None,
            "slack_client_secret": None,
            "baton_database_url": SecretStr(database),
            # Its database is new at every start: always made at head.
            "baton_auto_migrate": True,
            "baton_agents_file": settings.baton_agents_file or catalog,
        }
    )


class Sandbox:
    """Everything `baton sandbox` runs, started and stopped together."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.slack = SlackStandIn(users=PEOPLE, channels=CHANNELS)
        self.shop = DemoShop()
        self.baton: Baton | None = None
        self.page: SandboxPage | None = None
        self._baton_http: web.AppRunner | None = None
        self._relay: Relay | None = None
        self._dir: Path | None = None

    @property
    def url(self) -> str:
        if self.page is None:
            raise RuntimeError("the sandbox is not started")
        return self.page.url

    @property
    def model(self) -> str:
        return self.settings.default_model

    @property
    def own_catalog(self) -> bool:
        return self.settings.baton_agents_file is not None

    async def start(
        self, *, host: str = HOST, port: int = DEFAULT_PORT, sock: socket.socket | None = None
    ) -> str:
        """Start every part; returns the page's URL. Raises ConfigError or OSError (port taken).

        With `sock` (see `local_server.listening`) the page serves on that socket, so a taken
        port is found out before anything is started.
        """
        try:
            await self._start(host, port, sock)
        except BaseException:
            await self.stop()
            raise
        return self.url

    async def _start(self, host: str, port: int, sock: socket.socket | None) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="baton-sandbox-"))
        await self.slack.start(HOST)
        await self.shop.start(HOST)
        signing_secret = secrets.token_hex(16)
        settings = sandbox_settings(
            self.settings,
            slack=self.slack,
            signing_secret=signing_secret,
            catalog=write_demo_catalog(self._dir, self.shop.url),
            database=f"sqlite:///{self._dir / 'baton.db'}",
        )
        check(settings, "http")
        self.baton = await create(settings, mode="http")
        self._baton_http = await serve_http(self.baton, host=HOST, port=0)
        baton_port = self._baton_http.addresses[0][1]
        self._relay = Relay(
            self.slack,
            events_url=f"http://{HOST}:{baton_port}{EVENTS_PATH}",
            signing_secret=signing_secret,
        )
        self.page = SandboxPage(self.slack, self._relay, info=self._info())
        await self.page.start(host, port, sock=sock)

    def _info(self) -> dict[str, object]:
        assert self.baton is not None
        return {
            "model": self.model,
            "catalog": "your catalog" if self.own_catalog else "demo catalog",
            "playbooks": [
                {"name": p.name, "description": p.description} for p in self.baton.catalog.playbooks
            ],
            "demo": {
                "url": self.shop.url,
                "endpoints": [
                    {"method": m, "url": self.shop.url + path, "what": what}
                    for m, path, what in ENDPOINTS
                ],
            },
            # Methods the page can make misbehave (rate limits on request).
            "methods": sorted(METHODS),
            "real_slack": REAL_SLACK,
        }

    async def stop(self) -> None:
        """Stop everything that was started, in reverse order; safe to call twice."""
        if self.page is not None:
            await self.page.stop()
        if self._relay is not None:
            await self._relay.aclose()
            self._relay = None
        if self._baton_http is not None:
            await self._baton_http.cleanup()
            self._baton_http = None
        if self.baton is not None:
            await self.baton.close()
            self.baton = None
        await self.shop.stop()
        await self.slack.stop()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
