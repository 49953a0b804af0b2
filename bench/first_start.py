"""A newcomer's first minute: `make run` in a fresh copy of the project, with nothing installed
and nothing cached, until the sandbox prints its URL; then a second start with .venv in place."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
URL_LINE = re.compile(rb"^Baton sandbox: http://127\.0\.0\.1:\d+/$")
# What a clean shell has: no Slack or model credentials, so `make run` opens the sandbox.
CREDENTIALS = (
    "SLACK_BOT_TOKEN",
    "SLACK_APP_TOKEN",
    "SLACK_SIGNING_SECRET",
    "SLACK_CLIENT_ID",
    "SLACK_CLIENT_SECRET",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    "BATON_AGENTS_FILE",
    "BATON_DATABASE_URL",
)
DEADLINE = 300.0


def fresh_copy(into: Path) -> Path:
    """The project's tracked files, as a `git clone` would give them."""
    files = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True
    ).stdout.split(b"\0")
    for name in filter(None, files):
        source = ROOT / name.decode()
        target = into / name.decode()
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    return into


async def seconds_to_url(project: Path, env: dict[str, str]) -> float:
    """`make run ARGS="--port 0"` until its URL line; the process group is stopped afterwards."""
    start = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        "make",
        "run",
        "ARGS=--port 0",
        cwd=project,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True,
    )
    assert process.stdout is not None
    try:
        while True:
            line = await asyncio.wait_for(process.stdout.readline(), timeout=DEADLINE)
            if not line:
                raise RuntimeError("make run ended before printing the sandbox's URL")
            if URL_LINE.match(line.rstrip(b"\n")):
                return time.perf_counter() - start
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        await process.wait()


async def first_start() -> list[tuple[str, str, str]]:
    with tempfile.TemporaryDirectory(prefix="baton-first-start-") as tmp:
        project = fresh_copy(Path(tmp) / "baton")
        env = {k: v for k, v in os.environ.items() if k not in CREDENTIALS}
        # A fresh machine: no cache for either installer.
        env.update(UV_CACHE_DIR=str(Path(tmp) / "uv-cache"), PIP_NO_CACHE_DIR="1")
        first = await seconds_to_url(project, env)
        installer = "uv" if (project / ".venv" / "uv").exists() or shutil.which("uv") else "pip"
        again = await seconds_to_url(project, env)
    return [
        (
            "make run in a fresh clone → sandbox URL",
            "first start (installs) · next start",
            f"{first:.1f} s ({installer}) · {again:.1f} s",
        )
    ]
