"""The message a warning or an escalation sends (§九.A.2, §九.C.2: every report and
complaint is followed up), in Chinese and English in one message: which case, which goal
is due or missed and its deadline in China time, who is responsible, the level in words
(预警 / 上报直接上级 / 上报公司领导) and the acknowledgement link.

A message never carries confidential data (§四.5): `render` takes only the fields it
shows, and `facts` — the one place they are picked from a case — reads nothing else, so a
contact phone, a password or core parameters in the case cannot reach a message. The
target's own contacts are for delivery (activities/deliver.py), never the text. Pure: no
I/O, no clock."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Mapping, NamedTuple

CHINA = timezone(timedelta(hours=8))  # China Standard Time is a fixed UTC+8

LEVELS: dict[int, tuple[str, str]] = {  # 0 the person responsible, 1 direct superior, 2 leadership
    0: ("预警", "warning"),
    1: ("上报直接上级", "escalated to the direct superior"),
    2: ("上报公司领导", "escalated to company leadership"),
}
KINDS: dict[str, tuple[str, str]] = {
    "ticket": ("故障工单", "fault ticket"),
    "complaint": ("客户投诉", "complaint"),
    "return": ("退换货", "return/exchange"),
    "inspection": ("例行维护", "maintenance visit"),
    "plan": ("维保计划", "maintenance plan"),
}
GOALS: dict[str, tuple[str, str]] = {
    "on_site": ("到达现场", "on site"),
    "resolved": ("故障解决", "fault resolved"),
    "acknowledged": ("受理投诉", "complaint acknowledged"),
    "replied": ("答复客户", "reply to the customer"),
    "approval": ("审批", "approval"),
    "inspection": ("检验定因", "inspection and root cause"),
    "refund": ("退款", "refund"),
    "shipment": ("发出换货", "exchange unit shipped"),
    "confirmation": ("客户确认", "customer confirmation"),
    "done": ("完成维护", "visit done"),
}
# A robot's text is at most 2048 bytes (WeCom): title and body together stay within it, the
# customer, site, responsible person and reason (characters) shortened in these steps if need be.
MESSAGE_BYTES = 2048
FIT = ((200, 200, 80, 300), (80, 80, 60, 120), (40, 40, 40, 40), (20, 20, 30, 0))


class Message(NamedTuple):
    title: str
    body: str


def china_time(at: datetime | str) -> str:
    """`at` (a datetime, or ISO 8601 as events carry it; naive means UTC) in China time:
    '2026-03-02 13:00 (UTC+8)'."""
    when = datetime.fromisoformat(at) if isinstance(at, str) else at
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.astimezone(CHINA).strftime("%Y-%m-%d %H:%M") + " (UTC+8)"


def _upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]


def level_words(level: int) -> tuple[str, str]:
    """The level in words, Chinese and English (above 2 is leadership, the last level)."""
    return LEVELS[min(max(level, 0), 2)]


def render(*, kind: str, case_id: str, customer: str | None, site: str | None, goal: str | None,
           deadline: datetime | str | None, responsible: str | None, responsible_name: str | None,
           level: int, reason: str = "", ack_url: str | None = None, event: str | None = None) -> Message:
    """The title and body of a warning (`SlaWarned`, level 0), an escalation of a missed
    window (`Escalated`, 1 or 2), a customer's own escalation (`CustomerEscalated`, §九.C.3)
    or an emergency reported to leadership (`LeadershipNotified`, §九.C.2); `event` None
    means a warning at level 0 and an escalation above. `ack_url` None: no link (a warning
    needs no acknowledgement)."""
    event = event or ("SlaWarned" if level == 0 else "Escalated")
    kind_zh, kind_en = KINDS.get(kind, (kind, kind))
    goal_zh, goal_en = GOALS.get(goal or "", (goal or "", goal or ""))
    level_zh, level_en = level_words(level)
    due = china_time(deadline) if deadline else None
    case_zh, case_en = f"{kind_zh} {case_id}", f"{kind_en} {case_id}"

    if event == "SlaWarned":
        what_zh, what_en = f"「{goal_zh}」即将到期", f"{goal_en} due soon"
        line_zh = f"{case_zh} 的「{goal_zh}」将于 {due} 到期。"
        line_en = f'{_upper_first(case_en)}: "{goal_en}" is due at {due}.'
    elif event == "CustomerEscalated":
        what_zh, what_en = "客户要求上报", "the customer asks for escalation"
        line_zh = f"客户要求将{case_zh} {level_zh}。"
        line_en = f"The customer has taken {case_en} up: {level_en}."
    elif event == "LeadershipNotified":
        what_zh, what_en = "紧急事件上报", "emergency reported"
        line_zh = f"{case_zh} 是紧急事件,已上报公司领导。"
        line_en = f"{_upper_first(case_en)} is an emergency and is reported to company leadership."
    else:
        what_zh, what_en = f"「{goal_zh}」已超时", f"{goal_en} missed"
        line_zh = f"{case_zh} 的「{goal_zh}」已于 {due} 超时未完成。"
        line_en = f'{_upper_first(case_en)}: "{goal_en}" was due at {due} and is missed.'
    if goal and due and event in ("CustomerEscalated", "LeadershipNotified"):
        line_zh += f"「{goal_zh}」的期限:{due}。"
        line_en += f' "{goal_en}" is due at {due}.'

    title = f"【维保·{level_zh}】{case_zh} {what_zh} | [weibao] {_upper_first(level_en)}: {case_en}, {what_en}"

    def text(customer: str, site: str, name: str, reason: str) -> Message:
        who = f"{name} ({responsible})" if name and responsible else name or responsible
        zh = [f"【维保】{level_zh}", line_zh, f"客户:{customer}" + (f"({site})" if site else ""),
              f"负责人:{who or '尚未指定'}", f"级别:{level_zh}"]
        en = [f"[weibao] {_upper_first(level_en)}", line_en, f"Customer: {customer}" + (f" ({site})" if site else ""),
              f"Responsible: {who or 'nobody yet'}", f"Level: {level_en}"]
        if reason:
            zh.append(f"原因:{reason}")
            en.append(f"Reason: {reason}")
        if ack_url:
            zh.append(f"请确认收到:{ack_url}")
            en.append(f"Please acknowledge: {ack_url}")
        return Message(title, "\n".join(zh) + "\n\n" + "\n".join(en))

    # the free texts are shortened step by step until the message fits a robot's text
    reason = " ".join((reason or "").split())
    fields = (customer or "", site or "", responsible_name or "", reason)
    for limits in FIT:
        message = text(*(_clip(f, n) for f, n in zip(fields, limits)))
        if len(f"{message.title}\n\n{message.body}".encode()) <= MESSAGE_BYTES:
            break
    return message


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:max(limit - 1, 0)] + "…" if limit else ""


def facts(kind: str, case: Mapping[str, Any], alarm: Mapping[str, Any], *, event: str | None = None,
          responsible_name: str | None = None, ack_url: str | None = None) -> dict[str, Any]:
    """The arguments of `render`, from a case (its state or opening data, as a dict) and
    the data of the event announced (`SlaWarned`, `Escalated`, …: goal, deadline,
    responsible, level, reason). Only these fields are read: nothing else in the case can
    reach a message."""
    case_id = case.get("case_id") or case.get("ticket_id") or alarm.get("case_id")
    return {
        "kind": kind,
        "case_id": str(case_id),
        "customer": str(case.get("customer") or ""),
        "site": case.get("site") or None,
        "goal": alarm.get("goal"),
        "deadline": alarm.get("deadline"),
        "responsible": alarm.get("responsible"),
        "responsible_name": responsible_name,
        "level": int(alarm.get("level") or 0),
        "reason": str(alarm.get("reason") or ""),
        "ack_url": ack_url,
        "event": event,
    }


def message_for(kind: str, case: Mapping[str, Any], alarm: Mapping[str, Any], **known: Any) -> Message:
    """`render` over `facts`: the message of a case's warning or escalation."""
    return render(**facts(kind, case, alarm, **known))
