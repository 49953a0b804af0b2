"""Outbound HTTP that cannot be pointed at the bot's own network (SSRF guard).

A URL may come from a model, so before each request (and each redirect hop) its host is
resolved and refused when any address is private, loopback, link-local, multicast,
reserved or unspecified, unless the host is in `http_allow_hosts`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp.abc import ResolveResult
from aiohttp.resolver import ThreadedResolver
from yarl import URL

from agents.errors import ToolError

MAX_REDIRECTS = 5
MAX_BODY_BYTES = 1_000_000
USER_AGENT = "Baton/0.1"
_REDIRECTS = {301, 302, 303, 307, 308}
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class Unreachable(ToolError):
    """The far side could not be reached (DNS, refused, TLS, timeout): not a policy refusal."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{url} could not be reached: {reason}")
        self.url = url
        self.reason = reason


@dataclass(frozen=True)
class Fetched:
    """A finished response: the body is read (up to a limit) and the connection released."""

    url: str  # after redirects
    status: int
    body: bytes
    truncated: bool
    charset: str
    redirects: int
    latency_ms: int

    def text(self) -> str:
        """The body decoded with the response's charset (UTF-8 when unknown)."""
        try:
            return self.body.decode(self.charset, errors="replace")
        except LookupError:
            return self.body.decode("utf-8", errors="replace")


def _allowed(host: str, port: int | None, allow_hosts: frozenset[str]) -> bool:
    host = host.lower().rstrip(".")
    names = {host, f"[{host}]"} if ":" in host else {host}
    allowed = {h.lower().rstrip(".") for h in allow_hosts}
    return any(n in allowed or f"{n}:{port}" in allowed for n in names)


def _embedded_v4(ip: IPAddress) -> list[ipaddress.IPv4Address]:
    # An IPv6 address can carry an IPv4 one that the kernel will actually connect to.
    if isinstance(ip, ipaddress.IPv4Address):
        return []
    found = [a for a in (ip.ipv4_mapped, ip.sixtofour) if a is not None]
    if ip.teredo:
        found.extend(ip.teredo)
    if ip in _NAT64:
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return found


def _kind(ip: IPAddress) -> str | None:
    """Why this address is off limits, or None when it is a public one."""
    # The embedded IPv4 address first: "loopback" says more than "IPv4-mapped".
    for candidate in (*_embedded_v4(ip), ip):
        for flag, kind in (
            ("is_unspecified", "unspecified"),
            ("is_loopback", "loopback"),
            ("is_link_local", "link-local"),
            ("is_multicast", "multicast"),
            ("is_private", "private"),
            ("is_reserved", "reserved"),
        ):
            if getattr(candidate, flag):
                return kind
        if not candidate.is_global:
            return "private"
    return None


def _refuse(host: str, address: str) -> None:
    ip = ipaddress.ip_address(address)
    kind = _kind(ip)
    if kind is None:
        return
    bare = host.lower().rstrip(".")
    if bare == str(ip) or bare == address:
        raise ToolError(f"{host} is a {kind} address; add it to http_allow_hosts to allow it")
    raise ToolError(
        f"{host} resolves to {address}, a {kind} address; add {host} to http_allow_hosts to allow it"
    )


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


async def check_url(url: str | URL, allow_hosts: frozenset[str]) -> URL:
    """Parse `url`, refuse it if it is not http(s) or reaches a non-public address; return it."""
    parsed = url if isinstance(url, URL) else _parse(url)
    if parsed.scheme not in ("http", "https"):
        scheme = f"{parsed.scheme}:" if parsed.scheme else "a URL without a scheme"
        raise ToolError(f"Only http and https URLs can be fetched, not {scheme}")
    host = parsed.host
    if not host:
        raise ToolError("The URL has no host name")
    if _allowed(host, parsed.port, allow_hosts):
        return parsed
    if _literal(host) is not None:
        _refuse(host, host)
        return parsed
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, parsed.port, type=socket.SOCK_STREAM
        )
    except socket.gaierror as e:
        raise Unreachable(str(url), f"could not resolve {host}") from e
    except UnicodeError as e:
        raise ToolError(f"{host} is not a valid host name") from e
    for info in infos:
        _refuse(host, str(info[4][0]))
    return parsed


def _parse(url: str) -> URL:
    try:
        return URL(url.strip())
    except ValueError as e:
        raise ToolError(f"{url!r} is not a valid URL") from e


class _GuardedResolver(ThreadedResolver):
    """Checks the addresses a connection really uses, so DNS rebinding between
    `check_url` and the connect cannot slip a private address through."""

    def __init__(self, allow_hosts: frozenset[str]) -> None:
        super().__init__()
        self._allow_hosts = allow_hosts

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await super().resolve(host, port, family)
        if not _allowed(host, port, self._allow_hosts):
            for r in results:
                _refuse(host, r["host"])
        return results


async def fetch(
    url: str,
    *,
    allow_hosts: frozenset[str],
    time_limit: float,
    method: str = "GET",
    json_body: Any = None,
    headers: Mapping[str, str] | None = None,
) -> Fetched:
    """Request `url`, following up to MAX_REDIRECTS redirects and checking every hop.

    Raises `ToolError` when a hop is refused, `Unreachable` when the far side cannot be
    reached or does not answer within `time_limit` seconds (redirects included).
    """
    current = await check_url(url, allow_hosts)
    connector = aiohttp.TCPConnector(resolver=_GuardedResolver(allow_hosts), use_dns_cache=False)
    sent = {"User-Agent": USER_AGENT, **(headers or {})}
    started = time.perf_counter()
    try:
        async with (
            asyncio.timeout(time_limit),
            aiohttp.ClientSession(connector=connector) as session,
        ):
            for hop in range(MAX_REDIRECTS + 1):
                async with session.request(
                    method, current, json=json_body, headers=sent, allow_redirects=False
                ) as resp:
                    location = resp.headers.get("Location")
                    if resp.status not in _REDIRECTS or not location:
                        body, truncated = await _read(resp)
                        return Fetched(
                            url=str(current),
                            status=resp.status,
                            body=body,
                            truncated=truncated,
                            charset=resp.charset or "utf-8",
                            redirects=hop,
                            latency_ms=round((time.perf_counter() - started) * 1000),
                        )
                try:
                    target = current.join(URL(location)).with_fragment(None)
                    next_hop = await check_url(target, allow_hosts)
                except Unreachable:
                    raise
                except ValueError as e:
                    raise ToolError(f"{current.host} sent a redirect to an invalid URL") from e
                except ToolError as e:
                    raise ToolError(f"Refused to follow a redirect from {current.host}: {e}") from e
                current = next_hop
                # As browsers do: these turn a POST into a GET; 307/308 keep method and body.
                if resp.status in (301, 302, 303) and method not in ("GET", "HEAD"):
                    method, json_body = "GET", None
    except TimeoutError as e:
        raise Unreachable(str(current), f"no answer within {time_limit:g} s") from e
    except (aiohttp.ClientError, OSError) as e:
        raise Unreachable(str(current), describe(e)) from e
    raise ToolError(
        f"Stopped after {MAX_REDIRECTS} redirects (the last one pointed to {current.host})"
    )


async def _read(resp: aiohttp.ClientResponse) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(64 * 1024):
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return b"".join(chunks)[:MAX_BODY_BYTES], True
    return b"".join(chunks), False


def describe(error: BaseException) -> str:
    """A few words a person understands for a connection failure."""
    if isinstance(error, aiohttp.ClientConnectorDNSError):
        return f"could not resolve {error.host}"
    if isinstance(error, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError):
        return "TLS certificate or handshake failed"
    if isinstance(error, aiohttp.ClientConnectorError):
        if isinstance(error.os_error, ConnectionRefusedError):
            return "connection refused"
        return error.os_error.strerror or str(error.os_error)
    if isinstance(error, aiohttp.ServerDisconnectedError):
        return "the server closed the connection without answering"
    return str(error) or type(error).__name__
