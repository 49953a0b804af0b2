"""What model calls cost, per million tokens, in US dollars.

The built-in table covers common models; a catalog's `prices:` section adds to or overrides
it. An unknown model costs 0 and says so in the run's footer, rather than guessing.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from agents.messages import Usage


class Price(BaseModel):
    input: float = Field(ge=0, description="USD per million input tokens")
    output: float = Field(ge=0, description="USD per million output tokens")


BUILT_IN: dict[str, Price] = {
    "openai:gpt-4.1": Price(input=2.0, output=8.0),
    "openai:gpt-4.1-mini": Price(input=0.4, output=1.6),
    "openai:gpt-4.1-nano": Price(input=0.1, output=0.4),
    "openai:gpt-4o": Price(input=2.5, output=10.0),
    "openai:gpt-4o-mini": Price(input=0.15, output=0.6),
    "openai:o4-mini": Price(input=1.1, output=4.4),
    "anthropic:claude-sonnet-4-5": Price(input=3.0, output=15.0),
    "anthropic:claude-sonnet-4-6": Price(input=3.0, output=15.0),
    "anthropic:claude-opus-4-5": Price(input=5.0, output=25.0),
    "anthropic:claude-haiku-4-5": Price(input=1.0, output=5.0),
    "anthropic:claude-opus-4-1": Price(input=15.0, output=75.0),
    "rules": Price(input=0.0, output=0.0),
}


class PriceTable:
    def __init__(self, extra: dict[str, Price] | None = None) -> None:
        self._prices = {**BUILT_IN, **(extra or {})}

    def known(self, model: str) -> bool:
        return model in self._prices

    def cost(self, model: str, usage: Usage) -> float:
        price = self._prices.get(model)
        if price is None:
            return 0.0
        return (usage.input_tokens * price.input + usage.output_tokens * price.output) / 1_000_000
