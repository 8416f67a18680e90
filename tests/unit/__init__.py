"""weibao's unit tests (see the README's Tests section)."""
