"""Pure business rules and aggregates of weibao (维保). No Temporal, no I/O.

Workflows import only the pure rule modules (`policy`, `lifecycle`, `sla`, `steps`,
`org`, `casework` and the `*_rules`/`maintenance` modules); the eventsourcing
aggregates (`ticket`, `complaint`, `returns`, `inspection`, `plan`, `chained`) are
for activities and read paths."""
