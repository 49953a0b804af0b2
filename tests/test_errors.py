"""One exception tree: everything Baton raises derives from `BatonError`, through its package's root.

Every module is imported and every exception class defined in it is checked, so a new
`class Foo(Exception)` anywhere in the project fails here.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

from agents.errors import AgentsError
from bot.errors import BotError
from orchestration.errors import OrchestrationError
from storage.errors import BatonError, StorageError

ROOTS: dict[str, type[BatonError]] = {
    "storage": StorageError,
    "agents": AgentsError,
    "orchestration": OrchestrationError,
    "bot": BotError,
}
# The Alembic environment refuses to be imported outside `baton db upgrade`. (The Slack
# stand-in, `sandbox/`, is not walked: it answers as Slack does, with Slack's errors.)
NOT_BATON = ("storage.migrations",)


def exceptions_defined_in(package: str) -> dict[str, type[BaseException]]:
    """`module.Class` -> class, for every exception class the package's modules define."""
    found: dict[str, type[BaseException]] = {}
    root = importlib.import_module(package)
    names = [package] + [m.name for m in pkgutil.walk_packages(root.__path__, prefix=f"{package}.")]
    for name in names:
        if name.startswith(NOT_BATON):
            continue
        module = importlib.import_module(name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, BaseException) and cls.__module__ == name:
                found[f"{name}.{cls.__qualname__}"] = cls
    return found


@pytest.mark.parametrize("package", sorted(ROOTS))
def test_every_exception_a_package_defines_derives_from_its_root(package: str) -> None:
    found = exceptions_defined_in(package)
    assert found  # the walk sees the package's modules
    root = ROOTS[package]
    strays = sorted(n for n, cls in found.items() if not issubclass(cls, root) and cls is not root)
    if package == "storage":
        strays.remove("storage.errors.BatonError")
    assert strays == []


def test_each_package_root_derives_from_baton_error() -> None:
    assert all(issubclass(root, BatonError) for root in ROOTS.values())


def test_errors_that_callers_catch_as_value_errors_still_are() -> None:
    from agents.errors import CompatError
    from bot.errors import ManifestUrlError
    from bot.schedules_ui import ScheduleInputError
    from orchestration.when import WhenError
    from storage.errors import DatabaseUrlError

    for cls in (CompatError, ManifestUrlError, ScheduleInputError, WhenError, DatabaseUrlError):
        assert issubclass(cls, ValueError) and issubclass(cls, BatonError), cls
