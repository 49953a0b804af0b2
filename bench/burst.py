"""Send signed requests all at once and print how long each took to be answered (ms, JSON).

Run as its own process (`python -m bench.burst URL FILE`) so that the timing is not held up
by the Slack stand-in and the fake model server, which share the benchmark's event loop.
FILE holds `[[body, content_type], …]` (bodies as latin-1 text); each is signed when sent.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import aiohttp

from testkit.harness import SECRET, signed_headers


async def burst(url: str, requests: list[tuple[bytes, str]]) -> list[float]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def send(body: bytes, content_type: str) -> float:
            headers = signed_headers(SECRET, body, content_type=content_type)
            start = time.perf_counter()
            async with session.post(f"{url}/slack/events", data=body, headers=headers) as r:
                await r.read()
                assert r.status == 200, r.status
            return (time.perf_counter() - start) * 1000

        return list(await asyncio.gather(*(send(b, t) for b, t in requests)))


if __name__ == "__main__":
    with open(sys.argv[2], encoding="utf-8") as f:
        loaded = [(b.encode("latin-1"), t) for b, t in json.load(f)]
    print(json.dumps(asyncio.run(burst(sys.argv[1], loaded))))
