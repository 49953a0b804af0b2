"""Start-up: configuration, the catalog and the `baton` command say clearly what is wrong."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from agents.errors import CatalogError, TransientModelError
from agents.messages import Message, ModelRequest
from agents.providers.registry import Models
from agents.spec import load_catalog, parse_catalog
from agents.tools.registry import tool_names
from bot.app import limits_from, model_settings
from bot.config import ConfigError, Settings, check, check_common, load_settings
from testkit.fakes.model_servers import FakeOpenAI, Reply

ROOT = Path(__file__).resolve().parents[1]


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_baton_model_is_rules_without_a_key_and_a_real_model_with_one() -> None:
    assert settings().default_model == "rules"
    assert settings(openai_api_key="sk-x").default_model == "openai:gpt-4.1-mini"
    assert settings(anthropic_api_key="sk-ant").default_model == "anthropic:claude-sonnet-4-6"
    assert settings(openai_api_key="sk-x", baton_model="rules").default_model == "rules"


def test_socket_mode_names_every_missing_or_wrong_variable_without_secrets() -> None:
    with pytest.raises(ConfigError) as caught:
        check(settings(slack_bot_token="xoxp-user-token-secret", slack_api_url="ftp://x"), "socket")
    lines = caught.value.problems
    assert any(line.startswith("SLACK_BOT_TOKEN must be a bot token") for line in lines)
    assert any(line.startswith("SLACK_APP_TOKEN is not set") for line in lines)
    assert any(line.startswith("SLACK_API_URL") for line in lines)
    assert "xoxp-user-token-secret" not in str(caught.value)


def test_http_mode_needs_the_signing_secret() -> None:
    with pytest.raises(ConfigError) as caught:
        check(settings(slack_bot_token="xoxb-1"), "http")
    assert [p.split(" ")[0] for p in caught.value.problems] == ["SLACK_SIGNING_SECRET"]
    check(settings(slack_bot_token="xoxb-1", slack_signing_secret="s"), "http")


def test_oauth_variables_that_would_silently_take_over_are_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        check(
            settings(
                slack_bot_token="xoxb-1",
                slack_signing_secret="s",
                slack_client_id="1",
                slack_client_secret="2",
            ),
            "http",
        )
    assert "SLACK_CLIENT_ID and SLACK_CLIENT_SECRET" in caught.value.problems[0]


def test_oauth_mode_needs_http_and_the_signing_secret_but_no_bot_token() -> None:
    oauth = {"slack_client_id": "1.2", "slack_client_secret": "c"}
    check(settings(slack_signing_secret="s", **oauth), "http")
    assert settings(**oauth).oauth and not settings(slack_bot_token="xoxb-1", **oauth).oauth
    with pytest.raises(ConfigError) as caught:
        check(settings(**oauth), "http")
    assert [p.split(" ")[0] for p in caught.value.problems] == ["SLACK_SIGNING_SECRET"]
    with pytest.raises(ConfigError) as caught:
        check(settings(slack_signing_secret="s", **oauth), "socket")
    [problem] = caught.value.problems
    assert "needs HTTP: run `baton run --http`" in problem


def test_half_of_the_oauth_credentials_names_the_other_half() -> None:
    with pytest.raises(ConfigError) as caught:
        check(settings(slack_signing_secret="s", slack_client_id="1.2"), "http")
    [problem] = caught.value.problems
    assert problem.startswith("SLACK_CLIENT_SECRET is not set")


async def test_baton_model_timeout_is_how_long_each_model_call_may_take(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert model_settings(settings()).timeout == 60.0
    async with FakeOpenAI() as server:
        monkeypatch.setenv("BATON_MODEL_TIMEOUT", "0.2")
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        models = Models(model_settings(load_settings(_env_file=None)), {})
        server.queue(Reply(hang=True))
        binding = models.resolve("openai:gpt-4.1-mini")
        request = ModelRequest(
            model=binding.model_id, system="", messages=[Message(role="user", content="Hi")]
        )
        try:
            # Cut at 0.2 s, not at the 60 s default (which the outer limit would end first).
            with pytest.raises(TransientModelError, match="did not answer in time"):
                await asyncio.wait_for(binding.provider.complete(request), 10)
        finally:
            await models.aclose()


def test_bad_values_in_the_environment_name_their_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATON_PORT", "not-a-port")
    monkeypatch.setenv("BATON_MAX_PARALLEL", "0")
    with pytest.raises(ConfigError) as caught:
        load_settings(_env_file=None)
    names = sorted(p.split(":")[0] for p in caught.value.problems)
    assert names == ["BATON_MAX_PARALLEL", "BATON_PORT"]


def test_model_settings_that_cannot_work_stop_start_up_with_one_line_each(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_COMPAT", "llama-cpp-python,json_schema=maybe")
    monkeypatch.setenv("BATON_FALLBACK_MODELS", "rules, gpt-4o")
    monkeypatch.setenv("BATON_BUDGET_TOKENS", "50000")
    settings = load_settings(_env_file=None)

    assert settings.baton_fallback_models == ["rules", "gpt-4o"]
    assert check_common(settings) == [
        "BATON_FALLBACK_MODELS: 'gpt-4o' is not 'provider:model-id' or 'rules'",
        "OPENAI_COMPAT: 'json_schema=maybe': use true, false or auto",
    ]
    assert limits_from(settings).budget_tokens == 50000


def test_a_catalog_with_a_bad_fallback_or_compat_key_is_refused(tmp_path: Path) -> None:
    text = """
agents:
  - name: a
    description: A.
    fallbacks: [openai:gpt-4.1-mini, somebody]
openai_compat:
  json_schema: false
  grammar: true
"""
    with pytest.raises(CatalogError) as caught:
        parse_catalog(text, source="agents.yml", known_tools=tool_names())

    problems = str(caught.value).splitlines()
    assert problems[0].startswith("agents.yml: agents[0] (a).fallbacks: Value error, 'somebody'")
    assert problems[1].startswith("agents.yml: openai_compat.grammar: Extra inputs")


def test_the_built_in_catalog_loads() -> None:
    catalog = load_catalog(None, known_tools=tool_names())
    assert {"web-checker", "channel-reader", "calculator", "writer", "reviewer", "announcer"} <= {
        a.name for a in catalog.agents
    }


def test_a_broken_catalog_names_the_file_the_entry_and_the_problem(tmp_path: Path) -> None:
    path = tmp_path / "agents.yml"
    path.write_text(
        "agents:\n"
        "  - {name: ok-agent, description: fine, tools: [http_check]}\n"
        "  - {name: scout, description: looks, tools: [telepathy], model: 'gpt4'}\n"
        "playbooks:\n"
        "  - name: loop\n    description: cyclic\n    tasks:\n"
        "      - {id: a, agent: ok-agent, instruction: x, depends_on: [b]}\n"
        "      - {id: b, agent: ghost, instruction: y, depends_on: [a]}\n"
        "      - {id: c, agent: ok-agent, instruction: z, depends_on: [c]}\n"
    )
    with pytest.raises(CatalogError) as caught:
        load_catalog(path, known_tools=tool_names())
    text = str(caught.value)
    assert f"{path}: agents[1] (scout).model" in text
    path.write_text(path.read_text().replace("model: 'gpt4'", "model: rules"))
    with pytest.raises(CatalogError) as caught:
        load_catalog(path, known_tools=tool_names())
    lines = str(caught.value).splitlines()
    assert f"{path}: agents (scout): unknown tool 'telepathy'" in lines[0]
    assert any("task 'b' uses unknown agent 'ghost'" in line for line in lines)
    assert any("cycle" in line for line in lines)
    assert any("playbooks (loop): task 'c' depends on itself" in line for line in lines)


def test_invalid_yaml_is_reported_with_the_file() -> None:
    with pytest.raises(CatalogError, match=r"my\.yml: not valid YAML"):
        parse_catalog("agents: [", source="my.yml", known_tools=tool_names())


def baton(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), **(env or {})},
        timeout=60,
    )


def test_baton_manifest_prints_the_http_variant_for_a_url() -> None:
    result = baton("manifest", "--url", "https://baton.example.com")
    assert result.returncode == 0
    assert "request_url: https://baton.example.com/slack/events" in result.stdout
    bad = baton("manifest", "--url", "http://insecure")
    assert bad.returncode == 2 and "must start with https://" in bad.stderr


def test_baton_run_with_a_wrong_token_stops_with_one_line_per_problem(tmp_path: Path) -> None:
    result = baton(
        "run",
        "--http",
        env={"SLACK_BOT_TOKEN": "xoxp-nope", "BATON_DATABASE_URL": f"sqlite:///{tmp_path}/x.db"},
    )
    assert result.returncode == 2
    assert "Baton cannot start:" in result.stderr
    assert "  - SLACK_BOT_TOKEN must be a bot token starting with xoxb-" in result.stderr
    assert "  - SLACK_SIGNING_SECRET is not set" in result.stderr
    assert "xoxp-nope" not in result.stderr and "Traceback" not in result.stderr


def test_baton_run_with_an_unreachable_database_says_so_in_one_line(tmp_path: Path) -> None:
    from testkit.processes import free_port

    result = baton(
        "run",
        "--http",
        "--port",
        str(free_port()),
        env={
            "SLACK_BOT_TOKEN": "xoxb-0000-baton-sandbox",
            "SLACK_SIGNING_SECRET": "secret",
            "BATON_DATABASE_URL": f"postgresql://nobody@127.0.0.1:{free_port()}/baton",
        },
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[0] == "Baton cannot start:" and len(lines) == 2
    assert lines[1].startswith("  - BATON_DATABASE_URL: cannot use the database (")
    assert "Traceback" not in result.stderr
