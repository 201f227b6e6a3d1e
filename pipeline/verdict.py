"""A sample's verdict: the one shape its state takes, in the CPU worker, on its way to the
model pool and back, and in the ledger row it ends as.

`Status` is the ledger's `status` column: a str enum, so it compares equal to (and is
written as) "pending", "kept", "rejected", "failed". A sample leaves `pending` exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Status(StrEnum):
    PENDING = "pending"  # still in the step chain
    KEPT = "kept"  # passed every filter: in a shard
    REJECTED = "rejected"  # reason = the rejecting filter's name
    FAILED = "failed"  # reason = the error category


@dataclass
class Verdict:
    status: Status = Status.PENDING
    reason: str = ""  # rejecting filter's name, or the error category
    detail: str = ""  # which criterion, or the full error message
    scores: dict[str, float] = field(default_factory=dict)  # ledger column -> value
    filter_outputs: dict = field(default_factory=dict)  # filter name -> what it leaves for later steps
    annotations: dict = field(default_factory=dict)  # annotator name -> its json.annotations entry
    embeddings: dict = field(default_factory=dict)  # CLIP encoder label -> float16 image embedding (pipeline/embeddings.py)

    def reject(self, filter_name: str, detail: str) -> None:
        """The first rejecting filter decides; later ones (score_all) only add scores."""
        if self.status == Status.PENDING:
            self.status, self.reason, self.detail = Status.REJECTED, filter_name, detail

    def fail(self, reason: str, detail: str) -> None:
        """The first failure is the one recorded."""
        if self.status != Status.FAILED:
            self.status, self.reason, self.detail = Status.FAILED, reason, detail

    def fail_with(self, error: str) -> None:
        """fail() from 'category: message' (a message without a one-word category is an `error`)."""
        category, _, message = error.partition(": ")
        if not message or " " in category:
            category, message = "error", error
        self.fail(category, message)

    def keep(self) -> None:
        if self.status == Status.PENDING:
            self.status = Status.KEPT

    def copy(self) -> Verdict:
        """What is sent to the model pool: the pool's changes come back in a new one."""
        return Verdict(self.status, self.reason, self.detail, dict(self.scores), dict(self.filter_outputs), dict(self.annotations),
                       dict(self.embeddings))

    def merge(self, other: Verdict) -> None:
        """Take what a step chain (here or in the model pool) decided: its scores and
        outputs are added; its status replaces this one's, except that a failure stays."""
        self.scores.update(other.scores)
        self.filter_outputs.update(other.filter_outputs)
        self.annotations.update(other.annotations)
        self.embeddings.update(other.embeddings)
        if other.status == Status.FAILED:
            self.fail(other.reason, other.detail)
        elif self.status != Status.FAILED:
            self.status, self.reason, self.detail = Status(other.status), other.reason, other.detail
