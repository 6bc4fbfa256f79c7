"""The case stage: reports of one problem become one case — the first opens a task, the others merge
into it — and N reports of one item in one place raise a hotspot.

    case-reports (keyed by case: item and street) ──► cases ──► task-events: `dispatched` (a new case)
                                                        │        or `merged` (a report joins the case's task)
                                                        ├──► alerts (hotspot)
                                                        └──► manual (a repeat call whose case has closed)
                       table `cases`: case key → {"cases": open cases, "hotspots": recent reports per place}

The table is written only here and co-partitioned with `case-reports`; an entry leaves it after the
retention (agents/retention.py). Whistles never come here.
"""

from __future__ import annotations

import datetime as dt
import json

from agents.callers import operator_review
from agents.dutylists import DutyLists
from agents.retention import Retention
from agents.wiring import StageState, Wiring
from infra import metrics
from pipeline import ids
from pipeline.dedupe import Deduper, MergePolicy, item_policies
from pipeline.hotspots import HotspotDetector
from pipeline.retention import case_last_at
from schemas import Alert, ClassifiedIncident, TaskEvent

STAGE = "cases"


def add_case_stage(wiring: Wiring, dutylists: DutyLists, default_merge_policy: MergePolicy) -> StageState:
    settings, names = wiring.settings, wiring.names
    cases = wiring.table("cases")
    # A case key's entry leaves after the retention, counted from its latest case or hotspot report.
    retention = Retention(wiring, cases, "cases", lambda stored: case_last_at(json.loads(stored)),
                          lambda key, stored: (names.case_reports, key.encode()))

    @wiring.app.agent(wiring.topic(names.case_reports), name=STAGE, concurrency=1)
    async def case_stage(stream):
        await wiring.each_batch(stream, STAGE, ClassifiedIncident, decide_case, before=dutylists.ready.wait,
                                forget=retention.forget)

    async def decide_case(classified: ClassifiedIncident) -> None:
        incident, decision = classified.incident, classified.dispatches
        state = json.loads(cases.get(classified.case_key) or '{"cases": [], "hotspots": {}}')
        # One case key is one item in one street, so that street's list sets the merge window.
        deduper = Deduper(item_policies(dutylists.book_for(incident).items_for(incident.street),
                                        default_merge_policy)).restore(state["cases"])
        detector = HotspotDetector(settings.hotspot_threshold,
                                   dt.timedelta(hours=settings.hotspot_window_hours)).restore(state["hotspots"])
        redelivered = deduper.knows(incident.incident_id)
        # A report without dispatches is a repeat call bound for the operator: it may join a case, not open one.
        merge = deduper.offer(incident, decision[0].item_no if decision else "-", open_case=bool(decision))
        if merge is None and not decision:  # the case it repeated has closed meanwhile
            wiring.send_manual(operator_review(classified))
            return
        if merge is None:
            wiring.open_tasks(incident, decision)
            opened = deduper.case(incident.incident_id)
            opened.task_id, opened.unit = decision[0].dispatch_id, decision[0].unit
        else:
            case = deduper.case(merge.case_id)
            merged = TaskEvent(event_id=ids.task_event_id(case.task_id, "merged", incident.incident_id),
                               task_id=case.task_id, incident_id=incident.incident_id, unit=case.unit, kind="merged",
                               at=incident.reported_at, by="cases",
                               note=f"case {case.case_id}: {merge.rule}, report {merge.reports}")
            wiring.send(names.task_events, merged.task_id, merged)
            if not redelivered:
                metrics.MERGED.labels(merge.rule).inc()
        if not redelivered and (merge is None or merge.rule != "repeat call"):  # a caller repeating is one report
            hotspot = detector.offer(decision[0].item_no, incident.grid_code or incident.community, incident.reported_at)
            if hotspot:
                alert = Alert(alert_id=ids.stable_id(hotspot.alert_id), kind="hotspot", item_no=hotspot.item_no,
                              to_unit=decision[0].unit, place=hotspot.place, reports=hotspot.reports,
                              first_at=hotspot.first_at, last_at=hotspot.last_at, raised_at=wiring.now())
                # On the broker before the table counts the report (rare, so waited for): a report
                # redelivered after a restart raises no hotspot again, so a lost one stayed lost.
                await wiring.sent([wiring.send(names.alerts, alert.alert_id, alert)])
                metrics.ALERTS.labels("hotspot").inc()
        state = {"cases": deduper.state(), "hotspots": detector.state(), "handled_at": wiring.now().isoformat()}
        cases[classified.case_key] = json.dumps(state, ensure_ascii=False).encode()
        retention.touched(classified.case_key, case_last_at(state))

    return StageState({"cases": cases}, (retention,))
