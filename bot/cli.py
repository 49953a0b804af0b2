"""`baton`: run the bot, open the sandbox, or print the app manifest."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import logging
import signal
import sys

from bot.config import ConfigError, Mode, Settings, check, load_settings

NO_CREDENTIALS = """Baton needs Slack credentials to talk to Slack. Set them in the environment or in .env:
  SLACK_BOT_TOKEN=xoxb-…      (OAuth & Permissions → Bot User OAuth Token)
  SLACK_APP_TOKEN=xapp-…      (Socket Mode: Basic Information → App-Level Tokens, scope connections:write)
  SLACK_SIGNING_SECRET=…      (HTTP mode, `baton run --http`: Basic Information → Signing Secret)
Create the app from manifest.yml first (README: "Create the Slack app")."""

SANDBOX_INSTEAD = (
    "No Slack credentials: starting the local sandbox. To connect Slack, set SLACK_BOT_TOKEN "
    'and SLACK_APP_TOKEN (or SLACK_SIGNING_SECRET with --http); README: "Create the Slack app".'
)
CONNECT_SLACK = "Real Slack: set SLACK_BOT_TOKEN and SLACK_APP_TOKEN, then `baton run`."


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
        "--port", type=int, default=None, help="HTTP port (default: BATON_PORT, else 3000)"
    )
    sandbox = sub.add_parser("sandbox", help="a local Slack stand-in in your browser, offline")
    sandbox.add_argument(
        "--port", type=int, default=None, help="port of the page (default 8765; 0: any free port)"
    )
    manifest = sub.add_parser("manifest", help="print the Slack app manifest")
    manifest.add_argument("--url", default=None, help="public https URL of Baton for HTTP mode")
    args = parser.parse_args(argv)

    if args.command == "manifest":
        from bot.manifest import render_manifest

        try:
            sys.stdout.write(render_manifest(url=args.url))
        except ValueError as e:
            print(f"baton manifest: {e}", file=sys.stderr)
            return 2
        return 0

    try:
        settings = load_settings()
    except ConfigError as e:
        return _config_failed(e)
    logging.basicConfig(
        level=settings.baton_log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.command == "sandbox":
        return _run_sandbox(settings, args.port)
    mode: Mode = "http" if args.http else "socket"
    if not args.http and not _any_slack_variable(settings):
        print(SANDBOX_INSTEAD, flush=True)
        return _run_sandbox(settings, None, hinted=True)
    if not settings.has_slack_credentials and not args.http:
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


def _config_failed(e: ConfigError) -> int:
    print("Baton cannot start:", file=sys.stderr)
    for problem in e.problems:
        print(f"  - {problem}", file=sys.stderr)
    return 2


async def _serve(settings: Settings, mode: Mode, port: int) -> int:
    from bot.app import create
    from bot.transports import forever, serve_http, serve_socket
    from storage.db import is_unavailable

    try:
        baton = await create(settings, mode=mode)
    except ConfigError as e:
        return _config_failed(e)
    except Exception as e:
        if not is_unavailable(e):
            raise
        return _config_failed(ConfigError([f"BATON_DATABASE_URL: {unreachable(e)}"]))
    try:
        if mode == "http":
            runner = await serve_http(baton, port=port)
            try:
                await forever()
            finally:
                await runner.cleanup()
        else:
            handler = await serve_socket(baton)
            try:
                await forever()
            finally:
                await handler.close_async()  # type: ignore[no-untyped-call]
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


def _run_sandbox(settings: Settings, port: int | None, *, hinted: bool = False) -> int:
    """The local Slack stand-in with Baton behind it, until Ctrl-C (or SIGTERM).

    Prints the page's URL and one line on what runs behind it (and, unless `hinted` already
    said so, how to connect real Slack).
    """
    # Every request would otherwise be logged; the page is the place to watch them.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(_sandbox(settings, port, hinted=hinted))
    return 0


async def _sandbox(settings: Settings, port: int | None, *, hinted: bool) -> int:
    from bot.sandbox.launch import DEFAULT_PORT, Sandbox

    sandbox = Sandbox(settings)
    try:
        try:
            url = await sandbox.start(port=DEFAULT_PORT if port is None else port)
        except OSError as e:
            if port is not None or e.errno != errno.EADDRINUSE:
                raise
            # The usual port is taken (another sandbox?): any free one will do.
            sandbox = Sandbox(settings)
            url = await sandbox.start(port=0)
    except ConfigError as e:
        return _config_failed(e)
    except OSError as e:
        wanted = DEFAULT_PORT if port is None else port
        print(f"baton sandbox: cannot listen on port {wanted}: {e.strerror}", file=sys.stderr)
        return 2
    model = sandbox.model
    print(f"Baton sandbox: {url}", flush=True)
    print(
        f"Model {model}{' (offline)' if model == 'rules' else ''}, "
        f"{'your' if sandbox.own_catalog else 'demo'} catalog, a temporary database "
        "(deleted on exit)." + ("" if hinted else f" {CONNECT_SLACK}"),
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError):
        loop.add_signal_handler(signal.SIGTERM, stop.set)
    try:
        await stop.wait()
    finally:
        await sandbox.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
