"""`baton sandbox` as a command: the page's port, one line on stdout, until Ctrl-C or SIGTERM.

bot/cli.py finds it through the `baton.commands` entry point, so the bot never imports the
sandbox; a ConfigError raised here is reported by the CLI like any other.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import signal
import socket
import sys

import aiohttp

from bot.config import Settings
from sandbox.launch import DEFAULT_PORT, HOST, Sandbox
from sandbox.local_server import listening


def main(settings: Settings, port: int | None) -> int:
    """The local Slack stand-in with Baton behind it; returns the exit code.

    A normal start prints one line, the page's URL; the console shows warnings and errors only
    (unless BATON_LOG_LEVEL asks for more), since the page is the place to watch what happens.
    """
    return asyncio.run(_serve(settings, port))


async def _serve(settings: Settings, port: int | None) -> int:
    try:
        place = await page_socket(port)
    except OSError as e:
        wanted = DEFAULT_PORT if port is None else port
        print(f"baton sandbox: cannot listen on port {wanted}: {e.strerror}", file=sys.stderr)
        return 2
    if isinstance(place, str):
        print(
            f"Baton sandbox: {place} is already running; `baton sandbox --port 0` starts another.",
            flush=True,
        )
        return 0
    sandbox = Sandbox(settings)
    try:
        url = await sandbox.start(sock=place)
    finally:
        if sandbox.page is None:
            place.close()
    print(f"Baton sandbox: {url}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError):
        # Ctrl-C and SIGTERM stop alike: the sandbox shuts down from here, in order, rather
        # than having its main task cancelled wherever it happens to be.
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await sandbox.stop()
    return 0


async def page_socket(port: int | None, *, default: int | None = None) -> socket.socket | str:
    """Where the sandbox's page will listen, taken before anything starts (so it starts once).

    `port` None means the usual one (`default`, else 8765). A port held by another Baton
    sandbox gives that sandbox's URL instead of a socket. When the usual port is held by
    another program, any free port will do, and stderr says so; a port asked for by number
    is that port or an OSError.
    """
    usual = DEFAULT_PORT if default is None else default
    wanted = usual if port is None else port
    try:
        return listening(HOST, wanted)
    except OSError as e:
        if e.errno != errno.EADDRINUSE:
            raise
        running = f"http://{HOST}:{wanted}/"
        if await _is_sandbox(running):
            return running
        if port is not None:
            raise
    sock = listening(HOST, 0)
    print(
        f"Port {usual} is taken by another program: the sandbox uses port "
        f"{sock.getsockname()[1]} instead.",
        file=sys.stderr,
        flush=True,
    )
    return sock


async def _is_sandbox(url: str) -> bool:
    """Whether `url` is a Baton sandbox's page (another `baton sandbox` holds the port)."""
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as session,
            session.get(url) as page,
        ):
            return page.status == 200 and "<title>Baton sandbox</title>" in await page.text()
    except (aiohttp.ClientError, TimeoutError, UnicodeDecodeError):
        return False
