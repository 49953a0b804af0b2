"""Configuration, read once from the environment (and `.env`), checked before anything starts.

Nothing else in Baton reads `os.environ`: the bot hands what each part needs to it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from storage.db import normalize_url

Mode = Literal["socket", "http"]


class ConfigError(Exception):
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

    baton_database_url: str = "sqlite:///baton.db"
    baton_model: str | None = None
    baton_agents_file: Path | None = None
    baton_port: int = Field(default=3000, ge=1, le=65535)

    # Show progress with Slack's streaming API (off: one status message edited in place).
    baton_streaming: bool = True
    # Hosts the HTTP tools may reach on private/loopback addresses (comma-separated).
    baton_http_allow_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    baton_max_parallel: int = Field(default=4, ge=1, le=32)
    baton_task_timeout: float = Field(default=180.0, gt=0)
    baton_run_deadline: float = Field(default=600.0, gt=0)
    baton_budget_usd: float | None = Field(default=None, gt=0)
    baton_log_level: str = "INFO"
    # A schedule's fire missed while Baton was down runs late if it is at most this old (s).
    baton_schedule_grace: float = Field(default=600.0, ge=0)
    # User or user-group ids (comma-separated) who may stop any run.
    baton_admins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Seconds a run's driver may go without renewing its lease before another process (or
    # this one, after a crash) takes the run over.
    baton_lease_seconds: float = Field(default=30.0, ge=1, le=3600)
    # Seconds to wait for one answer from Slack's Web API.
    baton_slack_timeout: float = Field(default=30.0, gt=0, le=300)

    @field_validator("baton_http_allow_hosts", "baton_admins", mode="before")
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
    def has_slack_credentials(self) -> bool:
        return self.slack_bot_token is not None and (
            self.slack_app_token is not None or self.slack_signing_secret is not None
        )


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
    if not bot:
        problems.append(
            "SLACK_BOT_TOKEN is not set: copy the Bot User OAuth Token (xoxb-…) from your app's 'OAuth & Permissions' page"
        )
    elif not bot.startswith("xoxb-"):
        problems.append("SLACK_BOT_TOKEN must be a bot token starting with xoxb-")
    if mode == "socket":
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
    if settings.slack_client_id and settings.slack_client_secret:
        problems.append(
            "SLACK_CLIENT_ID and SLACK_CLIENT_SECRET are both set: that switches Slack's SDK into multi-workspace OAuth mode and ignores SLACK_BOT_TOKEN; unset them"
        )
    if not settings.slack_api_url.startswith(("https://", "http://")):
        problems.append("SLACK_API_URL must be an http(s) URL, e.g. https://slack.com/api/")
    problems += check_common(settings)
    if problems:
        raise ConfigError(problems)


def check_common(settings: Settings) -> list[str]:
    """Checks every mode shares (the sandbox too)."""
    problems: list[str] = []
    try:
        normalize_url(settings.baton_database_url)
    except ValueError:
        problems.append(
            "BATON_DATABASE_URL must be an SQLAlchemy URL such as sqlite:///baton.db or postgresql://user@host/db"
        )
    model = settings.default_model
    if model != "rules" and not (
        model.startswith(("openai:", "anthropic:")) and model.partition(":")[2]
    ):
        problems.append(
            f"BATON_MODEL must be 'provider:model-id' (openai:gpt-4.1-mini, anthropic:claude-sonnet-4-6) or 'rules', not '{model}'"
        )
    if settings.baton_agents_file is not None and not settings.baton_agents_file.is_file():
        problems.append(f"BATON_AGENTS_FILE: no such file: {settings.baton_agents_file}")
    return problems
