"""The month's reports as the console shows them: the same readers as `GET /reports/*`
(projections/*), as tables with a chart each, the events every row came from as links,
and CSV (api.reports.to_csv) and .xlsx (openpyxl) downloads."""
from __future__ import annotations

import io
import json
import re
from datetime import datetime, timezone
from typing import Any

from domain.org import Org
from domain.policy import CST
from projections import candidates, departments, escalations, scorecard, sla_compliance

REPORTS = {
    "engineers": "Engineer scorecards (工程师考核)",
    "departments": "Department accountability (部门责任)",
    "sla": "SLA compliance (服务时限)",
    "escalations": "Escalations (预警与上报)",
    "candidates": "Reward and penalty candidates (奖惩)",
}
# the columns each table shows, in order (the downloads carry every column)
COLUMNS = {
    "engineers": ("name", "engineer", "department", "tickets_handled", "on_site_on_time_share",
                  "resolved_on_time_share", "hours_to_arrive_median", "hours_to_resolve_median", "breaches",
                  "escalations_caused", "satisfaction_mean"),
    "departments": ("department_name", "breaches", "escalations", "leadership_escalations",
                    "substantiated_complaints", "return_causes", "tickets"),
    "sla": ("customer", "severity", "zone", "window", "tickets", "met", "missed", "open", "met_share"),
    "escalations": ("at", "case_kind", "case_id", "customer", "level", "goal", "responsible", "target", "source",
                    "reason"),
    "candidates": ("kind", "rule", "subject_kind", "name", "subject", "figures"),
}


def valid_month(month: str) -> bool:
    return bool(re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", month))


def month_bounds(month: str) -> tuple[str, str]:
    """The month (CST) as ISO text in UTC: start <= t < end."""
    year, m = int(month[:4]), int(month[5:])
    start = datetime(year, m, 1, tzinfo=CST)
    end = datetime(year + (m == 12), m % 12 + 1, 1, tzinfo=CST)
    return _utc(start), _utc(end)


def _utc(at: datetime) -> str:
    return at.astimezone(timezone.utc).isoformat(timespec="microseconds")


def rows(models: Any, name: str, month: str) -> list[dict[str, Any]]:
    """The report's rows for the month, read as `GET /reports/{name}` reads them."""
    if name == "engineers":
        return scorecard.engineer_scorecard(models.view(scorecard.EngineerScorecard.name), month)
    if name == "departments":
        return departments.department_accountability(models.view(departments.DepartmentAccountability.name), month)
    if name == "sla":
        return sla_compliance.sla_compliance(models.view(sla_compliance.SlaCompliance.name), month)
    if name == "escalations":
        start, end = month_bounds(month)
        return escalations.escalation_log(models.view(escalations.EscalationLog.name), start, end)
    if name == "candidates":
        return candidates.candidates(models.view(candidates.Candidates.name), month)
    raise KeyError(name)


def _chart(name: str, data: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The chart of a report: categories and series of whole numbers, for ECharts."""
    if not data:
        return None
    if name == "engineers":
        cats = [r.get("name") or r["engineer"] for r in data]
        series = {"tickets handled": [r["tickets_handled"] for r in data], "breaches": [r["breaches"] for r in data],
                  "escalations": [r["escalations_caused"] for r in data]}
    elif name == "departments":
        cats = [r.get("department_name") or r["department"] for r in data]
        series = {"breaches": [r["breaches"] for r in data], "escalations": [r["escalations"] for r in data],
                  "substantiated complaints": [r["substantiated_complaints"] for r in data]}
    elif name == "sla":
        cats = [f"{r['customer']} · {r['severity']}/{r['zone']} · {r['window']}" for r in data]
        series = {"met": [r["met"] for r in data], "missed": [r["missed"] for r in data],
                  "open": [r["open"] for r in data]}
    elif name == "escalations":
        by_level: dict[str, int] = {}
        for r in data:
            key = {0: "warnings", 1: "to superior", 2: "to leadership"}.get(int(r.get("level") or 0), "other")
            by_level[key] = by_level.get(key, 0) + 1
        cats, series = list(by_level), {"count": list(by_level.values())}
    else:
        rewards = sum(1 for r in data if r["kind"] == "reward")
        cats, series = ["rewards", "penalties"], {"candidates": [rewards, len(data) - rewards]}
    return {"categories": cats, "series": [{"name": k, "data": v} for k, v in series.items()]}


def _links(refs: list[dict[str, Any]]) -> list[dict[str, str]]:
    out = []
    for r in refs or []:
        key = next((k for k in r if k.endswith("_id")), None)
        if key is None:
            continue
        kind, case_id = key[:-3], r[key]
        versions = ",".join(str(v) for v in r.get("versions", []))
        href = f"/console/tickets/{case_id}" if kind == "ticket" else f"/console/cases/{kind}/{case_id}"
        out.append({"href": f"{href}#v{r.get('versions', [''])[0]}" if r.get("versions") else href,
                    "text": f"{'' if kind == 'ticket' else kind + ' '}{case_id} @{versions}"})
    return out


def _cell(key: str, value: Any) -> str:
    if value is None:
        return ""
    if key == "at":
        from api.console.present import cst
        return cst(value)
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def sections(models: Any, org: Org, month: str) -> list[dict[str, Any]]:
    out = []
    for name, title in REPORTS.items():
        data = rows(models, name, month)
        cols = COLUMNS[name]
        chart = _chart(name, data)
        out.append({"name": name, "title": title, "columns": [c.replace("_", " ") for c in cols],
                    "rows": [{"cells": [_cell(c, r.get(c)) for c in cols], "links": _links(r.get("events", []))}
                             for r in data],
                    "chart": json.dumps(chart, ensure_ascii=False).replace("</", "<\\/") if chart else None, "count": len(data)})
    return out


def to_xlsx(name: str, data: list[dict[str, Any]]) -> bytes:
    """The rows as an Excel workbook: one sheet, a header row, nested figures as text."""
    from openpyxl import Workbook

    from api.reports import _cell as csv_cell

    wb = Workbook()
    ws = wb.active
    ws.title = name[:31]
    columns: list[str] = []
    for row in data:
        columns += [k for k in row if k not in columns]
    ws.append(columns)
    for row in data:
        ws.append([csv_cell(k, row.get(k)) for k in columns])
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()
