"""What a stage did with one term: the record every run_* function returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Status = Literal["done", "skipped", "busy", "failed"]


@dataclass(frozen=True)
class TermOutcome:
    """One term's result in one stage: done (with counts), skipped (already done), busy (another worker is doing
    it: --busy skip) or failed (why)."""

    term: str
    status: Status
    detail: str = ""
