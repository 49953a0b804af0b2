"""From `provider:model-id` to a provider instance and the id it expects, with fallbacks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from agents.errors import Failure, PermanentModelError
from agents.providers.base import ModelProvider
from agents.providers.capabilities import CompatSettings
from agents.providers.rules import RulesProvider
from agents.spec import AgentSpec, Catalog
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
    # Models that take over, in order, when the default model keeps failing.
    fallback_models: tuple[str, ...] = ()
    # What the OpenAI-compatible endpoint accepts (catalog `openai_compat:` and OPENAI_COMPAT).
    openai_compat: CompatSettings = field(default_factory=CompatSettings)


@dataclass(frozen=True)
class Binding:
    """A resolved model: call `provider` with `model_id`; `ref` names it in prices and logs.

    `fallbacks` take over, in order, when this model fails after its retries.
    """

    provider: ModelProvider
    model_id: str
    ref: str
    fallbacks: tuple[Binding, ...] = ()

    def links(self) -> tuple[Binding, ...]:
        """This model, then its fallbacks."""
        return (self, *self.fallbacks)

    @property
    def offline(self) -> bool:
        """The `rules` model: plans by triggers and writes without a model."""
        return isinstance(self.provider, RulesProvider)


class Models:
    """Creates each provider once, on first use."""

    def __init__(self, settings: ModelSettings, tools: Mapping[str, Tool]) -> None:
        self.settings = settings
        self.tools = tools
        self._providers: dict[str, ModelProvider] = {}

    def ref(self, model: str) -> str:
        """`default` means BATON_MODEL."""
        return self.settings.default_model if model == "default" else model

    def chain(self, model: str, fallbacks: Sequence[str] = ()) -> list[str]:
        """The refs tried in order: the model, then its fallbacks (BATON_FALLBACK_MODELS for
        `default` unless the agent names its own), each once."""
        if not fallbacks and model == "default":
            fallbacks = self.settings.fallback_models
        refs: list[str] = []
        for ref in (self.ref(model), *(self.ref(f) for f in fallbacks)):
            if ref not in refs:
                refs.append(ref)
        return refs

    def resolve(self, model: str, fallbacks: Sequence[str] = ()) -> Binding:
        """The model with its fallbacks (see `chain`)."""
        first, *rest = [self._bind(ref) for ref in self.chain(model, fallbacks)]
        return Binding(first.provider, first.model_id, first.ref, tuple(rest))

    def for_agent(self, spec: AgentSpec) -> Binding:
        """A specialist's model with its fallbacks."""
        return self.resolve(spec.model, spec.fallbacks)

    def _bind(self, ref: str) -> Binding:
        vendor, _, model_id = ref.partition(":")
        return Binding(provider=self._provider(vendor), model_id=model_id or vendor, ref=ref)

    def _provider(self, vendor: str) -> ModelProvider:
        if vendor not in self._providers:
            self._providers[vendor] = self._create(vendor)
        return self._providers[vendor]

    def _create(self, vendor: str) -> ModelProvider:
        s = self.settings
        if vendor == "rules":
            return RulesProvider(self.tools)
        if vendor == "openai":
            from agents.providers.openai_provider import OpenAIProvider

            return OpenAIProvider(
                api_key=s.openai_api_key or "",
                base_url=s.openai_base_url,
                timeout=s.timeout,
                compat=s.openai_compat,
            )
        if vendor == "anthropic":
            from agents.providers.anthropic_provider import AnthropicProvider

            return AnthropicProvider(
                api_key=s.anthropic_api_key or "", base_url=s.anthropic_base_url, timeout=s.timeout
            )
        raise PermanentModelError(
            f"unknown model provider '{vendor}'", failure=Failure.UNKNOWN_MODEL, provider=vendor
        )

    async def aclose(self) -> None:
        """Close the providers' HTTP connections."""
        for provider in self._providers.values():
            close = getattr(provider, "aclose", None)
            if close is not None:
                await close()
        self._providers.clear()

    def prepare(self, catalog: Catalog) -> None:
        """Make now the provider of every model the catalog (or BATON_MODEL) names, in a
        process that drives runs. Importing a provider's SDK takes over a second of CPU
        (`openai`, here): made at a run's first model call, it would hold the event loop,
        and every run and ack on it, that long."""
        for _, ref in self._uses(catalog):
            self._provider(ref.partition(":")[0])

    def _uses(self, catalog: Catalog) -> list[tuple[str, str]]:
        """(who, model ref) for BATON_MODEL, its fallbacks and each agent's models, once each."""
        uses = [("BATON_MODEL", self.settings.default_model)]
        uses += [("BATON_FALLBACK_MODELS", self.ref(m)) for m in self.settings.fallback_models]
        for a in catalog.agents:
            uses += [(f"agent '{a.name}'", ref) for ref in self.chain(a.model, a.fallbacks)]
        return list(dict.fromkeys(uses))

    def problems(self, catalog: Catalog) -> list[str]:
        """Models named in the catalog (or BATON_MODEL) that cannot work with the keys set."""
        found: list[str] = []
        for who, ref in self._uses(catalog):
            vendor = ref.partition(":")[0]
            if vendor == "openai" and not (
                self.settings.openai_api_key or self.settings.openai_base_url
            ):
                found.append(f"{who} uses {ref} but OPENAI_API_KEY is not set")
            if vendor == "anthropic" and not self.settings.anthropic_api_key:
                found.append(f"{who} uses {ref} but ANTHROPIC_API_KEY is not set")
        return found
