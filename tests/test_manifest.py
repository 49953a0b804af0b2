"""Baton's Slack app manifest, checked against Slack's own JSON Schema."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from referencing import Registry, Resource

from bot.manifest import render_manifest

ROOT = Path(__file__).resolve().parents[1]
# Slack's JSON Schema for app manifests, kept with the tests (tests/slack/README.md).
SCHEMA_DIR = ROOT / "tests" / "slack" / "manifest-schema"
HOST = "https://baton.example.com"
EVENTS_URL = f"{HOST}/slack/events"

# Which bot scope each subscribed event needs; None where Slack needs no scope.
EVENT_SCOPES: dict[str, str | None] = {
    "app_mention": "app_mentions:read",
    "message.im": "im:history",
    "message.channels": "channels:history",
    "message.groups": "groups:history",
    "app_home_opened": None,
    # Slack's docs: both need assistant:write (and the app's assistant_view).
    "assistant_thread_started": "assistant:write",
    "assistant_thread_context_changed": "assistant:write",
}


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    # Slack's entry schema picks a version by `_metadata` and points at the versioned
    # files by their GitHub URLs; serve those URLs from the local copies instead.
    entry = json.loads((SCHEMA_DIR / "manifest.schema.json").read_text(encoding="utf-8"))
    resources = []
    for ref in set(_refs(entry)):
        local = SCHEMA_DIR / ref.rsplit("/", 1)[-1]
        contents = json.loads(local.read_text(encoding="utf-8"))
        resources.append((ref, Resource.from_contents(contents)))
    registry: Registry[Any] = Registry().with_resources(resources)
    cls = jsonschema.validators.validator_for(entry)
    cls.check_schema(entry)
    return cls(entry, registry=registry, format_checker=cls.FORMAT_CHECKER)


def _errors(validator: jsonschema.protocols.Validator, manifest: dict[str, Any]) -> list[str]:
    """Return the innermost messages, which name the offending key under Slack's oneOf."""
    messages: list[str] = []
    pending = list(validator.iter_errors(manifest))
    while pending:
        error = pending.pop()
        if error.context:
            pending.extend(error.context)
        else:
            messages.append(error.message)
    return messages


def _load(text: str) -> dict[str, Any]:
    manifest: dict[str, Any] = yaml.safe_load(text)
    return manifest


@pytest.fixture(scope="module")
def socket_manifest() -> dict[str, Any]:
    return _load(render_manifest())


@pytest.fixture(scope="module")
def http_manifest() -> dict[str, Any]:
    return _load(render_manifest(url=HOST))


def test_socket_mode_manifest_is_valid_for_slack(
    validator: jsonschema.protocols.Validator, socket_manifest: dict[str, Any]
) -> None:
    assert _errors(validator, socket_manifest) == []
    assert socket_manifest["settings"]["socket_mode_enabled"] is True


def test_http_manifest_is_valid_for_slack(
    validator: jsonschema.protocols.Validator, http_manifest: dict[str, Any]
) -> None:
    assert _errors(validator, http_manifest) == []


def test_http_manifest_sends_events_commands_and_clicks_to_one_url(
    http_manifest: dict[str, Any],
) -> None:
    settings = http_manifest["settings"]
    assert settings["event_subscriptions"]["request_url"] == EVENTS_URL
    assert settings["interactivity"]["request_url"] == EVENTS_URL
    assert [c["url"] for c in http_manifest["features"]["slash_commands"]] == [EVENTS_URL]
    assert settings["socket_mode_enabled"] is False


def test_http_manifest_changes_nothing_but_the_urls_and_socket_mode(
    socket_manifest: dict[str, Any], http_manifest: dict[str, Any]
) -> None:
    stripped = copy.deepcopy(http_manifest)
    for command in stripped["features"]["slash_commands"]:
        del command["url"]
    del stripped["settings"]["event_subscriptions"]["request_url"]
    del stripped["settings"]["interactivity"]["request_url"]
    stripped["settings"]["socket_mode_enabled"] = True
    assert stripped == socket_manifest


@pytest.mark.parametrize(
    "url",
    [HOST, f"{HOST}/", f"{HOST}//", f"  {HOST}  ", EVENTS_URL, f"{EVENTS_URL}/"],
)
def test_request_url_is_the_events_path_under_the_given_host(url: str) -> None:
    manifest = _load(render_manifest(url=url))
    assert manifest["settings"]["event_subscriptions"]["request_url"] == EVENTS_URL


def test_request_url_keeps_a_path_prefix_for_a_reverse_proxy() -> None:
    manifest = _load(render_manifest(url=f"{HOST}/baton/"))
    assert manifest["settings"]["interactivity"]["request_url"] == f"{HOST}/baton/slack/events"


@pytest.mark.parametrize(
    "url", ["http://baton.example.com", "baton.example.com", "ftp://baton.example.com", ""]
)
def test_non_https_url_is_refused_with_a_clear_message(url: str) -> None:
    with pytest.raises(ValueError, match="the URL must start with https://"):
        render_manifest(url=url)


@pytest.mark.parametrize("url", ["https://", "https:///slack/events"])
def test_url_without_a_host_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="must name a host"):
        render_manifest(url=url)


def test_url_with_a_query_is_refused() -> None:
    with pytest.raises(ValueError, match="query or fragment"):
        render_manifest(url=f"{HOST}/?team=T1")


def test_every_subscribed_event_has_the_scope_it_needs(socket_manifest: dict[str, Any]) -> None:
    scopes = set(socket_manifest["oauth_config"]["scopes"]["bot"])
    events = socket_manifest["settings"]["event_subscriptions"]["bot_events"]
    # A new event must be added to EVENT_SCOPES, so its scope is thought about.
    assert set(events) <= EVENT_SCOPES.keys()
    needed = {EVENT_SCOPES[event] for event in events} - {None}
    assert needed <= scopes


def test_slash_command_posting_and_assistant_scopes_are_requested(
    socket_manifest: dict[str, Any],
) -> None:
    scopes = socket_manifest["oauth_config"]["scopes"]["bot"]
    assert [c["command"] for c in socket_manifest["features"]["slash_commands"]] == ["/baton"]
    assert {"commands", "chat:write", "assistant:write"} <= set(scopes)
    assert len(scopes) == len(set(scopes))


def test_each_scope_says_why_it_is_needed(socket_manifest: dict[str, Any]) -> None:
    lines = (ROOT / "manifest.yml").read_text(encoding="utf-8").splitlines()
    for scope in socket_manifest["oauth_config"]["scopes"]["bot"]:
        above = lines[lines.index(f"      - {scope}") - 1].strip()
        assert above.startswith("# "), f"no comment says why {scope} is needed"


def test_events_commands_and_clicks_are_enabled(socket_manifest: dict[str, Any]) -> None:
    settings = socket_manifest["settings"]
    assert {"app_mention", "message.im", "message.channels", "message.groups"} <= set(
        settings["event_subscriptions"]["bot_events"]
    )
    assert settings["interactivity"]["is_enabled"] is True
    home = socket_manifest["features"]["app_home"]
    assert home["home_tab_enabled"] is True
    assert home["messages_tab_read_only_enabled"] is False


def test_background_color_is_a_hex_color_slack_accepts(
    socket_manifest: dict[str, Any],
) -> None:
    # Slack's schema spells this check "regex", a keyword JSON Schema ignores, so apply it here.
    schema = json.loads((SCHEMA_DIR / "manifest.schema.1.0.0.json").read_text(encoding="utf-8"))
    rule = schema["definitions"]["app-manifests.v1.display_information.schema"]["properties"]
    pattern = rule["background_color"]["regex"]
    assert re.fullmatch(pattern, socket_manifest["display_information"]["background_color"])


def test_socket_mode_render_is_the_packaged_file_as_written() -> None:
    assert render_manifest() == (ROOT / "bot" / "manifest.yml").read_text(encoding="utf-8")


def test_root_manifest_and_packaged_manifest_are_identical() -> None:
    # The root copy is what people open; the packaged copy is what an installed wheel renders.
    assert (ROOT / "manifest.yml").read_bytes() == (ROOT / "bot" / "manifest.yml").read_bytes()


def test_schema_refuses_an_unknown_top_level_key(
    validator: jsonschema.protocols.Validator, socket_manifest: dict[str, Any]
) -> None:
    broken = copy.deepcopy(socket_manifest)
    broken["slash_commands"] = broken["features"].pop("slash_commands")
    unexpected = "Additional properties are not allowed ('slash_commands' was unexpected)"
    assert unexpected in _errors(validator, broken)


def test_schema_refuses_a_display_name_over_slacks_limit(
    validator: jsonschema.protocols.Validator, socket_manifest: dict[str, Any]
) -> None:
    broken = copy.deepcopy(socket_manifest)
    broken["display_information"]["name"] = "B" * 36
    assert f"'{'B' * 36}' is too long" in _errors(validator, broken)


def test_schema_refuses_a_slash_command_url_without_a_scheme(
    validator: jsonschema.protocols.Validator, http_manifest: dict[str, Any]
) -> None:
    broken = copy.deepcopy(http_manifest)
    broken["features"]["slash_commands"][0]["url"] = "baton.example.com/slack/events"
    assert any("does not match" in message for message in _errors(validator, broken))


# The bot scopes each Web API method Baton calls needs (Slack's method pages, "Required
# scopes"; bot tokens). A method the code starts calling must be added here, so its scope
# is thought about; `auth.test` and `views.*` need none.
METHOD_SCOPES: dict[str, set[str]] = {
    "auth.test": set(),
    # Digests go to the channel a schedule was made in, which Baton may not have joined.
    "chat.postMessage": {"chat:write", "chat:write.public"},
    "chat.postEphemeral": {"chat:write"},
    "chat.update": {"chat:write"},
    "chat.startStream": {"chat:write"},
    "chat.appendStream": {"chat:write"},
    "chat.stopStream": {"chat:write"},
    # Channels, private channels and DMs: Baton serves all three (no group DMs).
    "conversations.history": {"channels:history", "groups:history", "im:history"},
    "conversations.replies": {"channels:history", "groups:history", "im:history"},
    "conversations.members": {"channels:read", "groups:read", "im:read"},
    "conversations.open": {"im:write"},
    "conversations.info": {"channels:read", "groups:read", "im:read"},
    "assistant.threads.setStatus": {"assistant:write"},
    "assistant.threads.setSuggestedPrompts": {"assistant:write"},
    "assistant.threads.setTitle": {"assistant:write"},
    "chat.getPermalink": set(),
    "usergroups.users.list": {"usergroups:read"},
    "users.info": {"users:read"},
    "views.open": set(),
    "views.publish": set(),
}
# Manifest features that need a scope of their own.
FEATURE_SCOPES = {"assistant_view": "assistant:write", "slash_commands": "commands"}
PACKAGES = ("bot", "agents", "orchestration", "storage")


def web_api_methods_called() -> dict[str, set[str]]:
    """Every Web API method Baton's code calls, found in the source: calls of the Slack
    client's methods (`client.chat_postMessage(…)`) and `api_call("…")` by name, mapped to
    the method each client function calls. The sandbox (Slack's stand-in) is left out."""
    import ast
    import inspect

    from slack_sdk.web.async_client import AsyncWebClient

    def methods_of(function: str) -> set[str]:
        source = inspect.getsource(getattr(AsyncWebClient, function))
        return set(re.findall(r'api_call\(\s*"([\w.]+)"', source))

    client_functions = {
        name
        for name in dir(AsyncWebClient)
        if not name.startswith("_") and callable(getattr(AsyncWebClient, name))
    }
    found: dict[str, set[str]] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "sandbox" in path.relative_to(ROOT).parts:
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                    continue
                name = node.func.attr
                if name == "api_call" and node.args and isinstance(node.args[0], ast.Constant):
                    called = {str(node.args[0].value)}
                elif name in client_functions and name != "api_call":
                    called = methods_of(name)
                else:
                    continue
                for method in called:
                    found.setdefault(method, set()).add(str(path.relative_to(ROOT)))
    return found


def test_the_manifest_asks_for_exactly_the_scopes_the_code_uses(
    socket_manifest: dict[str, Any],
) -> None:
    called = web_api_methods_called()
    # The scan sees the calls it must: a scan that found nothing would prove nothing.
    assert {"chat.postMessage", "chat.startStream", "conversations.members"} <= called.keys()
    unknown = sorted(called.keys() - METHOD_SCOPES.keys())
    assert not unknown, f"add the scopes these methods need to METHOD_SCOPES: {unknown}"

    needed = set().union(*(METHOD_SCOPES[m] for m in called))
    events = socket_manifest["settings"]["event_subscriptions"]["bot_events"]
    needed |= {EVENT_SCOPES[e] for e in events if EVENT_SCOPES.get(e)}  # type: ignore[misc]
    features = socket_manifest["features"]
    needed |= {scope for feature, scope in FEATURE_SCOPES.items() if features.get(feature)}

    requested = set(socket_manifest["oauth_config"]["scopes"]["bot"])
    assert requested - needed == set(), "requested but never used"
    assert needed - requested == set(), "used but not requested"
