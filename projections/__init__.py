"""Read models folded from the tickets' events, with tracking (exactly once, resumable).

One read model per module — ticket_list, scorecard, departments, sla_compliance,
escalations, faults, candidates (its rules in rules.py) — on the shared machinery of
base.py; runner.py applies them in batches (`python -m projections`)."""
