"""The writes behind follow-ups and revisions, on SQLite and PostgreSQL: a follow-up is
stored only in a thread Baton has a run in, and a run is revised at most once."""

from __future__ import annotations

from storage import new_runs, run_states, runs
from storage.db import Database, utcnow
from storage.models import Run, TaskRow
from storage.writes import row_values


async def create_in_thread(
    db: Database, run: Run, *, seen: str | None, notice: str, follow_up_only: bool = False
) -> tuple[Run | None, bool]:
    """Store one run asked for in a Slack thread, as a group of one; (run, queued)."""
    request = new_runs.NewRun(
        row_values(run), seen=seen, in_thread=True, notice=notice, follow_up_only=follow_up_only
    )
    (taken,) = await new_runs.store(db, [request])
    return taken.run, taken.queued


def in_thread(request: str, thread_ts: str) -> Run:
    return Run(
        id=runs.new_id(),
        source="follow-up",
        request=request,
        channel_id="C0GENERAL",
        thread_ts=thread_ts,
        user_id="U0ALICE",
    )


async def test_a_follow_up_is_stored_only_in_a_thread_baton_has_a_run_in(any_db: Database) -> None:
    stranger, _ = await create_in_thread(
        any_db, in_thread("lunch?", "1.000001"), seen="Ev1", notice="wait", follow_up_only=True
    )
    first, _ = await create_in_thread(
        any_db, in_thread("check the site", "2.000001"), seen="Ev2", notice="wait"
    )
    follow, queued = await create_in_thread(
        any_db, in_thread("and again?", "2.000001"), seen="Ev3", notice="wait", follow_up_only=True
    )

    assert stranger is None and first is not None and follow is not None
    assert queued  # the first run has not finished: the follow-up waits for it
    assert (
        await runs.thread_runs(any_db, channel_id="C0GENERAL", thread_ts="1.000001", before="-")
        == []
    )
    # The message in the stranger's thread was not even marked seen: nothing of it is kept.
    again, _ = await create_in_thread(
        any_db, in_thread("lunch?", "1.000001"), seen="Ev1", notice="wait"
    )
    assert again is not None


async def test_a_run_is_revised_at_most_once(any_db: Database) -> None:
    run, _ = await create_in_thread(
        any_db, in_thread("find the owner", "3.000001"), seen=None, notice="wait"
    )
    assert run is not None
    await run_states.run_started(
        any_db, run.id, driver="test", deadline_at=utcnow(), budget_usd=None
    )
    await run_states.plan_ready(any_db, run.id, {"title": "Plan", "tasks": []}, [])

    def task(task_id: str) -> TaskRow:
        return TaskRow(run_id=run.id, task_id=task_id, position=1, agent="a", instruction="i")

    first = await runs.save_revision(any_db, run.id, {"title": "Plan (revised)"}, [task("x")])
    second = await runs.save_revision(any_db, run.id, {"title": "again"}, [task("y")])

    assert (first, second) == (True, False)
    assert [t.task_id for t in await runs.list_tasks(any_db, run.id)] == ["x"]
    stored = await runs.get_run(any_db, run.id)
    assert stored is not None and stored.plan is not None
    assert stored.plan["revision"] == {"title": "Plan (revised)"}
    kinds = [e.kind for e in await runs.events(any_db, run.id)]
    assert kinds.count("plan_revised") == 1
