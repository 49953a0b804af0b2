"""A process that drives runs makes its model providers at start: importing a provider's SDK
takes over a second of CPU, which at a run's first model call would hold the event loop (and
every run and ack on it) that long. Checked in a fresh interpreter, where nothing has
imported an SDK yet."""

from __future__ import annotations

import subprocess
import sys

from testkit.processes import ROOT

SCRIPT = """
import sys
from agents.providers.registry import Models, ModelSettings
from agents.spec import AgentSpec, Catalog

catalog = Catalog(agents=[
    AgentSpec(name="writer", description="Writes.", model="openai:gpt-4.1-mini"),
    AgentSpec(name="checker", description="Checks.", model="rules"),
])
models = Models(ModelSettings(openai_api_key="sk-test"), {})
before = "openai" in sys.modules
if sys.argv[1] == "prepare":
    models.prepare(catalog)
print(before, "openai" in sys.modules, "anthropic" in sys.modules)
"""


def run(step: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, step], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def test_prepare_imports_the_sdks_the_catalog_uses_and_no_other() -> None:
    assert run("nothing") == "False False False"
    assert run("prepare") == "False True False"
