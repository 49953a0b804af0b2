"""`baton doctor`: is this deployment ready to run? One line per check; exit 1 on a failure.

The checks, in order: the configuration (what start-up checks, the catalog included), the
database (reachable, Baton's tables), its migrations (the schema's revision against this
Baton's head), Slack (`auth.test` with the bot token, and the scopes
the token has against the manifest's), and each model the configuration uses (one short
request through the provider Baton itself uses); with `BATON_WORKERS=external`, the `baton
worker` processes (live, and those whose heartbeat is stale). Nothing is created or changed,
and no secret is printed.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TextIO

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from agents.errors import CatalogError, ModelError
from agents.messages import Message, ModelRequest
from agents.providers.registry import Models
from agents.spec import Catalog, load_catalog
from agents.tools.registry import ALL_TOOLS, tool_names
from bot.app import model_settings
from bot.config import ConfigError, Mode, Settings, check, secret
from bot.database import UPGRADE_HINT, describe, stored_state
from bot.manifest import bot_scopes
from storage import Database, schema, stats, utcnow, workers
from storage.models import WorkerRow
from storage.schema import SchemaStatus

# Each check gives up after this many seconds (a database or server that does not answer).
TIMEOUT = 10.0

SLACK_HINTS = {
    "invalid_auth": "SLACK_BOT_TOKEN is wrong, or was revoked (reinstall the app)",
    "not_authed": "no token was sent",
    "account_inactive": "the app was uninstalled or its workspace is gone",
    "token_revoked": "the token was revoked: reinstall the app and copy the new token",
}


class Outcome(StrEnum):
    OK = "ok"
    FAIL = "FAIL"
    SKIPPED = "skip"


@dataclass(frozen=True)
class Check:
    name: str
    outcome: Outcome
    detail: str

    def line(self) -> str:
        return f"{self.outcome.value:<4}  {self.name:<13}  {self.detail}"


def doctor(settings: Settings | ConfigError, mode: Mode, *, out: TextIO | None = None) -> int:
    """Run every check, print one line each; 0 when none failed, else 1."""
    stream = out if out is not None else sys.stdout
    if isinstance(settings, ConfigError):
        checks = [Check("configuration", Outcome.FAIL, "; ".join(settings.problems))]
    else:
        checks = asyncio.run(run_checks(settings, mode))
    for c in checks:
        print(c.line(), file=stream, flush=True)
    return 1 if any(c.outcome == Outcome.FAIL for c in checks) else 0


async def run_checks(settings: Settings, mode: Mode, *, within: float = TIMEOUT) -> list[Check]:
    """The checks, in order; each one runs even when an earlier one failed."""
    config, catalog = configuration(settings, mode)
    checks = [config, await database(settings, within=within)]
    checks.append(await migrations(settings, within=within))
    checks.append(await slack(settings, within=within))
    checks += await models(settings, catalog, within=within)
    if settings.baton_workers == "external":
        checks.append(await worker_processes(settings, within=within))
    # MCP servers (catalog `mcp_servers:`) will be checked here, one line each.
    return checks


def configuration(settings: Settings, mode: Mode) -> tuple[Check, Catalog | None]:
    """What start-up would refuse; the catalog too, when it loads."""
    problems: list[str] = []
    try:
        check(settings, mode)
    except ConfigError as e:
        problems += e.problems
    catalog: Catalog | None = None
    try:
        catalog = load_catalog(settings.baton_agents_file, known_tools=tool_names())
    except CatalogError as e:
        problems += [f"BATON_AGENTS_FILE: {line}" for line in str(e).splitlines()]
    if catalog is not None:
        problems += _models(settings).problems(catalog)
    if problems:
        return Check("configuration", Outcome.FAIL, "; ".join(problems)), catalog
    assert catalog is not None
    where = "your catalog" if settings.baton_agents_file else "built-in catalog"
    detail = (
        f"{mode} mode · model {settings.default_model} · {where}: "
        f"{len(catalog.agents)} specialists, {len(catalog.playbooks)} playbooks"
    )
    return Check("configuration", Outcome.OK, detail), catalog


async def database(settings: Settings, *, within: float) -> Check:
    """Reachable, and which of Baton's tables exist (nothing is created)."""
    try:
        url = make_url(settings.database_url)
        db = Database(settings.database_url)
    except Exception as e:
        return Check("database", Outcome.FAIL, f"BATON_DATABASE_URL is not usable: {e}")
    shown = url.render_as_string(hide_password=True)
    try:
        if db.is_sqlite and (missing := _missing_sqlite_file(url.database, shown)) is not None:
            return missing
        async with asyncio.timeout(within):
            await stats.reachable(db)
            present = await stats.table_names(db)
    except TimeoutError:
        return Check("database", Outcome.FAIL, f"{shown} · no answer within {within:g} s")
    except Exception as e:
        return Check("database", Outcome.FAIL, f"{shown} · {_first_line(e)}")
    finally:
        await db.dispose()
    expected = stats.baton_tables()
    found = len(expected & present)
    tables = (
        f"all {found} tables" if found == len(expected) else f"{found} of {len(expected)} tables"
    )
    return Check("database", Outcome.OK, f"{shown} · {tables}")


async def migrations(settings: Settings, *, within: float) -> Check:
    """The schema's revision against this Baton's head (nothing is created or upgraded)."""
    auto = settings.auto_migrate
    on_start = "start-up upgrades it (BATON_AUTO_MIGRATE)"
    try:
        async with asyncio.timeout(within):
            found = await stored_state(settings)
    except schema.SchemaError as e:
        return Check("migrations", Outcome.FAIL, str(e))
    except (TimeoutError, OSError, SQLAlchemyError):
        # The database line has said why already.
        return Check("migrations", Outcome.SKIPPED, "not checked: the database did not answer")
    if found is None:
        if auto:
            return Check("migrations", Outcome.OK, "no database yet; start-up creates it at head")
        return Check("migrations", Outcome.FAIL, f"no database yet; {UPGRADE_HINT}")
    if found.status is SchemaStatus.AT_HEAD:
        return Check("migrations", Outcome.OK, describe(found))
    if found.needs_upgrade and auto:
        return Check("migrations", Outcome.OK, f"{describe(found)}; {on_start}")
    hint = f"; {UPGRADE_HINT}" if found.needs_upgrade else ""
    return Check("migrations", Outcome.FAIL, f"{describe(found)}{hint}")


async def worker_processes(
    settings: Settings, *, within: float, now: datetime | None = None
) -> Check:
    """With `BATON_WORKERS=external`: the `baton worker` processes beating, and those whose
    beat is stale (killed, or cut off); a failure when none is live (no run would be driven)."""
    try:
        async with asyncio.timeout(within):
            stored = await stored_state(settings)
    except (schema.SchemaError, TimeoutError, OSError, SQLAlchemyError):
        stored = None
    if stored is None or stored.status is not SchemaStatus.AT_HEAD:
        # The lines above say why; the workers table may not be there yet.
        return Check("workers", Outcome.SKIPPED, "not checked: the schema is not at head")
    db = Database(settings.database_url)
    try:
        async with asyncio.timeout(within):
            found = await workers.recorded(db, now=now)
    except (TimeoutError, OSError, SQLAlchemyError):
        return Check("workers", Outcome.SKIPPED, "not checked: the database did not answer")
    finally:
        await db.dispose()
    at = now if now is not None else utcnow()

    def ago(w: WorkerRow) -> str:
        return f"{(at - w.last_beat_at).total_seconds():.0f} s ago"

    live = [f"{w.host}:{w.pid} driving {w.runs_driving}" for w in found.live]
    stale = [f"{w.host}:{w.pid} last beat {ago(w)}" for w in found.stale]
    detail = f"{len(live)} live" + (f" ({', '.join(live)})" if live else "")
    if stale:
        detail += f" · {len(stale)} stale ({', '.join(stale)})"
    if not live:
        return Check("workers", Outcome.FAIL, f"{detail}: start `baton worker` to drive the runs")
    return Check("workers", Outcome.OK, detail)


def _missing_sqlite_file(database: str | None, shown: str) -> Check | None:
    """A SQLite file that does not exist yet (connecting would create it): say so instead."""
    if not database or database == ":memory:" or Path(database).exists():
        return None
    folder = Path(database).parent
    if folder.is_dir():
        return Check("database", Outcome.OK, f"{shown} · no file yet; Baton creates it on start")
    return Check("database", Outcome.FAIL, f"{shown} · there is no folder {folder}")


async def slack(settings: Settings, *, within: float) -> Check:
    """`auth.test` with the bot token; the token's scopes against the manifest's."""
    token = secret(settings.slack_bot_token)
    if not token and settings.oauth:
        return Check(
            "slack",
            Outcome.SKIPPED,
            "not checked: OAuth mode, each workspace's token comes with its install",
        )
    if not token:
        return Check("slack", Outcome.SKIPPED, "not checked: SLACK_BOT_TOKEN is not set")
    client = AsyncWebClient(
        token=token, base_url=settings.slack_api_url, timeout=max(1, round(within))
    )
    try:
        async with asyncio.timeout(within):
            resp = await client.auth_test()
    except SlackApiError as e:
        error = str(e.response.get("error", "unknown_error"))
        hint = SLACK_HINTS.get(error)
        return Check(
            "slack", Outcome.FAIL, f"auth.test said {error}" + (f": {hint}" if hint else "")
        )
    except (TimeoutError, aiohttp.ClientError, OSError) as e:
        return Check(
            "slack", Outcome.FAIL, f"cannot reach {settings.slack_api_url}: {_first_line(e)}"
        )
    detail = (
        f"bot @{resp.get('user')} ({resp.get('user_id')}) in {resp.get('team')} "
        f"({resp.get('team_id')}) · {settings.slack_api_url}"
    )
    granted = resp.headers.get("x-oauth-scopes") or resp.headers.get("X-OAuth-Scopes")
    if granted is not None:
        have = {s.strip() for s in str(granted).split(",") if s.strip()}
        missing = [s for s in bot_scopes() if s not in have]
        if missing:
            return Check(
                "slack",
                Outcome.FAIL,
                f"{detail} · the token lacks {', '.join(missing)}: add them and reinstall the app",
            )
    return Check("slack", Outcome.OK, detail)


async def models(settings: Settings, catalog: Catalog | None, *, within: float) -> list[Check]:
    """One short request to each model in use (BATON_MODEL and the catalog's specialists)."""
    registry = _models(settings, within=within)
    refs = [registry.ref("default")]
    if catalog is not None:
        refs += [registry.ref(a.model) for a in catalog.agents]
    called = [r for r in dict.fromkeys(refs) if r != "rules"]
    if not called:
        return [Check("model", Outcome.OK, "rules only: offline, nothing to call")]
    try:
        return [await _ask(registry, ref, within) for ref in called]
    finally:
        await registry.aclose()


async def _ask(registry: Models, ref: str, within: float) -> Check:
    try:
        binding = registry.resolve(ref)
    except ModelError as e:
        return Check("model", Outcome.FAIL, f"{ref}: {e}")
    request = ModelRequest(
        model=binding.model_id,
        system="Answer with the single word OK.",
        messages=[Message(role="user", content="Are you there?")],
        max_tokens=16,
    )
    return await _timed(ref, lambda: binding.provider.complete(request), within)


async def _timed(ref: str, call: Callable[[], Awaitable[object]], within: float) -> Check:
    start = time.perf_counter()
    try:
        async with asyncio.timeout(within):
            await call()
    except TimeoutError:
        return Check("model", Outcome.FAIL, f"{ref}: no answer within {within:g} s")
    except ModelError as e:
        return Check("model", Outcome.FAIL, f"{ref}: {_first_line(e)}")
    ms = (time.perf_counter() - start) * 1000
    return Check("model", Outcome.OK, f"{ref} answered in {ms:.0f} ms")


def _models(settings: Settings, *, within: float = TIMEOUT) -> Models:
    return Models(model_settings(settings, timeout=within), ALL_TOOLS)


def _first_line(e: BaseException) -> str:
    # SQLAlchemy wraps the driver's error; the driver's own words are the useful part.
    e = getattr(e, "orig", None) or e
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__
