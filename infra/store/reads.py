"""Every screen's and endpoint's reads: exact figures with FINAL or argMax, the board of the whole
history from the sealed rows and the rollup's recent days, listings from the small copies."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from infra.store.client import StoreClient
from infra.store.queries import (
    ATTENTION_COLUMNS,
    BOARD_QUANTILES,
    DEADLINE_SQL,
    DEADLINE_STATES,
    EVERY_SOURCE,
    NOW_SQL,
    OPEN_SQL,
    OVERDUE_SQL,
    QUEUE_COLUMNS,
    QUEUE_SQL,
    ROLLUP_SQL,
    RULING_COLUMNS,
    RULINGS_SQL,
    SLA_ALIASES,
    SLA_DIMENSIONS,
    SLA_FIGURES,
    SLA_QUANTILES,
    SLA_SQL,
    STATUS_COUNTS,
    TASK_COLUMNS,
    TIMELINE_COLUMNS,
    TIMELINE_SELECT,
    TREND_FIGURES,
    UNSEALED_SQL,
    task_filter,
)
from pipeline.rates import rate, sla_rates
from pipeline.sla import FINISH_RUNNING


def _jsonable(value):
    """A value as JSON says it: instants in ISO 8601 with their offset (the store's are UTC, read naive)."""
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _sla_row(r: tuple) -> dict:
    """A row of SLA_SQL or ROLLUP_SQL (the key, then SLA_FIGURES) as the board shows it."""
    key, f = r[0], dict(zip(SLA_FIGURES, r[1:], strict=True))
    return {
        "key": key, **{name: f[name] for name in ("tasks", "returned", "open", "parked", "overdue_open", "handled",
                                                  "closed", "evaluated", "supervised", "escalated")},
        **sla_rates(f),
        **{f"{name}_p{q}": _hours(f[name], n) for name, _ in SLA_QUANTILES for n, q in enumerate((50, 90))},
    }


def _hours(quantiles: list[float], n: int) -> float | None:
    value = quantiles[n] if quantiles else None
    return None if value is None or value != value else round(value, 2)  # NaN: no rows


class StoreReads(StoreClient):
    def stats(self) -> dict:
        """The figures `cityops demo` prints, the screen polls and the tests check: the large tables'
        counts summed from activity_hours and the SLA rollup (a few thousand rows, whatever the
        history), the small tables' counted."""
        activity = {figure: n for figure, n in self.query(
            "SELECT figure, sum(n) FROM {db}.activity_hours FINAL GROUP BY figure") if n}

        def group(prefix: str) -> dict[str, int]:
            found = {figure.removeprefix(prefix): n for figure, n in activity.items() if figure.startswith(prefix)}
            return dict(sorted(found.items(), key=lambda kv: (-kv[1], kv[0])))

        statuses = ", ".join(f"sumIf({name}, dimension = 'total')" for name, _ in STATUS_COUNTS)
        by_status, returned_primary = self.query(
            f"SELECT [{statuses}], sumIf(returned, dimension = 'role' AND key = 'primary') "
            f"FROM {{db}}.sla_rollup FINAL WHERE dimension IN ('total', 'role') AND source = '{EVERY_SOURCE}'")[0]
        tasks_by_status = {name.removeprefix("status_"): n for (name, _), n in zip(STATUS_COUNTS, by_status) if n}
        manual, requeued, tanpai_refused = self.query(
            "SELECT countIf(attempt = 0), countIf(attempt > 0), countIf(tanpai_refused) FROM {db}.manual_reviews FINAL")[0]
        alerts = dict(self.query("SELECT kind, count() FROM {db}.alerts FINAL GROUP BY kind"))
        per_unit = group("first_dispatch:")
        events = group("event:")
        return {
            "clickhouse_incidents": activity.get("incidents", 0),
            "clickhouse_dispatches": activity.get("dispatches", 0),
            "clickhouse_task_events": sum(events.values()),
            # First routings: each incident is dispatched, merged or queued once (returns are counted apart).
            "manual": manual,
            "merged": activity.get("merged_incidents", 0),
            "hotspots": alerts.get("hotspot", 0),
            "alerts": alerts,
            "clickhouse_tasks": sum(tasks_by_status.values()),
            "tasks_by_status": tasks_by_status,
            "task_events_by_kind": events,
            "rerouted": activity.get("rerouted", 0),
            "requeued": requeued,
            "returned_primary": returned_primary,
            "webhook_attempts": self.count("webhook_attempts"),
            "tanpai_refused": tanpai_refused,
            "closed_without_dispatch": dict(self.query(
                "SELECT close_reason, count() FROM {db}.operator_decisions FINAL WHERE action = 'close' "
                "GROUP BY close_reason")),
            "deadlettered": self.count("dead_letters"),
            "dispatched": sum(per_unit.values()),
            "dispatched_per_unit": per_unit,
        }

    def sla(self, by: str = "unit", now: dt.datetime | None = None, since: dt.datetime | None = None,
            until: dt.datetime | None = None, source: str | None = None, *, quantiles: bool = True) -> dict:
        """The figures city platforms publish, per `by` and in total, from the tasks table (a task is one
        unit's share of an incident): the rates of pipeline.rates.SLA_RATES, their counts,
        supervised (督办) and escalated counts; p50/p90 working hours (TDigest over a
        window; the whole history's from histograms, within 2.5%: HOURS_BUCKETS).
        `now`: the instant the figures are as of (what is overdue then); `since`/`until`: the tasks
        dispatched in that window only; `source`: the tasks of reports from that intake source only;
        `quantiles=False`: the p50/p90 left out (None), for the whole history only (the map's load)."""
        by = SLA_ALIASES.get(by, by)
        if by not in SLA_DIMENSIONS:
            raise ValueError(f"by must be one of {', '.join(SLA_DIMENSIONS)}")
        now = now or dt.datetime.now(dt.timezone.utc)
        parameters = {"now": now.timestamp(), "since": since.timestamp() if since else 0.0,
                      "until": until.timestamp() if until else 1e10,  # 1e10 s: the year 2286
                      "source": source or ""}
        if since is None and until is None:  # the whole history: sealed rows and the rollup's last days
            both = self._whole_history(by, parameters | {"dimension": by, "row_source": source or EVERY_SOURCE}, now,
                                       quantiles)
            rows, total = [r[1:] for r in both if not r[0]], [r[1:] for r in both if r[0]]
        else:  # a window of dispatch times to the millisecond: the tasks themselves
            sql = SLA_SQL.replace("{source}", "AND source = %(source)s" if source else "")
            rows = self.query(sql.replace("{key}", f"ifNull(toString({by}), '')"), parameters)
            total = self.query(sql.replace("{key}", "'total'"), parameters)
        return {"by": by, "now": now.isoformat(), "since": since.isoformat() if since else None,
                "until": until.isoformat() if until else None, "source": source,
                "total": _sla_row(total[0]) if total else None, "rows": [_sla_row(r) for r in rows]}

    def _whole_history(self, by: str, parameters: dict, now: dt.datetime, quantiles: bool) -> list[tuple]:
        """ROLLUP_SQL's rows: where the sealed days end, and which values' sealed rows are out of date
        (both asked in one query before it)."""
        [(through, unsealed)] = self.query(
            "SELECT (SELECT max(through) FROM {db}.sla_sealed), groupArray((dimension, key)) "
            "FROM {db}.sla_unsealed FINAL WHERE NOT sealed AND dimension IN ('total', %(by)s)", {"by": by})
        if now < dt.datetime.combine(through, dt.time(), dt.timezone.utc):  # an instant before it
            through = dt.date(1970, 1, 1)  # (the sealed rows count its deadlines as passed)
        unsealed = [tuple(v) for v in unsealed]
        sql = (ROLLUP_SQL.replace("{unsealed}", UNSEALED_SQL if unsealed else "")
               .replace("{quantiles}", BOARD_QUANTILES[quantiles]))
        return self.query(sql, parameters | {"through": through, "unsealed": unsealed})

    def queue(self, limit: int = 500, offset: int = 0, *, reason: str | None = None, top_class: str | None = None,
              district: str | None = None) -> tuple[list[dict], int]:
        """Incidents waiting for an operator, oldest first, and how many wait in all (with the filters):
        the latest review of each incident that no dispatch at that routing or a later one has
        answered and no operator closed, with what the operator needs to decide. `reason` matches
        a part of the reason."""
        filters, parameters = [], {"limit": limit, "offset": offset}
        if reason:
            filters.append("AND positionUTF8(r.reason, %(reason)s) > 0")
            parameters["reason"] = reason
        if top_class:
            filters.append("AND r.top_class = %(top_class)s")
            parameters["top_class"] = top_class
        if district:
            filters.append("AND i.district = %(district)s")
            parameters["district"] = district
        rows = self.query(QUEUE_SQL.replace("{filters}", " ".join(filters)), parameters)
        total = rows[0][-1] if rows else 0
        return [dict(zip(QUEUE_COLUMNS, (_jsonable(v) for v in r[:-1]), strict=True)) for r in rows], total

    def department_tasks(self, unit: str, status: str | None = "open", limit: int = 100, offset: int = 0,
                         task_id: str | None = None, item_no: str | None = None,
                         now: dt.datetime | None = None) -> list[dict]:
        """A unit's tasks as they last stood, open ones first and the nearest deadline first, each with
        where it stands against its limits at `now` (`deadline`: queries.DEADLINE_STATES), the report
        (title, text with PII masked, address, place) and the duty item (title, legal basis) it was
        dispatched under."""
        where, parameters = task_filter(unit=unit, status=status, task_id=task_id, item_no=item_no)
        rows = self.query(
            f"SELECT {', '.join(TASK_COLUMNS)}, {DEADLINE_SQL} FROM {{db}}.tasks FINAL {where} "
            f"ORDER BY NOT ({OPEN_SQL}), ifNull(finish_by, dispatched_at), task_id LIMIT %(limit)s OFFSET %(offset)s",
            parameters | {"limit": limit, "offset": offset, "now": now or dt.datetime.now(dt.timezone.utc)})
        tasks = [dict(zip((*TASK_COLUMNS, "deadline"), (_jsonable(v) for v in row), strict=True)) for row in rows]
        if not tasks:
            return []
        reports = {r[0]: r[1:] for r in self.query(
            "SELECT incident_id, source, title, text, address, lat, lon, photo_urls FROM {db}.incidents FINAL "
            "WHERE incident_id IN %(ids)s", {"ids": list({t["incident_id"] for t in tasks})})}
        items = {r[0]: r[1:] for r in self.query(
            "SELECT dispatch_id, item_title, legal_basis FROM {db}.dispatches FINAL WHERE dispatch_id IN %(ids)s",
            {"ids": [t["task_id"] for t in tasks]})}
        for task in tasks:
            source, title, text, address, lat, lon, photos = reports.get(task["incident_id"],
                                                                         ("", "", "", None, None, None, []))
            item_title, basis = items.get(task["task_id"], ("", ""))
            task |= {"source": source, "title": title, "text": text, "address": address,
                     "location": {"lat": lat, "lon": lon} if lat is not None else None,
                     "photo_urls": photos, "item_title": item_title, "legal_basis": basis}
        return tasks

    def department_summary(self, unit: str, now: dt.datetime | None = None) -> dict:
        """What a unit's workbench heads with: its open tasks by where they stand (DEADLINE_STATES, the
        ended ones left out) and by status, and per item its tasks and open tasks (the item filter)."""
        parameters = {"unit": unit, "now": now or dt.datetime.now(dt.timezone.utc)}
        rows = self.query(f"SELECT {DEADLINE_SQL} AS deadline, status, item_no, count() FROM {{db}}.tasks FINAL "
                          "WHERE unit = %(unit)s GROUP BY deadline, status, item_no", parameters)
        by_deadline, by_status, items = dict.fromkeys(DEADLINE_STATES[:-1], 0), {}, {}
        for deadline, status, item_no, count in rows:
            item = items.setdefault(item_no, {"item_no": item_no, "tasks": 0, "open": 0})
            item["tasks"] += count
            if deadline != "ended":
                by_deadline[deadline] += count
                by_status[status] = by_status.get(status, 0) + count
                item["open"] += count
        return {"unit": unit, "open": sum(by_status.values()), "by_deadline": by_deadline, "by_status": by_status,
                "items": sorted(items.values(), key=lambda i: (-i["open"], -i["tasks"], i["item_no"]))}

    def month_reports(self, since: dt.datetime, until: dt.datetime) -> list[dict]:
        """The reports received in [since, until) for the bulletin's recurring problems: title, text (masked
        at intake), the street else the district, and the task each is handled under (its primary task
        of the latest routing, or the case's task it joined as a repeat): item, unit, still open."""
        columns = ("incident_id", "reported_at", "source", "title", "text", "place")
        reports = [dict(zip(columns, r, strict=True)) for r in self.query(
            "SELECT incident_id, reported_at, source, title, text, coalesce(street, district) FROM {db}.incidents FINAL "
            "WHERE reported_at >= %(since)s AND reported_at < %(until)s ORDER BY reported_at, incident_id",
            {"since": since, "until": until})]
        if not reports:
            return []
        ids = [r["incident_id"] for r in reports]
        task_of = dict(self.query("SELECT incident_id, any(task_id) FROM {db}.task_events FINAL WHERE kind = 'merged' "
                                  "AND incident_id IN %(ids)s GROUP BY incident_id", {"ids": ids}))
        task_of |= dict(self.query("SELECT incident_id, argMax(task_id, attempt) FROM {db}.tasks FINAL WHERE "
                                   "role = 'primary' AND incident_id IN %(ids)s GROUP BY incident_id", {"ids": ids}))
        tasks = {r[0]: r[1:] for r in self.query(
            f"SELECT task_id, item_no, unit, {OPEN_SQL} FROM {{db}}.tasks FINAL WHERE task_id IN %(tasks)s",
            {"tasks": list(set(task_of.values())) or [""]})}
        for report in reports:
            item_no, unit, still_open = tasks.get(task_of.get(report["incident_id"], ""), (None, None, False))
            report |= {"item_no": item_no, "unit": unit, "open": bool(still_open)}
        return reports

    def late_tasks(self, since: dt.datetime, until: dt.datetime, as_of: dt.datetime, limit: int = 20) -> list[dict]:
        """The tasks dispatched in [since, until) most past their finish limit as of `as_of`: completed
        late (by how long), or still running past it (by how long so far), the latest first."""
        columns = ("task_id", "unit", "item_no", "street", "status", "dispatched_at", "finish_by", "completed_at",
                   "late_hours")
        rows = self.query(
            "SELECT task_id, unit, item_no, street, status, dispatched_at, finish_by, completed_at, "
            f"dateDiff('second', finish_by, ifNull(completed_at, {NOW_SQL})) / 3600 AS late_hours "
            "FROM {db}.tasks FINAL WHERE dispatched_at >= %(since)s AND dispatched_at < %(until)s "
            f"AND finish_by IS NOT NULL AND (completed_at > finish_by OR ({OVERDUE_SQL})) "
            "ORDER BY late_hours DESC, task_id LIMIT %(limit)s",
            {"since": since, "until": until, "now": as_of, "limit": limit})
        return [dict(zip(columns, (_jsonable(v) for v in r), strict=True)) for r in rows]

    def task_status(self, task_id: str) -> tuple[str, str, str, int] | None:
        """(unit, incident id, status, version) of a task as ClickHouse last holds it."""
        rows = self.query("SELECT unit, incident_id, status, version FROM {db}.tasks FINAL WHERE task_id = %(id)s",
                          {"id": task_id})
        return rows[0] if rows else None

    def content_hash(self, incident_id: str) -> tuple[str, dt.datetime] | None:
        """(content hash, received) of a stored incident, or None: not (yet) stored."""
        rows = self.query("SELECT content_hash, reported_at FROM {db}.incidents FINAL WHERE incident_id = %(id)s",
                          {"id": incident_id})
        return (rows[0][0], dt.datetime.fromisoformat(_jsonable(rows[0][1]))) if rows else None

    def submitted_by(self, task_id: str) -> str | None:
        """The id of the API key that sent the report a task came from (None: not sent through the api)."""
        rows = self.query("SELECT submitted_by FROM {db}.incidents FINAL WHERE incident_id IN (SELECT incident_id "
                          "FROM {db}.tasks FINAL WHERE task_id = %(id)s)", {"id": task_id})
        return rows[0][0] if rows else None

    def ticket_reporter(self, ticket_no: str) -> str | None:
        """The reporter hash (salted phone hash) of a hotline ticket, or None: no such ticket, or no phone."""
        rows = self.query("SELECT reporter_hash FROM {db}.incidents FINAL WHERE source = 'hotline' AND "
                          "source_id = %(no)s LIMIT 1", {"no": ticket_no})
        return rows[0][0] if rows else None

    def waiting(self, incident_id: str) -> bool:
        """Whether the incident is in the operator queue (as ClickHouse last holds it)."""
        return bool(self.query(QUEUE_SQL.replace("{filters}", "AND r.incident_id = %(id)s"),
                               {"id": incident_id, "limit": 1, "offset": 0}))

    def hotline_tickets(self, ticket_nos: Sequence[str] | None = None, start: dt.datetime | None = None,
                        end: dt.datetime | None = None, limit: int = 1000) -> list[dict]:
        """Hotline tickets, newest first, each with what a reporter may know: the primary task of the
        latest routing (unit, status, item, deadlines, score), the result text of its completion, and
        the operator's note when closed without a dispatch. No caller, no phone."""
        where, parameters = ["source = 'hotline'"], {"limit": limit}
        if ticket_nos is not None:
            where.append("source_id IN %(nos)s")
            parameters["nos"] = list(ticket_nos)
        if start is not None:
            where.append("reported_at >= %(start)s")
            parameters["start"] = start
        if end is not None:
            where.append("reported_at <= %(end)s")
            parameters["end"] = end
        columns = ("ticket_no", "incident_id", "reported_at", "title", "text", "address", "lat", "lon", "category_hint",
                   "photo_urls")
        tickets = [dict(zip(columns, (_jsonable(v) for v in row), strict=True)) for row in self.query(
            f"SELECT source_id, {', '.join(columns[1:])} FROM {{db}}.incidents FINAL WHERE {' AND '.join(where)} "
            "ORDER BY reported_at DESC, source_id LIMIT %(limit)s", parameters)]
        if not tickets:
            return []
        incident_ids = [t["incident_id"] for t in tickets]
        task_columns = ("task_id", "unit", "status", "item_no", "dispatched_at", "accepted_at", "completed_at",
                        "closed_at", "evaluated_at", "score", "finish_by", "last_event_at")
        latest: dict[str, dict] = {}
        for row in self.query(f"SELECT incident_id, {', '.join(task_columns)} FROM {{db}}.tasks FINAL "
                              "WHERE incident_id IN %(ids)s AND role = 'primary' ORDER BY attempt",
                              {"ids": incident_ids}):
            latest[row[0]] = dict(zip(task_columns, (_jsonable(v) for v in row[1:]), strict=True))
        task_ids = [t["task_id"] for t in latest.values()] or [""]  # `IN ()` is no SQL: match nothing
        titles = dict(self.query("SELECT dispatch_id, item_title FROM {db}.dispatches FINAL "
                                 "WHERE dispatch_id IN %(ids)s", {"ids": task_ids}))
        results = {task: (text, at) for task, text, at in self.query(
            "SELECT task_id, result, at FROM {db}.task_events FINAL WHERE task_id IN %(ids)s AND kind = 'completed' "
            "ORDER BY at", {"ids": task_ids})}
        closed = {incident: {"reason": reason, "note": note, "at": _jsonable(at)} for incident, reason, note, at in
                  self.query("SELECT incident_id, close_reason, note, decided_at FROM {db}.operator_decisions FINAL "
                             "WHERE incident_id IN %(ids)s AND action = 'close'", {"ids": incident_ids})}
        for ticket in tickets:
            task = latest.get(ticket["incident_id"])
            result = results.get(task["task_id"]) if task else None
            ticket |= {"task": task, "item_title": titles.get(task["task_id"]) if task else None,
                       "result": {"text": result[0], "at": _jsonable(result[1])} if result else None,
                       "closed_without_dispatch": closed.get(ticket["incident_id"])}
        return tickets

    def tasks(self, unit: str | None = None, status: str | None = None, limit: int = 1000) -> list[dict]:
        """Tasks as they last stood, as a department clerk lists them (status 'open': not yet completed)."""
        where, parameters = task_filter(unit=unit, status=status)
        result = self._query_result(f"SELECT * EXCEPT (stored_at) FROM {{db}}.tasks FINAL {where} "
                                    "ORDER BY finish_by, task_id LIMIT %(limit)s", parameters | {"limit": limit})
        return [dict(zip(result.column_names, (_jsonable(v) for v in row), strict=True)) for row in result.result_rows]

    def dispatch_accuracy(self, by: str = "unit", since: dt.datetime | None = None,
                          until: dt.datetime | None = None) -> dict:
        """Dispatch accuracy as the units report it: per unit (or item), the primary tasks of first
        routings, how many came back (退单: 职能不符 wrong function, 属地不符 wrong area, other) and how many
        incidents were routed again (a return re-routed, or an operator's dispatch after it). Replayed
        history is left out (it was never dispatched by this system)."""
        if by not in ("unit", "item_no"):
            raise ValueError(f"by must be unit or item_no, not {by!r}")
        when = ("AND dispatched_at >= %(since)s " if since else "") + ("AND dispatched_at < %(until)s" if until else "")
        figures = ("dispatched", "returned", "wrong_function", "wrong_area", "rerouted")
        rows = self.query(
            f"SELECT {by}, count(), countIf(returned_at IS NOT NULL), countIf(return_reason = '职能不符'), "
            "countIf(return_reason = '属地不符'), countIf(incident_id IN (SELECT incident_id FROM {db}.tasks FINAL "
            "WHERE role = 'primary' AND attempt > 0)) "
            f"FROM {{db}}.tasks FINAL WHERE role = 'primary' AND attempt = 0 AND NOT replayed {when} "
            f"GROUP BY {by} ORDER BY count() DESC, {by}", {"since": since, "until": until})

        def with_rates(key: str, counts: Sequence[int]) -> dict:
            row = {"key": key, **dict(zip(figures, counts, strict=True))}
            return row | {"return_rate": rate(row["returned"], row["dispatched"]),
                          "wrong_function_rate": rate(row["wrong_function"], row["dispatched"]),
                          "reroute_rate": rate(row["rerouted"], row["dispatched"])}

        total = [sum(r[n] for r in rows) for n in range(1, len(figures) + 1)]
        return {"by": by, "total": with_rates("total", total), "rows": [with_rates(r[0], r[1:]) for r in rows]}

    def rulings(self, since: dt.datetime | None = None, until: dt.datetime | None = None,
                limit: int = 10_000) -> list[dict]:
        """The examples the operations centre gave (RULINGS_SQL), oldest first, decided in [since, until):
        what the next model learns from, and is judged by."""
        rows = self.query(RULINGS_SQL, {"since": since.timestamp() if since else 0.0,
                                        "until": until.timestamp() if until else 1e10, "limit": limit})
        return [{c: _jsonable(v) for c, v in zip(RULING_COLUMNS, r, strict=True)} for r in rows]

    def model_figures(self, since: dt.datetime) -> dict:
        """Per text model, its first automatic dispatches (primary) and how many came back as 职能不符
        (the production measure of its right-unit rate); per city day since `since`, the reports routed
        for the first time: sent automatically by a model, or left waiting for an operator."""
        by_model = self.query(
            "SELECT d.model_version, count(), countIf(t.return_reason = '职能不符') FROM {db}.tasks AS t FINAL "
            "INNER JOIN (SELECT dispatch_id, model_version FROM {db}.dispatches FINAL) AS d ON d.dispatch_id = t.task_id "
            "WHERE t.role = 'primary' AND t.attempt = 0 AND NOT t.replayed AND d.model_version IS NOT NULL "
            "GROUP BY d.model_version ORDER BY count() DESC")
        parameters = {"since": since.timestamp()}
        sent = dict(self.query(
            "SELECT toDate(dispatched_at, 'Asia/Shanghai') AS day, uniqExact(incident_id) FROM {db}.dispatches FINAL "
            "WHERE attempt = 0 AND model_version IS NOT NULL AND dispatched_at >= toDateTime64(%(since)s, 3) "
            "GROUP BY day", parameters))
        waited = dict(self.query(
            "SELECT toDate(queued_at, 'Asia/Shanghai') AS day, uniqExact(incident_id) FROM {db}.manual_reviews FINAL "
            "WHERE attempt = 0 AND queued_at >= toDateTime64(%(since)s, 3) GROUP BY day", parameters))
        return {
            "models": [{"version": v, "dispatched": n, "wrong_function": wrong, "right_unit_rate": rate(n - wrong, n)}
                       for v, n, wrong in by_model],
            "by_day": [{"day": day.isoformat(), "sent_automatically": sent.get(day, 0), "waited": waited.get(day, 0),
                        "auto_share": rate(sent.get(day, 0), sent.get(day, 0) + waited.get(day, 0))}
                       for day in sorted(set(sent) | set(waited))],
        }

    def overdue(self, now: dt.datetime, limit: int = 50, *, prewarned: bool = False) -> list[dict]:
        """The overdue tasks (the one definition: open, past the finish deadline), longest overdue first,
        then with `prewarned` those past their pre-warning and not yet due, nearest deadline first: who
        has it, under which item, where — no report text, no caller. `overdue` tells the two apart."""
        where = (f"status IN {FINISH_RUNNING} AND finish_warn_at <= {NOW_SQL}" if prewarned
                 else OVERDUE_SQL)
        return self._attention(where, {"now": now.timestamp(), "limit": limit})

    def trend(self, bucket: str, since: dt.datetime, until: dt.datetime, tz: str) -> list[dict]:
        """Per hour or day (in the city's zone `tz`) from `since` to `until`: reports received, tasks
        dispatched, tasks closed and closed on time — the screen's trend lines. Counted in whole hours
        (activity_hours): the first bucket counts from the start of the hour `since` falls in, and a
        day is the city's day for zones a whole number of hours from UTC."""
        if bucket not in ("hour", "day"):
            raise ValueError("bucket must be hour or day")
        counts: dict = {}
        for at, figure, n in self.query(
                f"SELECT toStartOf{bucket.capitalize()}(hour, %(tz)s) AS at, figure, sum(n) FROM {{db}}.activity_hours FINAL "
                "WHERE figure IN %(figures)s AND hour >= toStartOfHour(toDateTime64(%(since)s, 3)) "
                "AND hour < toDateTime64(%(until)s, 3) GROUP BY at, figure ORDER BY at",
                {"since": since.timestamp(), "until": until.timestamp(), "tz": tz, "figures": TREND_FIGURES}):
            instant = (at if at.tzinfo else at.replace(tzinfo=dt.timezone.utc)).astimezone(dt.timezone.utc)
            counts.setdefault(instant.isoformat(), {})[figure] = n
        return [{"at": at, **{n: row.get(n, 0) for n in TREND_FIGURES}} for at, row in sorted(counts.items())]

    def grid_tasks(self, grid_code: str, now: dt.datetime, limit: int = 100) -> list[dict]:
        """A grid's open tasks, the longest overdue first (what the map's click shows; no text, no caller)."""
        return self._attention(f"grid_code = %(grid)s AND {OPEN_SQL}",
                               {"grid": grid_code, "now": now.timestamp(), "limit": limit})

    def _attention(self, where: str, parameters: dict) -> list[dict]:
        """Tasks matching `where` as the screen lists them, the earliest deadline first, each saying
        whether it is overdue at `now` (the one definition)."""
        rows = self.query(f"SELECT {', '.join(ATTENTION_COLUMNS)}, {OVERDUE_SQL} AS overdue FROM {{db}}.open_tasks FINAL "
                          f"WHERE {where} ORDER BY finish_by, task_id LIMIT %(limit)s", parameters)
        return [dict(zip((*ATTENTION_COLUMNS, "overdue"), (*map(_jsonable, row[:-1]), bool(row[-1])), strict=True))
                for row in rows]

    def timeline(self, task_id: str) -> list[dict]:
        """A task's events in order: dispatch, acceptance, returns, extensions, alerts, completion,
        verification, evaluation — who acted and the event's facts, never a note or a result text."""
        rows = self.query(
            f"SELECT {TIMELINE_SELECT} FROM {{db}}.task_events FINAL "
            "WHERE task_id = %(task_id)s ORDER BY at, event_id", {"task_id": task_id})
        return [dict(zip(TIMELINE_COLUMNS, (_jsonable(v) for v in row), strict=True)) for row in rows]
