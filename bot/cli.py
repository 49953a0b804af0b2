"""`baton`: run the bot, open the sandbox, or print the app manifest."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys

from bot.config import ConfigError, Mode, Settings, check, load_settings

NO_CREDENTIALS = """Baton needs Slack credentials to talk to Slack. Set them in the environment or in .env:
  SLACK_BOT_TOKEN=xoxb-…      (OAuth & Permissions → Bot User OAuth Token)
  SLACK_APP_TOKEN=xapp-…      (Socket Mode: Basic Information → App-Level Tokens, scope connections:write)
  SLACK_SIGNING_SECRET=…      (HTTP mode, `baton run --http`: Basic Information → Signing Secret)
Create the app from manifest.yml first (README: "Create the Slack app")."""


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
    sandbox.add_argument("--port", type=int, default=None, help="port of the page (default 8765)")
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

    try:
        baton = await create(settings, mode=mode)
    except ConfigError as e:
        return _config_failed(e)
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


def _run_sandbox(settings: Settings, port: int | None) -> int:
    print("The sandbox is not available in this version of Baton yet.", file=sys.stderr)
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
