"""The kserve.Model that serves the hybrid recommender.

``load`` reads the artefacts that ``HybridRecommender.save`` wrote and the active
rollout. ``preprocess`` parses a v1 or v2 request. ``predict`` ranks items for
each user with the hyperparameter set that the rollout assigns to the user, or
with the cold-start ranking when the model was not trained on the user.
``postprocess`` encodes the slates in the request's protocol. Click feedback is
validated and counted by :meth:`RecommenderModel.record_feedback`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import scipy.sparse as sp
import torch

from adaptrec.hyperparams import HyperparamSpace
from adaptrec.rollout import Rollout

from . import metrics
from ._kserve import InferenceVerb, InferRequest, kserve
from .cli import DEFAULT_MODEL_DIR
from .errors import RequestError, UnknownVersionError
from .parsing import parse_feedback, parse_v1
from .parsing_v2 import parse_v2
from .ranking import Ranker
from .request_types import Catalogue, RecommendRequest, RequestLimits
from .responses import Slate, encode_v1, encode_v2
from .rollouts import RolloutSource
from .score_cache import ScoreCache, budget_bytes

log = logging.getLogger(__name__)


class Recommender(Protocol):
    """Methods of a trained recommender that the server calls (HybridRecommender)."""

    space: HyperparamSpace
    n_items: int
    # Binary users x items training matrix; its rows are the items each user has
    # seen, which recommend leaves out.
    train: sp.csr_matrix

    def recommend(
        self,
        users: torch.Tensor,
        hyperparams: Mapping[str, float],
        k: int,
        exclude_train: bool = True,
        exclude: list[list[int]] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]: ...

    def cold_start_scores(self) -> torch.Tensor: ...


@dataclass(frozen=True)
class Prediction:
    """Slates for a request, kept with the request for postprocess to encode."""

    request: RecommendRequest
    slates: list[Slate]


class RecommenderModel(kserve.Model):
    """Serves top-K recommendations from a saved hybrid recommender.

    Args:
        name: Model name in the request paths (``/v1/models/<name>:predict``).
        model_dir: Directory with the artefacts of ``HybridRecommender.save``.
        rollout_file: Rollout JSON file to serve and follow; without one, the
            space's initial hyperparameter set is served to every user.
        default_k: Slate length for requests that give no ``k``.
        max_users: Most users one predict request may name.
        max_events: Most click events one feedback request may carry.
        feedback_window_s: Seconds that a version which left the rollout still
            accepts clicks.
        score_cache_mb: Memory budget in MiB for precomputed scores of the live
            sets (see ``score_cache``); 0 scores every request from scratch.
        device: Torch device for scoring; CUDA when available, else CPU.
        loader: Reads the artefacts; ``HybridRecommender.load`` unless given.
            The loader must return an object with the :class:`Recommender`
            methods plus raw ``user_ids`` and ``item_ids``, and optionally
            ``prepare(sets)`` to train what a hyperparameter set needs.
    """

    def __init__(
        self,
        name: str,
        model_dir: str | Path = DEFAULT_MODEL_DIR,
        rollout_file: str | Path | None = None,
        *,
        default_k: int = 10,
        max_users: int = 100,
        max_events: int = 1000,
        feedback_window_s: float = 3600.0,
        score_cache_mb: float = 256.0,
        device: torch.device | None = None,
        loader: Callable[[Path, torch.device], Any] | None = None,
    ) -> None:
        # kserve's base class assigns self.ready, which reads these.
        self._artefacts_loaded = False
        self.rollouts: RolloutSource | None = None
        super().__init__(name)
        self.model_dir = Path(model_dir)
        self.rollout_file = None if rollout_file is None else Path(rollout_file)
        self.default_k = default_k
        self.max_users = max_users
        self.max_events = max_events
        self.feedback_window_s = feedback_window_s
        self.score_cache_mb = score_cache_mb
        self.score_cache: ScoreCache | None = None
        if device is None:
            device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.device = device
        self._loader = loader or _load_hybrid
        self.recommender: Any = None
        self.catalogue: Catalogue | None = None
        self.limits: RequestLimits | None = None
        self.ranker: Ranker | None = None
        self._served_counters: dict[str, Any] = {}

    @property
    def ready(self) -> bool:
        """Whether artefacts are loaded and a rollout is active."""
        return (
            self._artefacts_loaded
            and self.rollouts is not None
            and self.rollouts.active is not None
        )

    @ready.setter
    def ready(self, loaded: bool) -> None:
        # kserve's Model sets this to False in __init__ and stop().
        self._artefacts_loaded = loaded

    def load(self) -> bool:
        """Load the artefacts and the rollout; return whether the model is ready.

        Raises:
            Whatever the loader raises for missing or corrupt artefacts, so that
            the server does not start on a broken model.
        """
        started = time.perf_counter()
        recommender = self._loader(self.model_dir, self.device)
        catalogue = Catalogue(recommender.user_ids, recommender.item_ids)
        if catalogue.n_items != recommender.n_items:
            raise ValueError(
                f"model in {self.model_dir} has {recommender.n_items} items but "
                f"{catalogue.n_items} item ids; the artefacts are inconsistent"
            )

        self.recommender = recommender
        self.catalogue = catalogue
        self.limits = RequestLimits(
            n_items=catalogue.n_items,
            default_k=min(self.default_k, catalogue.n_items),
            max_users=self.max_users,
            max_events=self.max_events,
        )
        self.score_cache = ScoreCache(
            recommender, self.device, budget_bytes(self.score_cache_mb)
        )
        self.ranker = Ranker(
            self.name, recommender, catalogue, self.device, self.score_cache
        )
        self.rollouts = RolloutSource(
            self.name,
            recommender.space,
            self.rollout_file,
            feedback_window_s=self.feedback_window_s,
            prepare=self._prepare_sets,
        )
        self._artefacts_loaded = True
        self.rollouts.load()
        log.info(
            "model %s: loaded %d users and %d items from %s on %s in %.1f s; ready: %s",
            self.name,
            len(catalogue.user_ids),
            catalogue.n_items,
            self.model_dir,
            self.device,
            time.perf_counter() - started,
            self.ready,
        )
        return self.ready

    def _prepare_sets(self, rollout: Rollout) -> None:
        """Train the components that the rollout's sets need before they serve.

        The hybrid recommender trains NVDM per ``beta`` and the KG projection per
        ``gamma`` on first use, which would stall the first request of a new set.
        """
        sets = [rollout.stable]
        if rollout.candidate is not None:
            sets.append(rollout.candidate)
        prepare = getattr(self.recommender, "prepare", None)
        if prepare is not None:
            prepare(sets)
        if self.score_cache is not None:
            self.score_cache.rebuild(sets)

    def validate(self, payload: Any) -> Any:
        # preprocess has already checked the request against the catalogue.
        return payload

    def preprocess(
        self, payload: Any, headers: dict[str, str] | None = None
    ) -> RecommendRequest:
        assert self.limits is not None and self.catalogue is not None
        if isinstance(payload, InferRequest):
            return parse_v2(payload, self.limits, self.catalogue)
        return parse_v1(payload, self.limits, self.catalogue)

    def predict(
        self, payload: RecommendRequest, headers: dict[str, str] | None = None
    ) -> Prediction:
        assert self.rollouts is not None and self.catalogue is not None
        assert self.ranker is not None
        active = self.rollouts.active
        assert active is not None, "predict is only routed to a ready model"
        slates: list[Slate | None] = [None] * len(payload.users)

        # Group known users by the hyperparameter set the rollout assigns them,
        # so each set scores its users in one batch.
        groups: dict[str, tuple[Mapping[str, float], list[int]]] = {}
        cold_positions = []
        for position, user in enumerate(payload.users):
            if user.user_id not in self.catalogue.user_index:
                cold_positions.append(position)
                continue
            hyperparams, version = active.assign(user.user_id)
            group = groups.setdefault(version, (hyperparams, []))
            group[1].append(position)

        for version, (group_set, positions) in groups.items():
            users = [payload.users[position] for position in positions]
            for position, slate in zip(
                positions, self.ranker.rank(users, group_set, version), strict=True
            ):
                slates[position] = slate
        for position in cold_positions:
            slates[position] = self.ranker.rank_cold_start(payload.users[position])

        served = [slate for slate in slates if slate is not None]
        for slate in served:
            self._served_counter(slate.version).inc()
        if cold_positions:
            metrics.COLD_START.labels(model=self.name).inc(len(cold_positions))
        return Prediction(payload, served)

    def postprocess(
        self,
        result: Prediction,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> Any:
        if result.request.protocol == "v2":
            return encode_v2(result.slates, self.name, result.request)
        return encode_v1(result.slates)

    async def __call__(
        self,
        body: Any,
        headers: dict[str, str] | None = None,
        verb: InferenceVerb = InferenceVerb.PREDICT,
    ) -> Any:
        endpoint = "predict_v2" if isinstance(body, InferRequest) else "predict_v1"
        started = time.perf_counter()
        try:
            return await super().__call__(body, headers, verb)
        except RequestError as error:
            metrics.REQUESTS_REJECTED.labels(
                model=self.name, reason=type(error).__name__
            ).inc()
            raise
        finally:
            metrics.REQUEST_DURATION.labels(model=self.name, endpoint=endpoint).observe(
                time.perf_counter() - started
            )

    def record_feedback(self, body: Any) -> dict[str, int]:
        """Validate click events and count them per version; return the count.

        Every event is checked before any is counted, so a rejected request
        counts nothing.

        Raises:
            RequestError: A subclass naming the first invalid field.
        """
        assert self.limits is not None and self.catalogue is not None
        assert self.rollouts is not None
        started = time.perf_counter()
        try:
            events = parse_feedback(body, self.limits, self.catalogue)
            for event in events:
                if not self.rollouts.is_recent_version(event.version):
                    field = f"{event.field}.version" if event.field else "version"
                    raise UnknownVersionError(
                        f"{field}: version {event.version!r} has not been served "
                        f"by this server in the last {self.feedback_window_s:.0f} s; "
                        "send the version from the recommendation response",
                        field,
                    )
            for event in events:
                metrics.CLICKS.labels(model=self.name, version=event.version).inc()
            return {"accepted": len(events)}
        except RequestError as error:
            metrics.FEEDBACK_REJECTED.labels(
                model=self.name, reason=type(error).__name__
            ).inc()
            raise
        finally:
            metrics.REQUEST_DURATION.labels(
                model=self.name, endpoint="feedback"
            ).observe(time.perf_counter() - started)

    def rollout_status(self) -> dict[str, Any]:
        """Describe the active rollout: both sets, the canary share, source and time."""
        assert self.rollouts is not None
        active = self.rollouts.active
        if active is None:
            return {"active": None}
        return {
            **active.rollout.to_json_dict(),
            "source": active.source,
            "loadedAt": active.loaded_at,
        }

    def _served_counter(self, version: str) -> Any:
        counter = self._served_counters.get(version)
        if counter is None:
            counter = metrics.RECOMMENDATIONS.labels(model=self.name, version=version)
            self._served_counters[version] = counter
        return counter


def _load_hybrid(directory: Path, device: torch.device) -> Any:
    from adaptrec.models.hybrid import HybridRecommender

    return HybridRecommender.load(directory, device=device)
