"""What driving a run needs, handed as one object to the orchestrator, its task runner and
its gates (rather than the same seven collaborators to each)."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from agents.pricing import PriceTable
from agents.providers.registry import Models
from agents.spec import Catalog
from agents.telemetry import Telemetry
from agents.toolbox import Toolbox
from agents.tools.base import ToolContextFactory
from orchestration.limits import Limits
from storage.db import Database


@dataclass(frozen=True)
class RunDeps:
    db: Database
    catalog: Catalog
    models: Models
    tools: Toolbox
    tool_context: ToolContextFactory
    limits: Limits = field(default_factory=Limits)
    telemetry: Telemetry = field(default_factory=Telemetry.off)

    @functools.cached_property
    def prices(self) -> PriceTable:
        """The catalog's prices, read once."""
        return PriceTable(self.catalog.prices)
