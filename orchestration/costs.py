"""What runs cost: an estimate before work starts, and notes on what they really spent.

The estimate is deliberately simple — prompt sizes from the catalog, a typical answer
length, one extra turn for specialists with tools — and is shown as such ("≈"). The notes
come from the usage ledger: which models answered, which took over from which, and which
have no price (their tokens are counted, their dollars are not).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from agents.messages import Usage
from agents.pricing import PriceTable
from agents.providers.registry import Models
from agents.runner import system_prompt
from agents.spec import Catalog
from orchestration.plan import Plan
from orchestration.run_events import CostEstimate
from storage import runs, usage
from storage.db import Database

CHARS_PER_TOKEN = 4
ANSWER_TOKENS = 300  # a typical specialist's final answer
CALL_TOKENS = 60  # a typical tool call's arguments
RESULT_TOKENS = 150  # a typical tool result, read back by the model
SYNTHESIS_TOKENS = 400


def estimate(plan: Plan, catalog: Catalog, models: Models, prices: PriceTable) -> CostEstimate:
    """About how many tokens and dollars the plan's tasks and the final answer will take."""
    spent: dict[str, Usage] = {}

    def add(ref: str, input_tokens: int, output_tokens: int) -> None:
        cap = models.settings.openai_compat.max_output_tokens
        if cap is not None and ref.startswith("openai:"):
            output_tokens = min(output_tokens, cap)
        spent[ref] = spent.get(ref, Usage()) + Usage(
            input_tokens=input_tokens, output_tokens=output_tokens
        )

    for task in plan.tasks:
        spec = catalog.agent(task.agent)
        if spec is None:
            continue
        ref = models.ref(spec.model)
        schemas = sum(
            len(json.dumps(models.tools[t].schema().model_dump()))
            for t in spec.tools
            if t in models.tools
        )
        prompt = (len(system_prompt(spec)) + len(task.instruction) + schemas) // CHARS_PER_TOKEN
        prompt += ANSWER_TOKENS * len(task.depends_on)
        if spec.tools:  # one turn to call the tools, one to report what they found
            add(ref, 2 * prompt + CALL_TOKENS + RESULT_TOKENS, CALL_TOKENS + ANSWER_TOKENS)
        else:
            add(ref, prompt, ANSWER_TOKENS)
    answer_ref = models.ref("default")
    add(answer_ref, ANSWER_TOKENS * (len(plan.tasks) + 1), SYNTHESIS_TOKENS)

    priced = {ref: u for ref, u in spent.items() if prices.known(ref)}
    return CostEstimate(
        tokens=sum(u.input_tokens + u.output_tokens for ref, u in spent.items() if ref != "rules"),
        usd=sum(prices.cost(ref, u) for ref, u in priced.items()),
        unpriced=tuple(ref for ref in spent if not prices.known(ref)),
    )


@dataclass(frozen=True)
class RunNotes:
    """What a run's footer says about its models."""

    models: tuple[str, ...]  # those that answered, in the order they were first used
    failed: tuple[str, ...]  # those that failed and had another model take over (or none)
    unpriced: tuple[str, ...]


async def notes(db: Database, run_id: str) -> RunNotes:
    """From the usage ledger and the run's events."""
    calls = await usage.calls(db, run_id)
    failed = [
        str(e.data.get("from") or e.data.get("model"))
        for e in await runs.events(db, run_id)
        if e.kind in ("model_fallback", "model_failed") and e.data
    ]
    return RunNotes(
        models=tuple(dict.fromkeys(c.model for c in calls)),
        failed=tuple(dict.fromkeys(failed)),
        unpriced=tuple(dict.fromkeys(c.model for c in calls if not c.priced)),
    )
