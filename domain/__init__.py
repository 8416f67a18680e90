"""Pure business rules and aggregates of weibao (维保). No Temporal, no I/O.

Workflows may import `policy`, `lifecycle`, `sla`, `steps` and `org`; only
activities and read paths import the aggregates in `ticket`."""
