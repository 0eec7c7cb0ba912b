"""The rollout file: which hyperparameter sets a model server serves, and to whom.

The file (in a cluster, a ConfigMap key mounted into the model server) is JSON::

    {"stable": <set>, "candidate": <set or null>, "canaryPercent": 0..99}

where a set is ``{"version": ..., "values": {...}}``. A user goes to the candidate
when ``bucket(user_id) < canaryPercent``, so each user sees one version for as long
as the percentage stays the same. The operator writes this file and the model
server reads it, so both import this module.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adaptrec.hyperparams import HyperparamError, HyperparamSet, HyperparamSpace


class RolloutError(ValueError):
    """A rollout document is invalid."""


def user_bucket(user_id: str | int) -> int:
    """Map a user id to a bucket in 0..99, the same in every process and release.

    Python's ``hash`` is salted per process, so SHA-256 of the id's text is used.
    """
    digest = hashlib.sha256(str(user_id).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % 100


@dataclass(frozen=True)
class Rollout:
    """A stable set, an optional candidate set and the candidate's share of users."""

    stable: HyperparamSet
    candidate: HyperparamSet | None = None
    canary_percent: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.canary_percent, bool) or not isinstance(
            self.canary_percent, int
        ):
            raise RolloutError(
                f"canaryPercent must be an integer, got {self.canary_percent!r}"
            )
        if not 0 <= self.canary_percent <= 99:
            raise RolloutError(
                f"canaryPercent must lie in 0..99, got {self.canary_percent}"
            )
        if self.candidate is None and self.canary_percent != 0:
            raise RolloutError(
                f"canaryPercent is {self.canary_percent} but there is no candidate; "
                "set a candidate or set canaryPercent to 0"
            )

    def assign(self, user_id: str | int) -> HyperparamSet:
        """Return the set that ``user_id`` is served with."""
        if self.candidate is not None and user_bucket(user_id) < self.canary_percent:
            return self.candidate
        return self.stable

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "stable": self.stable.to_json_dict(),
            "candidate": None
            if self.candidate is None
            else self.candidate.to_json_dict(),
            "canaryPercent": self.canary_percent,
        }

    @classmethod
    def from_json_dict(
        cls, document: Any, space: HyperparamSpace | None = None
    ) -> Rollout:
        """Parse and validate a rollout document; bounds are checked with ``space``."""
        if not isinstance(document, Mapping):
            raise RolloutError(
                "a rollout must be a JSON object with keys stable, candidate and "
                f"canaryPercent; got {type(document).__name__}"
            )
        unknown = sorted(set(document) - {"stable", "candidate", "canaryPercent"})
        if unknown:
            raise RolloutError(
                f"rollout has unknown keys {unknown}; allowed: stable, candidate, "
                "canaryPercent"
            )
        if document.get("stable") is None:
            raise RolloutError("rollout is missing the required 'stable' set")
        try:
            stable = HyperparamSet.from_json_dict(document["stable"], space)
            raw_candidate = document.get("candidate")
            candidate = (
                None
                if raw_candidate is None
                else HyperparamSet.from_json_dict(raw_candidate, space)
            )
        except HyperparamError as error:
            raise RolloutError(f"rollout has an invalid set: {error}") from None
        return cls(stable, candidate, document.get("canaryPercent", 0))

    @classmethod
    def read(cls, path: str | Path, space: HyperparamSpace | None = None) -> Rollout:
        """Read a rollout file; raises :class:`RolloutError` naming the file."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as error:
            raise RolloutError(f"cannot read rollout file {path}: {error}") from None
        try:
            document = json.loads(text)
        except json.JSONDecodeError as error:
            raise RolloutError(
                f"rollout file {path} is not valid JSON: {error}"
            ) from None
        try:
            return cls.from_json_dict(document, space)
        except RolloutError as error:
            raise RolloutError(f"rollout file {path}: {error}") from None
