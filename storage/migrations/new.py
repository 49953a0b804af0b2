"""`make migration m="…"`: write the next revision from what storage/models.py adds.

Alembic's autogenerate compares the models with a database at head — by default a
throwaway SQLite file upgraded for the purpose, or `--url` (a PostgreSQL database at head
also shows enum values; see README here). The revision is numbered after the newest one;
read it and fix it before committing.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path

from alembic import command
from sqlalchemy import Connection

from storage import Database, schema
from storage.migrations.autogen import differences


def next_revision(migrations: schema.Migrations) -> str:
    newest = max(int(s.revision) for s in migrations.scripts.walk_revisions())
    return f"{newest + 1:04d}"


async def write_revision(
    url: str, message: str, migrations: schema.Migrations, *, empty: bool
) -> Path | None:
    """The new revision's file, or None when the models and head agree (and not `empty`)."""
    db = Database(url)
    try:
        found = await schema.state(db, migrations)
        if found.status is not schema.SchemaStatus.AT_HEAD:
            await schema.upgrade(db, migrations)
        rev_id = next_revision(migrations)

        def generate(conn: Connection) -> Path | None:
            if not empty and not differences(conn):
                return None
            script = command.revision(
                migrations.config(conn), message=message, autogenerate=not empty, rev_id=rev_id
            )
            assert script is not None and not isinstance(script, list)
            return Path(script.path)

        async with db.engine.connect() as conn:
            return await conn.run_sync(generate)
    finally:
        await db.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m storage.migrations.new", description=__doc__)
    parser.add_argument("message", help="what the revision does, e.g. 'outbox table'")
    parser.add_argument("--url", help="a database to compare with (brought to head first)")
    parser.add_argument(
        "--empty", action="store_true", help="an empty revision to write by hand (data, enums)"
    )
    parser.add_argument("--scripts", type=Path, default=schema.MIGRATIONS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    migrations = schema.Migrations(args.scripts)
    with tempfile.TemporaryDirectory(prefix="baton-migration-") as scratch:
        url = args.url or f"sqlite:///{scratch}/head.db"
        path = asyncio.run(write_revision(url, args.message, migrations, empty=args.empty))
    if path is None:
        print(
            "storage/models.py and the newest revision agree: nothing to generate "
            "(--empty writes a revision to fill in by hand)",
            file=sys.stderr,
        )
        return 1
    tidy(path)
    print(f"wrote {path}: read it, fix what autogenerate cannot know, then commit it")
    return 0


def tidy(path: Path) -> None:
    """Format the revision as the project's lint wants it (when ruff is installed)."""
    if importlib.util.find_spec("ruff") is None:
        return
    for args in (["check", "--fix", "--quiet"], ["format", "--quiet"]):
        subprocess.run([sys.executable, "-m", "ruff", *args, str(path)], check=False)


if __name__ == "__main__":
    raise SystemExit(main())
