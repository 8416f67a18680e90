"""weibao's e2e tests (see the README's Tests section)."""
