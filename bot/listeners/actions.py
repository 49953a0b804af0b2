"""Button clicks and modal submissions: approval decisions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from slack_bolt.context.ack.async_ack import AsyncAck
from slack_sdk.errors import SlackApiError

from bot import approval_blocks as ui
from bot.approvals import decide, tell
from bot.slack_ops import slack_error

if TYPE_CHECKING:
    from bot.app import Baton


def register(baton: Baton) -> None:
    app = baton.app

    @app.action(ui.APPROVE)
    async def on_approve(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        await _click(baton, body, approve=True)

    @app.action(ui.REJECT)
    async def on_reject(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        await _click(baton, body, approve=False)

    @app.action(ui.REJECT_WITH_REASON)
    async def on_reject_with_reason(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        value = str((body.get("actions") or [{}])[0].get("value") or "")
        try:
            # Slack allows views.open only within 3 s of the click: do it first.
            await baton.client.views_open(
                trigger_id=str(body.get("trigger_id")), view=ui.reason_modal(value)
            )
        except SlackApiError as e:
            channel, user = _where(body)
            await tell(
                baton,
                channel=channel,
                user=user,
                text=f"I couldn't open the reason form ({slack_error(e)}); use Reject instead.",
            )

    @app.view(ui.REASON_CALLBACK)
    async def on_reason(ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]) -> None:
        values = view.get("state", {}).get("values", {})
        reason = str(
            values.get(ui.REASON_BLOCK, {}).get(ui.REASON_INPUT, {}).get("value") or ""
        ).strip()
        if not reason:
            await ack(
                response_action="errors",
                errors={ui.REASON_BLOCK: "Say why, so the requester knows what to change."},
            )
            return
        await ack()
        user = str(body.get("user", {}).get("id") or "")
        approval_id = str(view.get("private_metadata") or "")
        refusal = await decide(
            baton, approval_id=approval_id, user_id=user, approve=False, reason=reason
        )
        if refusal is not None:
            from storage import approvals

            approval = await approvals.get(baton.db, approval_id)
            if approval is not None and approval.channel_id:
                await tell(baton, channel=approval.channel_id, user=user, text=refusal)


def _where(body: dict[str, Any]) -> tuple[str, str]:
    channel = str(
        (body.get("channel") or {}).get("id")
        or (body.get("container") or {}).get("channel_id")
        or ""
    )
    return channel, str((body.get("user") or {}).get("id") or "")


async def _click(baton: Baton, body: dict[str, Any], *, approve: bool) -> None:
    channel, user = _where(body)
    action = (body.get("actions") or [{}])[0]
    refusal = await decide(
        baton,
        approval_id=str(action.get("value") or ""),
        user_id=user,
        approve=approve,
        message_ts=(body.get("container") or {}).get("message_ts"),
    )
    if refusal is not None and channel:
        await tell(baton, channel=channel, user=user, text=refusal)
