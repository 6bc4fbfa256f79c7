"""The caller stage: a reporter's reports meet here, so a repeat call (重复件) joins the case of the
report it repeats — even when it was classified under another item, located in another street, or
fell below the operator threshold.

    classified (keyed by reporter hash) ──► callers ──► case-reports (keyed by case: item and street)
                                              │   └──► manual (bound for the operator, and not a repeat
                                              │        of an open case: the review names what it repeats)
                                  table `callers`: reporter hash → recent reports (the case key of each)

The table is written only here and co-partitioned with `classified`. A reporter's entry is pruned
when they report again, and leaves the table after the retention (agents/retention.py).
"""

from __future__ import annotations

import json

from agents.dutylists import DutyLists
from agents.retention import Retention
from agents.wiring import StageState, Wiring
from pipeline.dedupe import MergePolicy, RecentReport, follow_repeat_calls, item_policies
from pipeline.retention import caller_last_at
from schemas import ClassifiedIncident, ManualReview

STAGE = "callers"


def add_caller_stage(wiring: Wiring, dutylists: DutyLists, default_merge_policy: MergePolicy) -> StageState:
    callers = wiring.table("callers")
    # A reporter's entry leaves after the retention, counted from their latest report.
    retention = Retention(wiring, callers, "callers", lambda stored: caller_last_at(json.loads(stored)),
                          lambda reporter, stored: (wiring.names.classified, reporter.encode()))

    @wiring.app.agent(wiring.topic(wiring.names.classified), name=STAGE, concurrency=1)
    async def caller_stage(stream):
        await wiring.each_batch(stream, STAGE, ClassifiedIncident, follow_caller, before=dutylists.ready.wait,
                                forget=retention.forget)

    def follow_caller(classified: ClassifiedIncident) -> None:
        incident = classified.incident
        if incident.reporter_hash:
            recent = [RecentReport.from_json(r) for r in json.loads(callers.get(incident.reporter_hash) or "[]")]
            policy_for = item_policies(dutylists.book_for(incident).items_for(incident.street), default_merge_policy)
            verdict = follow_repeat_calls(recent, incident, classified.dispatches[0].item_no if classified.dispatches
                                          else None, classified.case_key, policy_for)
            callers[incident.reporter_hash] = json.dumps([r.to_json() for r in verdict.recent],
                                                         ensure_ascii=False).encode()
            retention.touched(incident.reporter_hash, max((r.at for r in verdict.recent), default=None))
            classified = classified.model_copy(update={"case_key": verdict.case_key, "repeat_of": verdict.repeat_of})
        if classified.case_key is not None:
            wiring.send(wiring.names.case_reports, classified.case_key, classified)
        else:
            wiring.send_manual(operator_review(classified))

    return StageState({"callers": callers}, (retention,))


def operator_review(classified: ClassifiedIncident) -> ManualReview:
    """The report's review, naming the earlier report it repeats, so the operator sees one problem."""
    review = classified.review
    if classified.repeat_of:
        review = review.model_copy(update={
            "reason": f"{review.reason}; repeats incident {classified.repeat_of} (same caller, near-identical text)"})
    return review
