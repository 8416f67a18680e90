"""Text a person types, as the payload models take it: no control characters, so
nothing unprintable reaches a record, a read model or a report (PostgreSQL refuses a
NUL outright, DESIGN.md "Bad input"). `Line` is one line: a name, an id, a reference.
`Lines` is free text that may run over lines and keep its tabs."""
from __future__ import annotations

import unicodedata
from typing import Annotated

from pydantic import AfterValidator

MULTI_LINE = frozenset("\n\r\t")


def refuse_control(value: str, allowed: frozenset[str] = frozenset()) -> str:
    """`value` unchanged, or ValueError naming the first control character (C0, DEL,
    C1) or lone surrogate in it; the field's name is added by the model."""
    for i, ch in enumerate(value):
        if ch not in allowed and unicodedata.category(ch) in ("Cc", "Cs"):
            kind = "a lone surrogate" if unicodedata.category(ch) == "Cs" else "a control character"
            raise ValueError(f"{kind} (U+{ord(ch):04X}) at position {i} is not allowed"
                             + ("; only newlines and tabs" if allowed else ""))
    return value


def _line(value: str) -> str:
    return refuse_control(value)


def _lines(value: str) -> str:
    return refuse_control(value, MULTI_LINE)


Line = Annotated[str, AfterValidator(_line)]
Lines = Annotated[str, AfterValidator(_lines)]
