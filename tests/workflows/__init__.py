"""weibao's workflows tests (see the README's Tests section)."""
