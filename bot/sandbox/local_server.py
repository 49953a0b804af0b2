"""One small aiohttp server on 127.0.0.1: start, stop, `async with`. Port 0 picks a free port."""

from __future__ import annotations

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

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> Self:
        self._runner = web.AppRunner(
            self.web_app(), access_log=None, shutdown_timeout=self.shutdown_timeout
        )
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
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
