"""The README and ARCHITECTURE.md name files that exist: the map matches the code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# `bot/app.py`, `storage/migrations/`, `sandbox/` — a path the docs point a reader to.
PATH = re.compile(r"`((?:bot|orchestration|agents|storage|sandbox|testkit|tests|bench)/[\w/.-]*)`")


def named_paths(text: str) -> list[str]:
    return sorted({m.group(1) for m in PATH.finditer(text)})


@pytest.mark.parametrize("doc", ["README.md", "ARCHITECTURE.md"])
def test_every_path_the_docs_name_exists(doc: str) -> None:
    paths = named_paths((ROOT / doc).read_text(encoding="utf-8"))
    assert paths, "the check sees the paths"
    assert [p for p in paths if not (ROOT / p).exists()] == []


def test_the_check_reads_paths_in_code_spans_only() -> None:
    text = "See `bot/app.py` and `storage/`, not bot/nowhere.py or `bot.app`."
    assert named_paths(text) == ["bot/app.py", "storage/"]
