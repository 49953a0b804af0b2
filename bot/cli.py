"""`baton`: run the bot, open the sandbox, check a deployment, upgrade the database, serve MCP
clients, or print the app manifest."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import signal
import sys
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from bot.config import ConfigError, Mode, Settings, check, database_problems, load_settings
from bot.logs import configure_logging

if TYPE_CHECKING:
    from bot.app import Baton

NO_CREDENTIALS = """Baton needs Slack credentials to talk to Slack. Set them in the environment or in .env:
  SLACK_BOT_TOKEN=xoxb-…      (OAuth & Permissions → Bot User OAuth Token)
  SLACK_APP_TOKEN=xapp-…      (Socket Mode: Basic Information → App-Level Tokens, scope connections:write)
  SLACK_SIGNING_SECRET=…      (HTTP mode, `baton run --http`: Basic Information → Signing Secret)
Create the app from manifest.yml first (README: "Create the Slack app")."""

# Commands other packages add (`baton sandbox`): name -> a callable (settings, port) -> exit code.
COMMANDS = "baton.commands"
Command = Callable[[Settings, int | None], int]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="baton", description="A Slack bot that runs a team of AI agents."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="connect to Slack (Socket Mode, or HTTP with --http)")
    run.add_argument(
        "--http", action="store_true", help="serve Slack over HTTP instead of Socket Mode"
    )
    run.add_argument(
        "--port",
        type=int,
        default=None,
        help="HTTP port (default: BATON_PORT, else 3000); without Slack credentials, the sandbox's",
    )
    sub.add_parser(
        "worker",
        help="drive runs from the database for `baton run` processes set to BATON_WORKERS=external",
    )
    sandbox = sub.add_parser("sandbox", help="a local Slack stand-in in your browser, offline")
    sandbox.add_argument(
        "--port", type=int, default=None, help="port of the page (default 8765; 0: any free port)"
    )
    checkup = sub.add_parser(
        "doctor",
        help="check the configuration, the database, Slack and each model; one line each",
    )
    checkup.add_argument(
        "--http", action="store_true", help="check for HTTP mode (as `baton run --http`)"
    )
    sub.add_parser(
        "mcp",
        help="serve Baton to MCP clients over stdio (run_playbook, run_status, list_approvals)",
    )
    database = sub.add_parser("db", help="the database's schema: `upgrade` it, or show `current`")
    database.add_argument(
        "action",
        choices=["upgrade", "current"],
        help="upgrade: bring the schema to this Baton's head; current: its revision, and if it is head",
    )
    manifest = sub.add_parser("manifest", help="print the Slack app manifest")
    manifest.add_argument("--url", default=None, help="public https URL of Baton for HTTP mode")
    args = parser.parse_args(argv)

    if args.command == "manifest":
        from bot.errors import ManifestUrlError
        from bot.manifest import render_manifest

        try:
            sys.stdout.write(render_manifest(url=args.url))
        except ManifestUrlError as e:
            print(f"baton manifest: {e}", file=sys.stderr)
            return 2
        return 0

    if args.command == "doctor":
        from bot.doctor import doctor

        try:
            return doctor(load_settings(), "http" if args.http else "socket")
        except ConfigError as e:
            return doctor(e, "http" if args.http else "socket")
    if args.command == "db":
        return _db(args.action)
    try:
        settings = load_settings()
    except ConfigError as e:
        return _config_failed(e)
    sandbox_instead = args.command == "run" and not args.http and not _any_slack_variable(settings)
    configure_logging(settings, quiet=args.command == "sandbox" or sandbox_instead)
    if args.command == "sandbox":
        return _run_sandbox(settings, args.port)
    if args.command == "mcp":
        return _run_mcp(settings)
    if args.command == "worker":
        return _run_worker(settings)
    mode: Mode = "http" if args.http else "socket"
    if sandbox_instead:
        # Nothing configured yet: the sandbox, whose page says how to connect real Slack.
        return _run_sandbox(settings, args.port)
    if not settings.has_slack_credentials and not settings.oauth and not args.http:
        print(NO_CREDENTIALS)
        return 1
    try:
        check(settings, mode)
    except ConfigError as e:
        return _config_failed(e)
    port = args.port or settings.baton_port
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(_serve(settings, mode, port))
    return 0


def _db(action: str) -> int:
    from bot import database

    try:
        settings = load_settings()
        if problems := database_problems(settings):
            raise ConfigError(problems)
    except ConfigError as e:
        return _config_failed(e)
    configure_logging(settings, quiet=True)
    return database.upgrade(settings) if action == "upgrade" else database.current(settings)


def _config_failed(e: ConfigError) -> int:
    print("Baton cannot start:", file=sys.stderr)
    for problem in e.problems:
        print(f"  - {problem}", file=sys.stderr)
    return 2


async def _start(settings: Settings, mode: Mode) -> Baton | int:
    """Baton, started; or the exit code after saying in one line per problem why it cannot."""
    from bot.app import create
    from bot.database import DatabaseNotReady
    from storage.db import is_unavailable

    try:
        return await create(settings, mode=mode)
    except ConfigError as e:
        return _config_failed(e)
    except DatabaseNotReady as e:
        print(f"Baton cannot start: {e}", file=sys.stderr)
        return 2
    except Exception as e:
        if not is_unavailable(e):
            raise
        return _config_failed(ConfigError([f"BATON_DATABASE_URL: {unreachable(e)}"]))


async def _serve(settings: Settings, mode: Mode, port: int) -> int:
    from bot.transports import serve_http, serve_operator_routes, serve_socket
    from bot.work import external

    baton = await _start(settings, mode)
    if isinstance(baton, int):
        return baton
    # SIGTERM (a service manager stopping Baton) ends it as cleanly as Ctrl-C: runs are
    # cancelled, MCP servers stopped, connections closed.
    stop = asyncio.Event()
    with contextlib.suppress(NotImplementedError):
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    if not external(baton):
        baton.models.prepare(baton.catalog)  # this process drives the runs
    try:
        if mode == "http":
            runner = await serve_http(baton, port=port)
            settle_heap()
            try:
                await stop.wait()
            finally:
                await runner.cleanup()
        else:
            handler = await serve_socket(baton)
            ops_port = settings.baton_metrics_port
            ops = await serve_operator_routes(baton, port=ops_port) if ops_port else None
            settle_heap()
            try:
                await stop.wait()
            finally:
                await handler.close_async()  # type: ignore[no-untyped-call]
                if ops is not None:
                    await ops.cleanup()
    finally:
        await baton.close()
    return 0


def settle_heap() -> None:
    """Leave what start-up built out of the garbage collector's full passes.

    A started process holds a few hundred thousand objects that live as long as it does
    (modules, the catalog, SQLAlchemy's and pydantic's tables). Each full collection walked
    them all, about 100 ms in which no request was acked and no run moved; frozen, they
    are skipped, and only objects made since are collected.
    """
    gc.collect()
    gc.freeze()


def _run_worker(settings: Settings) -> int:
    """Claim and drive runs until Ctrl-C or SIGTERM; Slack's requests are received elsewhere."""
    if settings.slack_bot_token is None:
        return _config_failed(
            ConfigError(["SLACK_BOT_TOKEN is not set: a worker posts its runs' progress in Slack"])
        )
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(_worker(settings.model_copy(update={"baton_workers": "external"})))
    return 0


async def _worker(settings: Settings) -> int:
    from bot.transports import serve_operator_routes, start_housekeeping
    from bot.work import Worker

    baton = await _start(settings, "socket")
    if isinstance(baton, int):
        return baton
    stop = asyncio.Event()
    with contextlib.suppress(NotImplementedError):
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    ops_port = settings.baton_metrics_port
    ops = await serve_operator_routes(baton, port=ops_port) if ops_port else None
    worker = Worker(baton, capacity=settings.baton_worker_runs)
    try:
        baton.models.prepare(baton.catalog)
        await start_housekeeping(baton)
        settle_heap()
        await worker.run(stop)
    finally:
        if ops is not None:
            await ops.cleanup()
        await baton.close()
    return 0


def _run_mcp(settings: Settings) -> int:
    """Baton's runs for MCP clients on stdin/stdout; progress and approvals go to Slack."""
    if settings.slack_bot_token is None:
        return _config_failed(
            ConfigError(
                [
                    "SLACK_BOT_TOKEN is not set: `baton mcp` posts each run it starts in Slack, "
                    "where people follow it and approve its steps"
                ]
            )
        )
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(_mcp(settings))
    return 0


async def _mcp(settings: Settings) -> int:
    from bot.mcp_server import baton_mcp

    # No Slack listener here: the Baton that serves Slack takes the approvals' clicks.
    baton = await _start(settings, "socket")
    if isinstance(baton, int):
        return baton
    try:
        await baton_mcp(baton).run_stdio_async()
    finally:
        await baton.close()
    return 0


def unreachable(error: BaseException) -> str:
    """One line on why the database could not be used (never the whole driver traceback)."""
    reason = getattr(error, "orig", None) or error.__cause__ or error
    first = str(reason).strip().splitlines()[0] if str(reason).strip() else type(reason).__name__
    return f"cannot use the database ({type(reason).__name__}: {first[:200]})"


def _any_slack_variable(settings: Settings) -> bool:
    """Whether the person has started configuring Slack (then missing pieces are errors)."""
    return any(
        v is not None
        for v in (settings.slack_bot_token, settings.slack_app_token, settings.slack_signing_secret)
    )


def _run_sandbox(settings: Settings, port: int | None) -> int:
    """`baton sandbox`, from the package that registers it (the bot does not import it)."""
    found = entry_points(group=COMMANDS).select(name="sandbox")
    if not found:
        print(
            "baton sandbox: the sandbox is not installed with this Baton "
            f"(no `sandbox` in the {COMMANDS} entry points)",
            file=sys.stderr,
        )
        return 2
    command: Command = next(iter(found)).load()
    try:
        with contextlib.suppress(KeyboardInterrupt):
            return command(settings, port)
    except ConfigError as e:
        return _config_failed(e)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
