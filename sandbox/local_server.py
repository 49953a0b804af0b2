"""One small aiohttp server on 127.0.0.1: start, stop, `async with`. Port 0 picks a free port."""

from __future__ import annotations

import socket
from types import TracebackType
from typing import Self

from aiohttp import web


class LocalServer:
    """Subclasses give `web_app()`; `root` is `http://host:port` once started."""

    # Seconds a stop waits for requests still being answered.
    shutdown_timeout: float = 60.0

    def __init__(self) -> None:
        self._runner: web.AppRunner | None = None
        self._root: str | None = None

    def web_app(self) -> web.Application:
        raise NotImplementedError

    @property
    def root(self) -> str:
        """The address without a trailing slash, e.g. `http://127.0.0.1:54321`."""
        if self._root is None:
            raise RuntimeError(f"the {type(self).__name__} is not started")
        return self._root

    async def start(
        self, host: str = "127.0.0.1", port: int = 0, *, sock: socket.socket | None = None
    ) -> Self:
        """Listen on `host:port`, or on `sock` when one is already bound (see `listening`)."""
        self._runner = web.AppRunner(
            self.web_app(), access_log=None, shutdown_timeout=self.shutdown_timeout
        )
        await self._runner.setup()
        site: web.BaseSite = (
            web.TCPSite(self._runner, host, port)
            if sock is None
            else web.SockSite(self._runner, sock)
        )
        await site.start()
        bound_host, bound_port = self._runner.addresses[0][:2]
        self._root = f"http://{bound_host}:{bound_port}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


def listening(host: str, port: int) -> socket.socket:
    """A socket bound and listening on `host:port` (port 0: any free one); OSError if taken."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock
