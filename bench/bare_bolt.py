"""The reference for ack latency: a bare Bolt app that acks `/baton` and mentions and does
nothing else, served by Bolt's aiohttp adapter as Baton's `/slack/events` is.

`python -m bench.bare_bolt PORT` serves until killed (signing secret: the tests' SECRET).
"""

from __future__ import annotations

import sys
from typing import Any

from aiohttp import web
from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult

from testkit.harness import SECRET


def bare_app() -> web.Application:
    async def authorize() -> AuthorizeResult:
        return AuthorizeResult(enterprise_id=None, team_id="T0", bot_user_id="U0BATON")

    app = AsyncApp(signing_secret=SECRET, authorize=authorize, process_before_response=True)

    @app.command("/baton")
    async def command(ack: Any) -> None:
        await ack()

    @app.event("app_mention")
    async def mention(ack: Any) -> None:
        await ack()

    web_app = app.web_app(path="/slack/events")

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    web_app.router.add_get("/healthz", healthz)
    return web_app


if __name__ == "__main__":
    web.run_app(bare_app(), host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
