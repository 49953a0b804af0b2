"""`mcp_servers:` entries in the agent catalog, and the environment variables they name."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# A value may name an environment variable, so secrets stay out of the catalog file.
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_SERVER_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]|_(?!_)){0,39}$")


class McpServerSpec(BaseModel):
    """One MCP server: a command Baton starts (stdio) or a URL it connects to."""

    model_config = ConfigDict(extra="forbid")

    name: str
    # stdio: the program and its arguments, e.g. [python, -m, tickets_server].
    command: list[str] | None = Field(default=None, min_length=1)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: Path | None = None
    # Streamable HTTP: the endpoint, e.g. https://tickets.example.com/mcp.
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name_form(cls, value: str) -> str:
        if not _SERVER_NAME.match(value):
            raise ValueError(
                "use lowercase letters, digits, '-' or single '_' (at most 40 characters)"
            )
        return value

    @field_validator("url")
    @classmethod
    def _url_form(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError(f"'{value}' is not an http(s) URL")
        return value

    @model_validator(mode="after")
    def _one_transport(self) -> McpServerSpec:
        if (self.command is None) == (self.url is None):
            raise ValueError("give either 'command' (a stdio server) or 'url' (Streamable HTTP)")
        if self.url is not None and (self.env or self.cwd is not None):
            raise ValueError("'env' and 'cwd' are for a 'command'; an HTTP server takes 'headers'")
        if self.command is not None and self.headers:
            raise ValueError("'headers' are for a 'url'; a stdio server takes 'env'")
        return self

    @property
    def transport(self) -> str:
        """How Baton talks to it, as a person reads it."""
        return "stdio" if self.command is not None else "Streamable HTTP"


def variables(spec: McpServerSpec) -> dict[str, list[str]]:
    """The environment variables each `env`/`headers` value names, by `env.X` / `headers.X`."""
    named: dict[str, list[str]] = {}
    for section, values in (("env", spec.env), ("headers", spec.headers)):
        for key, value in values.items():
            found = _VARIABLE.findall(value)
            if found:
                named[f"{section}.{key}"] = found
    return named


def missing_variables(specs: list[McpServerSpec], environ: Mapping[str, str]) -> list[str]:
    """One line per value that names a variable which is not set."""
    problems = []
    for spec in specs:
        for where, names in variables(spec).items():
            for name in names:
                if name not in environ:
                    problems.append(
                        f"mcp_servers ({spec.name}): {where} names ${{{name}}}, which is not set"
                    )
    return problems


def expand(values: Mapping[str, str], environ: Mapping[str, str]) -> dict[str, str]:
    """The values with every `${NAME}` replaced by that variable (empty if unset)."""
    return {
        key: _VARIABLE.sub(lambda m: environ.get(m.group(1), ""), value)
        for key, value in values.items()
    }
