"""The live hyperparameter sets of a model server, reloaded from the rollout file.

The rollout file (a ConfigMap key in a cluster) names a stable set, an optional
candidate set and the candidate's share of users; ``adaptrec.rollout`` defines the
format. :class:`RolloutSource` keeps the active rollout as one immutable snapshot,
so a request that reads it once sees one consistent pair of sets while a reload
swaps in the next. It polls the file's content instead of watching it with
inotify, because Kubernetes updates a mounted ConfigMap by swapping a symlink to a
new directory, which a watch on the old file never reports. Comparing content also
catches two writes within one mtime tick.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from adaptrec.hyperparams import HyperparamError, HyperparamSet, HyperparamSpace
from adaptrec.rollout import Rollout, RolloutError

from . import metrics

log = logging.getLogger(__name__)

# The version label of slates ranked by the cold-start fallback, which uses no
# hyperparameter set.
COLD_START_VERSION = "cold-start"


# Set by the operator's kserve rollout strategy on each predictor revision.
HYPERPARAMS_ENV = "ADAPTREC_HYPERPARAMS"


@dataclass(frozen=True)
class ActiveRollout:
    """One applied rollout and where it came from."""

    rollout: Rollout
    source: str
    digest: str | None
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    # HyperparamSet.version hashes the values on every access, so the versions
    # are computed once here for the request path.
    stable_version: str = field(init=False)
    candidate_version: str | None = field(init=False)

    def __post_init__(self) -> None:
        candidate = self.rollout.candidate
        object.__setattr__(self, "stable_version", self.rollout.stable.version)
        object.__setattr__(
            self, "candidate_version", None if candidate is None else candidate.version
        )

    @property
    def versions(self) -> set[str]:
        versions = {self.stable_version}
        if self.candidate_version is not None:
            versions.add(self.candidate_version)
        return versions

    def assign(self, user_id: str) -> tuple[HyperparamSet, str]:
        """Return the set that serves ``user_id`` and its version."""
        hyperparams = self.rollout.assign(user_id)
        if hyperparams is self.rollout.candidate and self.candidate_version:
            return hyperparams, self.candidate_version
        return hyperparams, self.stable_version


class RolloutSource:
    """The rollout a model server serves, read from a file or the space's initial set.

    Args:
        model_name: Value of the ``model`` label on the rollout metrics.
        space: Hyperparameter space that every set in the file must fit.
        path: Rollout file. Without one, the space's initial set is the stable set
            and nothing is reloaded.
        feedback_window_s: How long, in seconds, a version that has left the
            rollout still counts as recently served, so that clicks on slates
            shown before a rollout change are accepted.
        clock: Monotonic time source in seconds.
        prepare: Called with a rollout before it goes live, in the polling
            thread, so that slow work (training the components a new set needs)
            happens while the previous rollout still serves. An exception rejects
            the rollout like an invalid file.
    """

    def __init__(
        self,
        model_name: str,
        space: HyperparamSpace,
        path: str | Path | None = None,
        feedback_window_s: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
        prepare: Callable[[Rollout], None] | None = None,
    ) -> None:
        self.model_name = model_name
        self.space = space
        self.path = None if path is None else Path(path)
        self.feedback_window_s = feedback_window_s
        self._clock = clock
        self._prepare = prepare
        self._active: ActiveRollout | None = None
        # Version -> clock time at which it left the rollout.
        self._retired: dict[str, float] = {}
        # Digest of the last rejected content, so one bad file is logged and
        # counted once, not once per poll.
        self._rejected_digest: str | None = None

    @property
    def active(self) -> ActiveRollout | None:
        """The applied rollout, or None while no valid one has been read."""
        return self._active

    def load(self) -> bool:
        """Apply the initial rollout; return whether one is active.

        Without a file, the space's initial set becomes the stable set. With a
        file that is missing or invalid, nothing is active and the server stays
        not ready until :meth:`poll` reads a valid file.
        """
        if self.path is None:
            stable, source = self._set_without_file()
            rollout = Rollout(stable=stable)
            if self._prepare is not None:
                self._prepare(rollout)
            self._apply(rollout, source, None)
            return True
        self.poll()
        return self._active is not None

    def _set_without_file(self) -> tuple[HyperparamSet, str]:
        """Return the set to serve without a rollout file, and where it came from.

        The operator's ``kserve`` strategy puts each revision's set in the
        predictor's ``ADAPTREC_HYPERPARAMS`` environment variable; without it, the
        space's initial values are served.
        """
        document = os.environ.get(HYPERPARAMS_ENV)
        if not document:
            initial = "the initial values of the hyperparameter space"
            return self.space.initial(), initial
        try:
            stable = HyperparamSet.from_json_dict(json.loads(document), self.space)
        except (json.JSONDecodeError, HyperparamError) as error:
            raise RolloutError(
                f"environment variable {HYPERPARAMS_ENV} is not a valid hyperparameter "
                f'set ({error}); set it to {{"version": ..., "values": {{...}}}} '
                "or unset it"
            ) from None
        return stable, f"the environment variable {HYPERPARAMS_ENV}"

    def poll(self) -> bool:
        """Reload the rollout file if its content changed; return whether it did.

        A file that cannot be read or is invalid leaves the active rollout in
        place; the error is logged and counted once per distinct content.
        """
        if self.path is None:
            return False
        try:
            content = self.path.read_bytes()
        except OSError as error:
            self._reject(f"unreadable:{error.errno}", f"cannot read it: {error}")
            return False
        digest = hashlib.sha256(content).hexdigest()
        if self._active is not None and digest == self._active.digest:
            return False
        if digest == self._rejected_digest:
            return False
        try:
            rollout = Rollout.read(self.path, self.space)
        except RolloutError as error:
            self._reject(digest, str(error))
            return False
        if self._prepare is not None:
            try:
                self._prepare(rollout)
            except Exception as error:
                # Whatever failed, the sets already serving stay; the error is
                # logged with the file it came from.
                self._reject(
                    digest,
                    f"preparing its hyperparameter sets failed: "
                    f"{type(error).__name__}: {error}",
                )
                return False
        self._apply(rollout, str(self.path), digest)
        return True

    def is_recent_version(self, version: str) -> bool:
        """Return whether ``version`` is served now or left the rollout recently."""
        if version == COLD_START_VERSION:
            return True
        active = self._active
        if active is not None and version in active.versions:
            return True
        retired_at = self._retired.get(version)
        if retired_at is None:
            return False
        return self._clock() - retired_at <= self.feedback_window_s

    async def watch(self, interval_s: float) -> None:
        """Poll the rollout file every ``interval_s`` seconds until cancelled."""
        if self.path is None:
            return
        log.info(
            "model %s: watching rollout file %s every %.1f s",
            self.model_name,
            self.path,
            interval_s,
        )
        while True:
            await asyncio.sleep(interval_s)
            try:
                # File reads can block on a network filesystem, so they run in a
                # worker thread and never stall requests on the event loop.
                await asyncio.to_thread(self.poll)
            except Exception:
                # A failed poll must not end the watcher, or the server would
                # silently stop following the rollout file.
                log.exception(
                    "model %s: polling rollout file %s failed; retrying in %.1f s",
                    self.model_name,
                    self.path,
                    interval_s,
                )

    def _apply(self, rollout: Rollout, source: str, digest: str | None) -> None:
        previous = self._active
        self._active = ActiveRollout(rollout, source, digest)
        self._rejected_digest = None

        # Track versions that just left the rollout, for feedback validation.
        now = self._clock()
        new_versions = self._active.versions
        if previous is not None:
            for version in previous.versions - new_versions:
                self._retired[version] = now
        for version in new_versions:
            self._retired.pop(version, None)
        expired = [
            version
            for version, retired_at in self._retired.items()
            if now - retired_at > self.feedback_window_s
        ]
        for version in expired:
            del self._retired[version]

        self._update_metrics(previous)
        candidate = rollout.candidate
        log.info(
            "model %s: serving stable %s and candidate %s to %d%% of users, from %s",
            self.model_name,
            rollout.stable.version,
            "none" if candidate is None else candidate.version,
            rollout.canary_percent,
            source,
        )

    def _reject(self, digest: str, reason: str) -> None:
        if digest == self._rejected_digest:
            return
        self._rejected_digest = digest
        metrics.ROLLOUT_RELOAD_ERRORS.labels(model=self.model_name).inc()
        active = self._active
        if active is None:
            serving = "nothing, so the model stays not ready"
        else:
            stable = active.rollout.stable.version
            serving = f"the rollout from {active.source} (stable {stable})"
        log.error(
            "model %s: rejected rollout file %s, still serving %s: %s",
            self.model_name,
            self.path,
            serving,
            reason,
        )

    def _update_metrics(self, previous: ActiveRollout | None) -> None:
        metrics.ROLLOUT_RELOADS.labels(model=self.model_name).inc()
        if previous is not None:
            for role, version in _roles(previous.rollout):
                metrics.ROLLOUT_INFO.remove(self.model_name, role, version)
        assert self._active is not None
        for role, version in _roles(self._active.rollout):
            metrics.ROLLOUT_INFO.labels(
                model=self.model_name, role=role, version=version
            ).set(1)
        metrics.CANARY_PERCENT.labels(model=self.model_name).set(
            self._active.rollout.canary_percent
        )
        # Per-version series start at zero when a version goes live, so rate()
        # counts the first slates and clicks instead of starting at the first
        # scrape that finds the series.
        for version in self._active.versions | {COLD_START_VERSION}:
            metrics.RECOMMENDATIONS.labels(model=self.model_name, version=version)
            metrics.CLICKS.labels(model=self.model_name, version=version)


def _roles(rollout: Rollout) -> list[tuple[str, str]]:
    roles = [("stable", rollout.stable.version)]
    if rollout.candidate is not None:
        roles.append(("candidate", rollout.candidate.version))
    return roles
