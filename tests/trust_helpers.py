"""What the trust tests share: a catalog with slow and side-effecting steps, and ways to read
the thread the way a person does."""

from __future__ import annotations

import json
from pathlib import Path

from sandbox.web_api import SlackStandIn
from sandbox.workspace import Message

CATALOG = """
agents:
  - name: web-checker
    description: Checks HTTP endpoints.
    model: rules
    tools: [http_check]
    triggers: ['https?://']
  - name: thinker
    description: Thinks (a model that may be slow).
    model: 'openai:gpt-4.1-mini'
    tools: [calculator]
  - name: deployer
    description: Calls the deploys webhook.
    model: rules
    tools: [webhook_post]
  - name: announcer
    description: Posts messages to channels.
    model: rules
    tools: [post_message]
    reach: {post_channels: [C0RANDOM]}
playbooks:
  - name: think
    description: One slow step.
    tasks:
      - {id: think, agent: thinker, instruction: think}
  - name: think-then-deploy
    description: A slow step, then a webhook call that needs approval.
    tasks:
      - {id: think, agent: thinker, instruction: think}
      - {id: deploy, agent: deployer, instruction: 'Call the deploys webhook with {"v": 1}', depends_on: [think]}
  - name: think-twice
    description: Two slow steps, one after the other.
    tasks:
      - {id: first, agent: thinker, instruction: first}
      - {id: second, agent: thinker, instruction: second, depends_on: [first]}
  - name: deploy
    description: A webhook call that needs approval.
    tasks:
      - {id: deploy, agent: deployer, instruction: 'Call the deploys webhook with {"v": 1}'}
  - name: two-posts
    description: Two announcements at once.
    tasks:
      - {id: first, agent: announcer, instruction: 'Post "one" to <#C0RANDOM>'}
      - {id: second, agent: announcer, instruction: 'Post "two" to <#C0RANDOM>'}
webhooks:
  deploys: WEBHOOK
approvals:
  approvers: [APPROVERS]
"""


def write_catalog(
    tmp_path: Path, *, webhook: str = "http://127.0.0.1:9/none", approvers: str = "U0ALICE"
) -> Path:
    path = tmp_path / "trust-agents.yml"
    path.write_text(CATALOG.replace("WEBHOOK", webhook).replace("APPROVERS", approvers))
    return path


def answers(slack: SlackStandIn, run_id: str, channel: str = "C0GENERAL") -> list[Message]:
    """The messages that carry a run's answer footer (the last piece of its answer)."""
    mark = f"Run `{run_id}` ·"
    return [
        m
        for m in slack.messages(channel)
        if m.ephemeral_for is None
        and m.blocks
        and m.blocks[-1].get("type") == "context"
        and mark in json.dumps(m.blocks[-1], ensure_ascii=False)
        and "tokens" in json.dumps(m.blocks[-1], ensure_ascii=False)
    ]


def approval_requests(slack: SlackStandIn, channel: str = "C0GENERAL") -> list[Message]:
    """Approval messages that still have their buttons."""
    return [
        m
        for m in slack.messages(channel)
        if any(str(b.get("block_id", "")).startswith("approval:") for b in m.blocks or [])
    ]


def approval_value(message: Message) -> str:
    block = next(b for b in message.blocks if str(b.get("block_id", "")).startswith("approval:"))
    return str(block["elements"][0]["value"])


def task_lists(slack: SlackStandIn, run_id: str, channel: str = "C0GENERAL") -> list[Message]:
    """The messages showing a run's task list: its stream (with the Stop button) or its status
    message (which names `/baton status <id>`)."""
    return [
        m
        for m in slack.messages(channel)
        if m.ephemeral_for is None
        and (
            any(b.get("block_id") == f"run:{run_id}" for b in m.blocks or [])
            or f"`/baton status {run_id}` for details" in json.dumps(m.blocks or [])
        )
    ]


def model_settings(openai_url: str = "http://127.0.0.1:9/v1") -> dict[str, str]:
    """Settings for the trust catalog: its thinker talks to `openai_url`; planning and the
    answer stay offline (`rules`)."""
    return {"openai_api_key": "sk-test", "openai_base_url": openai_url, "baton_model": "rules"}
