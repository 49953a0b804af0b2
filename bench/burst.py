"""Send signed requests all at once and print how long each took to be answered (ms, JSON).

Run as its own process (`python -m bench.burst URL FILE`) so that the timing is not held up
by the Slack stand-in and the fake model server, which share the benchmark's event loop.
FILE holds `[[body, content_type], …]` (bodies as latin-1 text); each is signed when sent.

Each request is timed from just before its connection is opened to the moment the first bytes
of its answer reach this process's socket, read by a bare asyncio protocol: an HTTP client
library would parse each answer and wake its task first, and when many answers arrive at once
that work queues, so the last ones would be timed late by this process rather than the server.
The status line is checked (every answer must be 200).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from urllib.parse import urlsplit

from testkit.harness import SECRET, signed_headers


class _Answer(asyncio.Protocol):
    """One request's connection: sends it, notes when the answer starts, reads it to the end."""

    def __init__(self, request: bytes, done: asyncio.Future[tuple[float, bytes]]) -> None:
        self.request, self.done = request, done
        self.first: float | None = None
        self.received = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        if self.first is None:
            self.first = time.perf_counter()
        self.received += data

    def connection_lost(self, exc: Exception | None) -> None:
        if self.done.done():
            return
        if exc is not None or self.first is None:
            self.done.set_exception(exc or ConnectionError("closed without an answer"))
        else:
            self.done.set_result((self.first, bytes(self.received)))


async def burst(url: str, requests: list[tuple[bytes, str]]) -> list[float]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    loop = asyncio.get_running_loop()

    async def send(body: bytes, content_type: str) -> float:
        headers = {
            "Host": f"{host}:{port}",
            **signed_headers(SECRET, body, content_type=content_type),
            "Content-Length": str(len(body)),
            "Connection": "close",
        }
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        request = f"POST /slack/events HTTP/1.1\r\n{head}\r\n".encode() + body
        done: asyncio.Future[tuple[float, bytes]] = loop.create_future()
        start = time.perf_counter()
        await loop.create_connection(lambda: _Answer(request, done), host, port)
        first, answer = await done
        status = answer.split(b"\r\n", 1)[0]
        assert status.split(b" ")[1] == b"200", status
        return (first - start) * 1000

    return list(await asyncio.gather(*(send(b, t) for b, t in requests)))


if __name__ == "__main__":
    with open(sys.argv[2], encoding="utf-8") as f:
        loaded = [(b.encode("latin-1"), t) for b, t in json.load(f)]
    print(json.dumps(asyncio.run(burst(sys.argv[1], loaded))))
