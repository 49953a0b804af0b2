"""From `provider:model-id` to a provider instance and the id it expects."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from agents.providers.base import ModelProvider
from agents.providers.rules import RulesProvider
from agents.spec import Catalog
from agents.tools.base import Tool


@dataclass(frozen=True)
class ModelSettings:
    """What the providers need, handed over by whoever read the configuration."""

    default_model: str = "rules"
    openai_api_key: str | None = None
    openai_base_url: str | None = None
    anthropic_api_key: str | None = None
    anthropic_base_url: str | None = None
    timeout: float = 60.0


@dataclass(frozen=True)
class Binding:
    """A resolved model: call `provider` with `model_id`; `ref` names it in prices and logs."""

    provider: ModelProvider
    model_id: str
    ref: str


class Models:
    """Creates each provider once, on first use."""

    def __init__(self, settings: ModelSettings, tools: Mapping[str, Tool]) -> None:
        self.settings = settings
        self._tools = tools
        self._providers: dict[str, ModelProvider] = {}

    def ref(self, model: str) -> str:
        """`default` means BATON_MODEL."""
        return self.settings.default_model if model == "default" else model

    def resolve(self, model: str) -> Binding:
        ref = self.ref(model)
        vendor, _, model_id = ref.partition(":")
        return Binding(provider=self._provider(vendor), model_id=model_id or vendor, ref=ref)

    def _provider(self, vendor: str) -> ModelProvider:
        if vendor not in self._providers:
            self._providers[vendor] = self._create(vendor)
        return self._providers[vendor]

    def _create(self, vendor: str) -> ModelProvider:
        s = self.settings
        if vendor == "rules":
            return RulesProvider(self._tools)
        if vendor == "openai":
            from agents.providers.openai_provider import OpenAIProvider

            return OpenAIProvider(
                api_key=s.openai_api_key or "", base_url=s.openai_base_url, timeout=s.timeout
            )
        if vendor == "anthropic":
            from agents.providers.anthropic_provider import AnthropicProvider

            return AnthropicProvider(
                api_key=s.anthropic_api_key or "", base_url=s.anthropic_base_url, timeout=s.timeout
            )
        raise ValueError(f"unknown model provider '{vendor}'")

    async def aclose(self) -> None:
        """Close the providers' HTTP connections."""
        for provider in self._providers.values():
            close = getattr(provider, "aclose", None)
            if close is not None:
                await close()
        self._providers.clear()

    def problems(self, catalog: Catalog) -> list[str]:
        """Models named in the catalog (or BATON_MODEL) that cannot work with the keys set."""
        found: list[str] = []
        uses = [("BATON_MODEL", self.settings.default_model)] + [
            (f"agent '{a.name}'", self.ref(a.model)) for a in catalog.agents
        ]
        for who, ref in uses:
            vendor = ref.partition(":")[0]
            if vendor == "openai" and not (
                self.settings.openai_api_key or self.settings.openai_base_url
            ):
                found.append(f"{who} uses {ref} but OPENAI_API_KEY is not set")
            if vendor == "anthropic" and not self.settings.anthropic_api_key:
                found.append(f"{who} uses {ref} but ANTHROPIC_API_KEY is not set")
        return found
