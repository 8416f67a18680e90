"""Reward and penalty rules (奖惩, §十一, §五.5), as data.

Each rule names the kind of subject it judges (a customer account, a staff member or a
department), the monthly figures it needs and the events that are its evidence. The
candidates read model keeps the facts; the rules are applied when the report is read,
so changing a rule needs no rebuild. WEIBAO_RULES_FILE may point at a TOML file with
`[[rules]]` tables of the same shape to replace these defaults.

Figures, per subject per month (China Standard Time):
  tickets                 customer: tickets reported; staff: tickets resolved as assignee
  breaches                windows missed, of any case kind (customer: on its cases; staff/department: as responsible)
  escalations             escalations of a missed window to a superior or leadership (level 1 or 2)
  leadership_escalations  escalations that reached company leadership (level 2)
  ratings                 customer sign-offs with a satisfaction score
  low_ratings             of those, scores at or below LOW_RATING
  mean_rating             mean satisfaction (1-5)
  mean_quality            mean supervisor quality rating on close (1-5; staff only)
  complaints              complaints the customer registered (§九.C)
  substantiated_complaints complaints found substantiated, attributed to the person or department
  valuable_suggestions    complaints or opinions closed with a suggestion marked valuable (§九.C.6)

Evidence names the facts listed with a candidate: ticket, breach, escalation,
leadership_escalation, rating, low_rating, quality, complaint, substantiated_complaint,
valuable_suggestion.
"""
from __future__ import annotations

import operator
import os
import tomllib
from pathlib import Path
from typing import Any

LOW_RATING = 2  # a satisfaction of 1 or 2 says the customer was poorly served

OPERATORS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt, "==": operator.eq}
SUBJECTS = ("customer", "staff", "department")
EVIDENCE = ("ticket", "breach", "escalation", "leadership_escalation", "rating", "low_rating", "quality",
            "complaint", "substantiated_complaint", "valuable_suggestion")
FIGURES = ("tickets", "breaches", "escalations", "leadership_escalations", "ratings", "low_ratings",
           "mean_rating", "mean_quality", "complaints", "substantiated_complaints", "valuable_suggestions")

RULES: list[dict[str, Any]] = [
    {"id": "customer_no_breach_no_complaint", "kind": "reward", "subject": "customer",
     "basis": "§十一 reward: no complaint during the maintenance contract",
     "when": [["tickets", ">=", 1], ["breaches", "==", 0], ["escalations", "==", 0], ["low_ratings", "==", 0],
              ["complaints", "==", 0]],
     "evidence": ["ticket", "rating"]},
    {"id": "valuable_suggestion", "kind": "reward", "subject": "customer",
     "basis": "§九.C.6 a valuable suggestion is rewarded",
     "when": [["valuable_suggestions", ">=", 1]],
     "evidence": ["valuable_suggestion"]},
    {"id": "engineer_on_time_and_praised", "kind": "reward", "subject": "staff",
     "basis": "§十一 reward: praise from the customer, wider reputation",
     "when": [["tickets", ">=", 3], ["breaches", "==", 0], ["mean_rating", ">=", 4.5]],
     "evidence": ["ticket", "rating"]},
    {"id": "repeated_breaches", "kind": "penalty", "subject": "staff",
     "basis": "§五.5 delay that blocks work is held to account",
     "when": [["breaches", ">=", 2]],
     "evidence": ["breach"]},
    {"id": "escalated_to_leadership", "kind": "penalty", "subject": "staff",
     "basis": "§九.A.2 a window still unmet half a window after the deadline reached company leadership",
     "when": [["leadership_escalations", ">=", 1]],
     "evidence": ["leadership_escalation"]},
    {"id": "poor_service_ratings", "kind": "penalty", "subject": "staff",
     "basis": "§十一 penalty: poor attitude or service, as the customers' sign-off scores say",
     "when": [["low_ratings", ">=", 2]],
     "evidence": ["low_rating"]},
    {"id": "substantiated_complaint", "kind": "penalty", "subject": "staff",
     "basis": "§九.C.7, §十一 penalty: complaints about attitude or service count in the assessment",
     "when": [["substantiated_complaints", ">=", 1]],
     "evidence": ["substantiated_complaint"]},
    {"id": "department_substantiated_complaint", "kind": "penalty", "subject": "department",
     "basis": "§九.C.7 complaints count in the assessment of the departments involved",
     "when": [["substantiated_complaints", ">=", 1]],
     "evidence": ["substantiated_complaint"]},
    {"id": "department_repeated_breaches", "kind": "penalty", "subject": "department",
     "basis": "§十一 penalty: departments not cooperating; §五.5",
     "when": [["breaches", ">=", 3]],
     "evidence": ["breach"]},
]


class RuleError(ValueError):
    """A rule that cannot be applied; the message says which and why."""


def check(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for r in rules:
        rid = r.get("id", "?")
        if r.get("kind") not in ("reward", "penalty"):
            raise RuleError(f"rule {rid}: kind must be 'reward' or 'penalty'")
        if r.get("subject") not in SUBJECTS:
            raise RuleError(f"rule {rid}: subject must be one of {SUBJECTS}")
        for cond in r.get("when", []):
            if len(cond) != 3 or cond[0] not in FIGURES or cond[1] not in OPERATORS:
                raise RuleError(f"rule {rid}: condition {cond!r} is not [figure, operator, number] "
                                f"with a figure of {FIGURES} and an operator of {tuple(OPERATORS)}")
        for ev in r.get("evidence", []):
            if ev not in EVIDENCE:
                raise RuleError(f"rule {rid}: evidence {ev!r} is not one of {EVIDENCE}")
    return rules


def load_rules() -> list[dict[str, Any]]:
    path = os.environ.get("WEIBAO_RULES_FILE")
    if not path:
        return RULES
    return check(tomllib.loads(Path(path).read_text(encoding="utf-8")).get("rules", []))


def holds(rule: dict[str, Any], figures: dict[str, float | None]) -> bool:
    for name, op, value in rule["when"]:
        have = figures.get(name)
        if have is None or not OPERATORS[op](have, value):
            return False
    return True


check(RULES)
