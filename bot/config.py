"""Configuration, read once from the environment (and `.env`), checked before anything starts.

Nothing else in Baton reads `os.environ`: the bot hands what each part needs to it.
"""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from agents.errors import CompatError
from agents.providers.capabilities import parse_compat
from bot.errors import BotError
from storage.db import normalize_url
from storage.errors import DatabaseUrlError

Mode = Literal["socket", "http"]

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class LogFormat(StrEnum):
    TEXT = "text"  # one readable line per record
    JSON = "json"  # one JSON object per line, for log collectors


class ConfigError(BotError):
    """Start-up stops: one line per problem, each naming the variable (never its secret)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    slack_bot_token: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"
    slack_client_id: str | None = None
    slack_client_secret: SecretStr | None = None

    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    anthropic_api_key: SecretStr | None = None
    anthropic_base_url: str | None = None

    # What the OpenAI-compatible endpoint accepts: `llama-cpp-python,json_schema=false,…`.
    openai_compat: str | None = None

    # Secret: a PostgreSQL URL may carry its password. Read it with `database_url`.
    baton_database_url: SecretStr = SecretStr("sqlite:///baton.db")
    # Upgrade the database's schema at start-up. Unset: on for SQLite, off for PostgreSQL.
    baton_auto_migrate: bool | None = None
    baton_model: str | None = None
    # Models that take over, in order, when BATON_MODEL keeps failing (comma-separated).
    baton_fallback_models: Annotated[list[str], NoDecode] = Field(default_factory=list)
    baton_agents_file: Path | None = None
    baton_port: int = Field(default=3000, ge=1, le=65535)
    # Socket Mode serves no HTTP: with this port, `/healthz` and `/metrics` are served there.
    baton_metrics_port: int | None = Field(default=None, ge=1, le=65535)

    # Show progress with Slack's streaming API (off: one status message edited in place).
    baton_streaming: bool = True
    # Hosts the HTTP tools may reach on private/loopback addresses (comma-separated).
    baton_http_allow_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    baton_max_parallel: int = Field(default=4, ge=1, le=32)
    baton_task_timeout: float = Field(default=180.0, gt=0)
    baton_run_deadline: float = Field(default=600.0, gt=0)
    baton_budget_usd: float | None = Field(default=None, gt=0)
    baton_budget_tokens: int | None = Field(default=None, gt=0)
    # Unset: INFO for `baton run`, WARNING for the sandbox (its console stays quiet).
    baton_log_level: str | None = None
    # Unset: text when the log goes to a terminal, JSON otherwise (a file, a collector).
    baton_log_format: LogFormat | None = None
    # Seconds one MCP tool call may take before it is cancelled.
    baton_tool_timeout: float = Field(default=60.0, gt=0)
    # Seconds to wait for one answer from a model (each attempt; a slow local server may need
    # more). A task's own limit, BATON_TASK_TIMEOUT, still ends a task that runs longer.
    baton_model_timeout: float = Field(default=60.0, gt=0)
    # A schedule's fire missed while Baton was down runs late if it is at most this old (s).
    baton_schedule_grace: float = Field(default=600.0, ge=0)
    # User or user-group ids (comma-separated) who may stop any run.
    baton_admins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Seconds a run's driver may go without renewing its lease before another process (or
    # this one, after a crash) takes the run over.
    baton_lease_seconds: float = Field(default=30.0, ge=1, le=3600)
    # Who drives runs: `inline` (the process that receives Slack's requests) or `external`
    # (`baton worker` processes; the receiving process only stores, acks and hands over).
    baton_workers: Literal["inline", "external"] = "inline"
    # Runs one `baton worker` drives at once.
    baton_worker_runs: int = Field(default=50, ge=1, le=1000)
    # Seconds to wait for one answer from Slack's Web API.
    baton_slack_timeout: float = Field(default=30.0, gt=0, le=300)

    # OpenTelemetry: traces are exported over OTLP/HTTP only when an endpoint is set.
    otel_exporter_otlp_endpoint: str | None = None
    otel_service_name: str = "baton"
    # Prompts, answers and tool arguments in spans: off unless asked for.
    otel_instrumentation_genai_capture_message_content: bool = False

    @field_validator("baton_log_level")
    @classmethod
    def _known_level(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if value.upper() not in LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}, not '{value}'")
        return value.upper()

    @field_validator(
        "baton_http_allow_hosts", "baton_fallback_models", "baton_admins", mode="before"
    )
    @classmethod
    def _split_list(cls, value: object) -> object:
        if isinstance(value, str):
            return [h.strip() for h in value.split(",") if h.strip()]
        return value

    @property
    def default_model(self) -> str:
        """BATON_MODEL, else a sensible model for the key that is set, else `rules`."""
        if self.baton_model:
            return self.baton_model
        if self.openai_api_key or self.openai_base_url:
            return "openai:gpt-4.1-mini"
        if self.anthropic_api_key:
            return "anthropic:claude-sonnet-4-6"
        return "rules"

    @property
    def auto_migrate(self) -> bool:
        """BATON_AUTO_MIGRATE, else on for SQLite (one Baton, one file) and off for PostgreSQL.

        With PostgreSQL, replicas and backups are the operator's to plan: `baton db upgrade`.
        """
        if self.baton_auto_migrate is not None:
            return self.baton_auto_migrate
        return not self.database_url.startswith("postgres")

    def secret_values(self) -> list[str]:
        """Every secret value configured here (and the database URL's password), to redact."""
        values = [
            v.get_secret_value()
            for v in (
                self.slack_bot_token,
                self.slack_app_token,
                self.slack_signing_secret,
                self.slack_client_secret,
                self.openai_api_key,
                self.anthropic_api_key,
            )
            if v is not None
        ]
        try:
            from sqlalchemy.engine import make_url

            password = make_url(self.database_url).password
        except Exception:  # a malformed URL is reported by database_problems
            password = None
        if password:
            values.append(str(password))
        return values

    @property
    def database_url(self) -> str:
        """BATON_DATABASE_URL itself, for the code that connects (never to be shown)."""
        return self.baton_database_url.get_secret_value()

    @property
    def oauth(self) -> bool:
        """Installed into many workspaces through OAuth: a client id and secret, no bot token."""
        return (
            self.slack_bot_token is None
            and bool(self.slack_client_id)
            and self.slack_client_secret is not None
        )

    @property
    def has_slack_credentials(self) -> bool:
        return self.slack_bot_token is not None and (
            self.slack_app_token is not None or self.slack_signing_secret is not None
        )


def environment(env_file: Path | None = Path(".env")) -> dict[str, str]:
    """The variables a catalog's MCP server entries may name: `.env`, then the environment."""
    from dotenv import dotenv_values

    found: dict[str, str] = {}
    if env_file is not None and env_file.is_file():
        found.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    found.update(os.environ)
    return found


def secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


def load_settings(**overrides: object) -> Settings:
    """Read the environment and `.env`; ConfigError with one line per bad variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as e:
        problems = []
        for err in e.errors():
            name = str(err["loc"][0]).upper() if err["loc"] else "configuration"
            problems.append(f"{name}: {err['msg']}")
        raise ConfigError(problems) from e


def check(settings: Settings, mode: Mode) -> None:
    """What this mode needs, and what would silently misbehave. Raises ConfigError."""
    problems: list[str] = []
    bot = secret(settings.slack_bot_token)
    if settings.oauth:
        problems += _oauth_problems(settings, mode)
    elif bool(settings.slack_client_id) != (settings.slack_client_secret is not None) and not bot:
        missing = "SLACK_CLIENT_SECRET" if settings.slack_client_id else "SLACK_CLIENT_ID"
        problems.append(
            f"{missing} is not set: installing into many workspaces needs both SLACK_CLIENT_ID and SLACK_CLIENT_SECRET ('Basic Information' → 'App Credentials')"
        )
    elif not bot:
        problems.append(
            "SLACK_BOT_TOKEN is not set: copy the Bot User OAuth Token (xoxb-…) from your app's 'OAuth & Permissions' page"
        )
    elif not bot.startswith("xoxb-"):
        problems.append("SLACK_BOT_TOKEN must be a bot token starting with xoxb-")
    if mode == "socket" and not settings.oauth:
        app = secret(settings.slack_app_token)
        if not app:
            problems.append(
                "SLACK_APP_TOKEN is not set: Socket Mode needs an app-level token (xapp-…) with connections:write ('Basic Information' → 'App-Level Tokens'), or run with --http"
            )
        elif not app.startswith("xapp-"):
            problems.append("SLACK_APP_TOKEN must be an app-level token starting with xapp-")
    if mode == "http" and not secret(settings.slack_signing_secret):
        problems.append(
            "SLACK_SIGNING_SECRET is not set: HTTP mode needs it to check Slack's signatures ('Basic Information' → 'Signing Secret')"
        )
    if bot and settings.slack_client_id and settings.slack_client_secret:
        problems.append(
            "SLACK_CLIENT_ID and SLACK_CLIENT_SECRET are set beside SLACK_BOT_TOKEN: set SLACK_BOT_TOKEN for one workspace, or the client id and secret (and no bot token) to install into many"
        )
    if not settings.slack_api_url.startswith(("https://", "http://")):
        problems.append("SLACK_API_URL must be an http(s) URL, e.g. https://slack.com/api/")
    problems += check_common(settings)
    if problems:
        raise ConfigError(problems)


def _oauth_problems(settings: Settings, mode: Mode) -> list[str]:
    if mode != "http":
        return [
            "SLACK_CLIENT_ID and SLACK_CLIENT_SECRET install Baton into many workspaces, which needs HTTP: run `baton run --http`"
        ]
    return []


def check_common(settings: Settings) -> list[str]:
    """Checks every mode shares (the sandbox too)."""
    problems = database_problems(settings)
    model = settings.default_model
    if model != "rules" and not (
        model.startswith(("openai:", "anthropic:")) and model.partition(":")[2]
    ):
        problems.append(
            f"BATON_MODEL must be 'provider:model-id' (openai:gpt-4.1-mini, anthropic:claude-sonnet-4-6) or 'rules', not '{model}'"
        )
    for fallback in settings.baton_fallback_models:
        if fallback != "rules" and not (
            fallback.startswith(("openai:", "anthropic:")) and fallback.partition(":")[2]
        ):
            problems.append(
                f"BATON_FALLBACK_MODELS: '{fallback}' is not 'provider:model-id' or 'rules'"
            )
    if settings.openai_compat:
        try:
            parse_compat(settings.openai_compat)
        except CompatError as e:
            problems.append(f"OPENAI_COMPAT: {e}")
    if settings.baton_agents_file is not None and not settings.baton_agents_file.is_file():
        problems.append(f"BATON_AGENTS_FILE: no such file: {settings.baton_agents_file}")
    endpoint = settings.otel_exporter_otlp_endpoint
    if endpoint and not endpoint.startswith(("https://", "http://")):
        problems.append(
            "OTEL_EXPORTER_OTLP_ENDPOINT must be the collector's http(s) base URL, e.g. http://127.0.0.1:4318"
        )
    return problems


def database_problems(settings: Settings) -> list[str]:
    """BATON_DATABASE_URL must be a URL SQLAlchemy can use."""
    try:
        normalize_url(settings.database_url)
    except DatabaseUrlError:
        return [
            "BATON_DATABASE_URL must be an SQLAlchemy URL such as sqlite:///baton.db or postgresql://user@host/db"
        ]
    return []
