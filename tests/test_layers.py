"""Dependencies point one way: bot -> orchestration -> agents, with storage below them all.

Above the bot: the sandbox (a Slack stand-in that starts Baton as `baton run --http` does and
uses nothing else of it), then testkit (the test doubles tests/ and bench/ share), then tests/
and bench/: nothing imports them, and neither imports the other.

Every module is read as source (function-level imports included) rather than imported, so a
layer breach is caught even on a path no other test runs.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# A package may import those ranked below it, never those above it.
RANK = {"storage": 0, "agents": 1, "orchestration": 2, "bot": 3, "sandbox": 4, "testkit": 5}
ABOVE_ALL = {"tests", "bench"}
# Bot's start-up API, all the sandbox may use of the bot: settings, `check`, `create`,
# `serve_http` and the path Slack's events are posted to.
START_UP = {"bot.app", "bot.config", "bot.manifest", "bot.transports"}


def imported_modules(source: str) -> list[tuple[int, str]]:
    """(line, module) of every absolute import in the source."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def breaches(package: str, source: str) -> list[str]:
    """The imports in one of `package`'s modules that go against the layers."""
    own = RANK.get(package, len(RANK))
    wrong = []
    for line, module in imported_modules(source):
        top = module.split(".")[0]
        if (top in ABOVE_ALL and top != package) or RANK.get(top, -1) > own:
            wrong.append(f"line {line}: imports {top}")
        elif package == "sandbox" and top == "bot" and module not in START_UP:
            wrong.append(f"line {line}: imports {module}, not bot's start-up API")
    return wrong


@pytest.mark.parametrize("package", sorted(RANK.keys() | ABOVE_ALL))
def test_no_module_imports_a_layer_above_its_own(package: str) -> None:
    found = {
        str(path.relative_to(ROOT)): wrong
        for path in sorted((ROOT / package).rglob("*.py"))
        if (wrong := breaches(package, path.read_text(encoding="utf-8")))
    }
    assert found == {}


def test_the_check_sees_imports_inside_functions() -> None:
    source = "def later():\n    from bot.app import Baton\n    import orchestration.engine\n"
    assert breaches("agents", source) == ["line 2: imports bot", "line 3: imports orchestration"]
    assert breaches("bot", source) == []
    assert breaches("storage", "import tests.conftest\n") == ["line 1: imports tests"]


def test_nothing_below_the_sandbox_imports_it_or_testkit() -> None:
    source = "import sandbox.web_api\nfrom testkit.sinks import NullSink\n"
    for package in ("bot", "orchestration", "agents", "storage"):
        assert breaches(package, source) == ["line 1: imports sandbox", "line 2: imports testkit"]
    assert breaches("sandbox", source) == ["line 2: imports testkit"]
    assert breaches("testkit", source) == []


def test_the_sandbox_uses_only_bots_start_up_api() -> None:
    source = (
        "from bot.app import Baton, create\n"
        "from bot.config import Settings, check\n"
        "from bot.transports import serve_http\n"
        "from bot.progress import ProgressOptions\n"
        "from bot import cli\n"
        "from orchestration.run_events import EventSink\n"
    )
    assert breaches("sandbox", source) == [
        "line 4: imports bot.progress, not bot's start-up API",
        "line 5: imports bot, not bot's start-up API",
    ]
    assert breaches("testkit", source) == []


def test_tests_and_bench_import_neither_each_other_nor_are_imported() -> None:
    source = "from tests.conftest import site\nimport bench.scale\nfrom testkit import fakes\n"
    assert breaches("bench", source) == ["line 1: imports tests"]
    assert breaches("tests", source) == ["line 2: imports bench"]
    assert breaches("testkit", source) == ["line 1: imports tests", "line 2: imports bench"]


# What builds or runs a query. Engine URLs, errors and types may be used above storage/.
QUERYING = frozenset({"select", "update", "insert", "delete", "text", "col", "func", "and_", "or_"})


def query_imports(source: str) -> list[str]:
    """The sqlalchemy/sqlmodel query functions a module imports (or reaches as attributes)."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] in {"sqlalchemy", "sqlmodel"}:
                found += [
                    f"line {node.lineno}: {node.module}.{a.name}"
                    for a in node.names
                    if a.name in QUERYING or a.name == "*"
                ]
        elif isinstance(node, ast.Import):
            found += [
                f"line {node.lineno}: import {a.name}"
                for a in node.names
                if a.name.split(".")[0] in {"sqlalchemy", "sqlmodel"}
                and a.name not in {"sqlalchemy.engine", "sqlalchemy.exc"}
            ]
    return found


@pytest.mark.parametrize("package", ["agents", "bot", "orchestration"])
def test_only_storage_builds_queries(package: str) -> None:
    found = {
        str(path.relative_to(ROOT)): wrong
        for path in sorted((ROOT / package).rglob("*.py"))
        if (wrong := query_imports(path.read_text(encoding="utf-8")))
    }
    assert found == {}


def test_the_query_check_sees_query_functions_but_not_urls_or_errors() -> None:
    source = (
        "from sqlmodel import col, select\n"
        "from sqlalchemy.engine import make_url\n"
        "from sqlalchemy.exc import SQLAlchemyError\n"
        "def later():\n"
        "    from sqlalchemy import text\n"
        "    import sqlalchemy\n"
    )
    assert query_imports(source) == [
        "line 1: sqlmodel.col",
        "line 1: sqlmodel.select",
        "line 5: sqlalchemy.text",
        "line 6: import sqlalchemy",
    ]


def module_imports(package: str) -> dict[str, set[str]]:
    """Each module of the package, and the package's modules it imports: at the top, inside
    functions, or only for type checking (`from bot import x` counts as `bot.x`)."""
    modules = {
        ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for path in (ROOT / package).rglob("*.py")
    }
    graph: dict[str, set[str]] = {}
    for module in modules:
        path = ROOT.joinpath(*module.split("."))
        path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
        names: list[str] = []
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names += [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        graph[module] = {name for name in names if name in modules and name != module}
    return graph


def cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle of the graph (its modules in order, the first again at the end), or []."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> list[str]:
        state[module] = 1
        path.append(module)
        for other in sorted(graph[module]):
            if state.get(other) == 1:
                return [*path[path.index(other) :], other]
            if other not in state and (found := visit(other)):
                return found
        path.pop()
        state[module] = 2
        return []

    for module in sorted(graph):
        if module not in state and (found := visit(module)):
            return found
    return []


@pytest.mark.parametrize("package", ["agents", "bot", "orchestration"])
def test_no_two_modules_import_each_other_even_for_type_checking(package: str) -> None:
    assert cycle(module_imports(package)) == []


def test_the_cycle_check_finds_a_ring() -> None:
    ring = {
        "bot.app": {"bot.listeners"},
        "bot.listeners": {"bot.home_tab"},
        "bot.home_tab": {"bot.app"},
    }
    assert cycle(ring) == ["bot.app", "bot.listeners", "bot.home_tab", "bot.app"]
    assert cycle({**ring, "bot.home_tab": set()}) == []
