"""Baton's Slack app manifest: the packaged Socket Mode file and its HTTP-mode variant."""

from __future__ import annotations

from importlib.resources import files
from typing import Any
from urllib.parse import urlsplit

import yaml

from bot.errors import ManifestUrlError

# HTTP mode serves events, slash commands and interactivity on this one path.
EVENTS_PATH = "/slack/events"
# Where Slack sends a browser back after someone installs Baton (OAuth mode).
REDIRECT_PATH = "/slack/oauth_redirect"


def render_manifest(*, url: str | None = None) -> str:
    """Return the manifest as YAML: Socket Mode without a URL, HTTP mode with one."""
    # Read from the package, not the repository root, so an installed wheel works too.
    text = files("bot").joinpath("manifest.yml").read_text(encoding="utf-8")
    if url is None:
        return text
    request_url = _events_url(url)
    manifest: dict[str, Any] = yaml.safe_load(text)
    for command in manifest["features"]["slash_commands"]:
        command["url"] = request_url
    settings = manifest["settings"]
    settings["event_subscriptions"]["request_url"] = request_url
    settings["interactivity"]["request_url"] = request_url
    settings["socket_mode_enabled"] = False
    # Installing into many workspaces: Slack only redirects to URLs listed here.
    manifest["oauth_config"]["redirect_urls"] = [
        request_url.removesuffix(EVENTS_PATH) + REDIRECT_PATH
    ]
    header = f"# Baton's Slack app manifest, HTTP mode: Slack calls {request_url}\n"
    return header + yaml.safe_dump(manifest, sort_keys=False, allow_unicode=True, width=1000)


def _events_url(url: str) -> str:
    """Return the /slack/events URL under a public base URL, refusing anything but https."""
    base = url.strip()
    if not base.startswith("https://"):
        raise ManifestUrlError(
            f"the URL must start with https:// (Slack only calls https), got {url!r}"
        )
    parts = urlsplit(base)
    if not parts.hostname:
        raise ManifestUrlError(f"the URL must name a host after https://, got {url!r}")
    if parts.query or parts.fragment:
        raise ManifestUrlError(f"the URL must not have a query or fragment, got {url!r}")
    base = base.rstrip("/")
    # Accept the full endpoint too, since that is what Slack's settings pages display.
    if base.endswith(EVENTS_PATH):
        return base
    return base + EVENTS_PATH


def bot_scopes() -> list[str]:
    """The bot token scopes the manifest asks for."""
    text = files("bot").joinpath("manifest.yml").read_text(encoding="utf-8")
    manifest: dict[str, Any] = yaml.safe_load(text)
    return list(manifest["oauth_config"]["scopes"]["bot"])
