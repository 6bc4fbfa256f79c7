"""The SLA timer's index: only the tasks due come out, each once, at its latest instant."""

import datetime as dt

from pipeline.sla import DueIndex

T0 = dt.datetime(2026, 12, 2, 9, tzinfo=dt.UTC)


def at(minutes: int) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def test_only_due_tasks_come_out_in_order_and_once():
    index = DueIndex()
    for n in range(1000):
        index.set(f"later-{n}", at(60 + n))
    index.set("b", at(5))
    index.set("a", at(1))
    assert index.pop_due(at(0)) == []
    assert index.pop_due(at(10)) == ["a", "b"]
    assert index.pop_due(at(10)) == []  # taken out: a task comes back only when set again
    assert len(index) == 1000


def test_a_new_instant_replaces_the_old_and_none_removes():
    index = DueIndex()
    index.set("moved-later", at(1))
    index.set("moved-later", at(30))
    index.set("moved-earlier", at(30))
    index.set("moved-earlier", at(2))
    index.set("closed", at(3))
    index.set("closed", None)
    assert index.pop_due(at(10)) == ["moved-earlier"]
    assert index.pop_due(at(40)) == ["moved-later"]
    assert len(index) == 0


def test_many_replacements_keep_one_live_entry_per_task():
    index = DueIndex()
    for step in range(5000):  # enough to trigger the rebuild of the heap
        index.set(f"task-{step % 10}", at(step))
    assert len(index._heap) <= 2 * len(index) + 1024
    due = index.pop_due(at(10_000))
    assert sorted(due) == [f"task-{n}" for n in range(10)]
