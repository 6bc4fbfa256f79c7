import datetime as dt

from pipeline.hotspots import HotspotDetector

T0 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.timezone.utc)


def at(hours: float) -> dt.datetime:
    return T0 + dt.timedelta(hours=hours)


def test_the_nth_report_in_the_window_alerts_once():
    d = HotspotDetector(threshold=3, window=dt.timedelta(hours=24))
    fired = [d.offer("CJ-053", "g1", at(h)) for h in (0, 1, 2, 3, 4)]
    assert [f is not None for f in fired] == [False, False, True, False, False]
    assert (fired[2].reports, fired[2].first_at, fired[2].last_at) == (3, at(0), at(2))


def test_places_and_items_count_apart():
    d = HotspotDetector(threshold=2)
    assert d.offer("CJ-053", "g1", at(0)) is None
    assert d.offer("CJ-053", "g2", at(1)) is None
    assert d.offer("CJ-029", "g1", at(2)) is None
    assert d.offer("CJ-053", "g1", at(3)) is not None


def test_reports_outside_the_window_do_not_count_and_a_new_surge_alerts_again():
    d = HotspotDetector(threshold=2, window=dt.timedelta(hours=24))
    assert d.offer("CJ-053", "g1", at(0)) is None
    assert d.offer("CJ-053", "g1", at(30)) is None  # the first fell out of the window
    assert d.offer("CJ-053", "g1", at(31)) is not None
    assert d.offer("CJ-053", "g1", at(60)) is None  # quiet: alerting ends
    assert d.offer("CJ-053", "g1", at(61)) is not None


def test_no_place_no_hotspot():
    assert HotspotDetector(threshold=1).offer("CJ-053", None, at(0)) is None


def test_state_round_trips():
    d = HotspotDetector(threshold=2)
    d.offer("CJ-053", "g1", at(0))
    d.offer("CJ-053", "g1", at(1))
    again = HotspotDetector(threshold=2).restore(d.state())
    assert again.state() == d.state()
    assert again.offer("CJ-053", "g1", at(2)) is None  # still alerting: no second alert
