"""History replay without a broker: records → tickets with their own times, the events that replay a
task's life, routing to the unit the record names, and the SLA clock keeping quiet about history."""

from __future__ import annotations

import datetime as dt

import pytest

from infra.replay import MappingError, load_mapping, read_records
from pipeline.classify import Classification
from pipeline.replay import ReplayRowError, history_events, replayed_updates, to_ticket
from pipeline.route import route_history
from pipeline.sla import SlaClock
from pipeline.workcalendar import WorkCalendar
from schemas import Incident

NYC = dt.timezone(dt.timedelta(hours=-5))
ROW = {"Unique Key": "19938272", "Created Date": "03/01/2011 12:34:42 PM", "Closed Date": "03/14/2011 03:59:20 PM",
       "Due Date": "03/22/2011 02:27:57 PM", "Agency": "DPR", "Complaint Type": "Damaged Tree",
       "Descriptor": "Branch Cracked", "Resolution Description": "", "Incident Address": "186 25 STREET",
       "Borough": "BROOKLYN", "Latitude": "40.660812", "Longitude": "-73.9"}
CLOCK = SlaClock(WorkCalendar())
UNKNOWN = Classification(item_no=None, top_class=None, confidence=0.1, candidates=(), reason="no class")


def test_a_record_becomes_a_ticket_with_its_own_times_and_outcome():
    ticket = to_ticket(load_mapping("us311"), ROW)
    assert ticket.ticket_no == "nyc311-19938272"
    assert ticket.received_at == dt.datetime(2011, 3, 1, 12, 34, 42, tzinfo=NYC)
    assert ticket.text == "Damaged Tree；Branch Cracked"  # the empty resolution is skipped
    assert (ticket.location.lat, ticket.district) == (40.660812, "BROOKLYN")
    history = ticket.history
    assert (history.unit, history.item, history.mapping) == ("DPR", "Damaged Tree", "us311")
    assert history.closed_at == dt.datetime(2011, 3, 14, 19, 59, 20, tzinfo=dt.timezone.utc)  # EDT since 13 March
    assert history.due_at.utcoffset() == dt.timedelta(hours=-4)  # 22 March: daylight saving time in New York


@pytest.mark.parametrize(("changes", "reason"), [
    ({"Created Date": "yesterday"}, "Created Date: not a time in the format %m/%d/%Y %I:%M:%S %p"),
    ({"Created Date": ""}, "Created Date: empty"),
    ({"Closed Date": "02/28/2011 10:00:00 AM"}, "Closed Date: earlier than Created Date"),
    ({"Latitude": "north"}, "Latitude: not a number"),
    ({"Complaint Type": "", "Descriptor": " "}, "Complaint Type, Descriptor, Resolution Description: empty"),
    ({"Unique Key": "12 34"}, "Unique Key: String should match pattern"),
])
def test_a_record_that_cannot_be_replayed_says_which_column_and_never_its_value(changes, reason):
    with pytest.raises(ReplayRowError) as refused:
        to_ticket(load_mapping("us311"), ROW | changes)
    assert str(refused.value).startswith(reason)
    for value in changes.values():
        assert not value.strip() or value not in str(refused.value)


def _incident(ticket) -> Incident:
    return Incident(incident_id="i1", source="hotline", source_id=ticket.ticket_no, reported_at=ticket.received_at,
                    normalized_at=dt.datetime.now(dt.timezone.utc), text=ticket.text, history=ticket.history)


def test_the_named_unit_gets_the_order_at_its_time_and_its_life_replays_to_closed(sample_book):
    incident = _incident(to_ticket(load_mapping("us311"), ROW))
    [dispatch] = route_history(incident, UNKNOWN, sample_book)
    assert (dispatch.unit, dispatch.item_no, dispatch.dispatched_at) == ("DPR", "Damaged Tree", incident.reported_at)
    assert dispatch.due_at == incident.history.due_at
    updates = replayed_updates(incident, [dispatch], CLOCK)  # what the task stage sends for it
    assert [u.event.kind for u in updates] == ["dispatched", "accepted", "completed", "verified", "closed"]
    assert updates[0].event.dispatch == dispatch and all(u.event.incident is None for u in updates)
    opened, task = updates[0].task, updates[-1].task
    assert opened.replayed and opened.finish_by == incident.history.due_at
    assert task.status == "closed" and task.completed_at == incident.history.closed_at
    assert task.applied == [u.event.event_id for u in updates]
    # Long overdue by the clock (it is 2026), yet the timer has nothing to say about history.
    assert CLOCK.next_due(opened) is None
    assert CLOCK.due(opened, dt.datetime.now(dt.timezone.utc)) == []


def test_an_open_record_stays_open_and_without_a_due_date_the_limits_give_one(sample_book):
    incident = _incident(to_ticket(load_mapping("us311"), ROW | {"Closed Date": "", "Due Date": ""}))
    [dispatch] = route_history(incident, UNKNOWN, sample_book)
    assert dispatch.due_at is None and dispatch.finish_within_days == 5
    assert history_events(incident, [dispatch]) == []
    [update] = replayed_updates(incident, [dispatch], CLOCK)
    assert update.task.status == "dispatched" and update.task.finish_by is not None


def test_mappings_are_checked_before_anything_is_sent(tmp_path):
    with pytest.raises(MappingError, match="not a shipped mapping"):
        load_mapping("nyc")
    bad = tmp_path / "m.yaml"
    bad.write_text("name: x\nformat: xlsx\ntimezone: Mars/Olympus\nid: a\ncreated: b\ntext: [c]\n")
    with pytest.raises(MappingError) as refused:
        load_mapping(str(bad))
    assert "format:" in str(refused.value) and "timezone: Value error, not an IANA time zone" in str(refused.value)
    csv_file = tmp_path / "orders.csv"
    csv_file.write_text("Unique Key,Created Date\n1,03/01/2011 12:34:42 PM\n")
    with pytest.raises(MappingError, match="no column Agency, Borough, Closed Date"):
        list(read_records(csv_file, load_mapping("us311")))
