"""Temporal workflows: timers and escalation, no I/O."""
