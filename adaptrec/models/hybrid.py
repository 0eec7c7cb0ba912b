"""The hybrid recommender whose weights and training settings the tuners adjust.

The score of user ``u`` for item ``i`` is::

    S(u, i) = alpha * CF(u, i) + w_content * cos(user content, item content)
            + w_kg * KGScore(u, i) + w_topic * TopicBias(u, i)

Each component is z-scored per user over the items the user has not seen (see
:func:`~adaptrec.models.common.standardize_rows`), so the weights are comparable.
``beta`` (the NVDM learning rate) and ``gamma`` (the KG projection's L2 penalty)
change training. One NVDM and one KG projection are therefore trained per distinct
value, lazily, keyed by the value snapped to the space's grid, so a tuner that
revisits a value pays its training once. For the training users every component
is kept as a standardised ``[n_users, n_items]`` tensor on the device, so
:meth:`score` is a weighted sum of rows and :meth:`recommend` adds
``torch.topk``.

NOTE: each cached component matrix takes ``4 * n_users * n_items`` bytes (6 MB on
MovieLens-100K, 15 MB per cached beta or gamma value included), which does not
scale to catalogues such as MovieLens-20M without batching.
"""

from __future__ import annotations

import logging
import numbers
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from tqdm.auto import tqdm

from adaptrec.data.dataset import Dataset
from adaptrec.data.splits import binary_csr
from adaptrec.hyperparams import HyperparamError, HyperparamSpace
from adaptrec.models import content
from adaptrec.models.common import (
    ModelError,
    default_device,
    sparse_to_dense,
    standardize_rows,
)
from adaptrec.models.config import ModelConfig
from adaptrec.models.embeddings import ItemEmbeddings
from adaptrec.models.scoring import ComponentScorer

logger = logging.getLogger(__name__)

WEIGHT_NAMES = ("alpha", "w_content", "w_kg", "w_topic")
TRAINING_NAMES = ("beta", "gamma")
KNOWN_NAMES = WEIGHT_NAMES + TRAINING_NAMES

__all__ = ["HybridRecommender", "ItemEmbeddings", "ModelConfig"]


class HybridRecommender:
    """CF, content, KG and topic scores of every item for every training user.

    Build one with :meth:`fit` or :meth:`load`. Users and items are the dataset's
    dense indices.
    """

    def __init__(
        self,
        *,
        train: sp.csr_matrix,
        user_ids: np.ndarray,
        item_ids: np.ndarray,
        embeddings: ItemEmbeddings,
        space: HyperparamSpace,
        config: ModelConfig,
        device: torch.device,
        dataset_name: str = "",
    ) -> None:
        """Keep the training data. Use :meth:`fit` or :meth:`load`, which also fit
        or read the components."""
        self.train = train
        self.user_ids = user_ids
        self.item_ids = item_ids
        self.embeddings = embeddings
        self.space = space
        self.config = config
        self.device = device
        self.dataset_name = dataset_name
        self.n_users, self.n_items = train.shape
        self.scorer = ComponentScorer(embeddings, config, device)
        self._rows = sparse_to_dense(train, device)
        self._seen = self._rows > 0
        self._train_counts = self._seen.sum(dim=1)
        self._standardized: dict[str, torch.Tensor] = {}
        self._cold_start: torch.Tensor | None = None

    # Construction

    @classmethod
    def fit(
        cls,
        dataset: Dataset,
        train: sp.csr_matrix,
        space: HyperparamSpace,
        config: ModelConfig,
        embeddings: ItemEmbeddings | None = None,
        device: torch.device | str | None = None,
    ) -> HybridRecommender:
        """Fit EASE and the content map, and z-score the fixed components.

        NVDM and the KG projection are trained on first use of each ``beta`` and
        ``gamma`` value, or up front with :meth:`prepare`.

        Raises:
            ModelError: when ``train`` does not match the dataset's shape.
            HyperparamError: when ``space`` declares a name the recommender lacks.
        """
        unknown = [name for name in space.names if name not in KNOWN_NAMES]
        if unknown:
            raise HyperparamError(
                f"the hybrid recommender has no hyperparameter {unknown}; "
                f"it knows {list(KNOWN_NAMES)}"
            )
        try:
            train = binary_csr(train)
        except TypeError:
            raise ModelError(
                "train must be a 2-D scipy.sparse matrix of users x items, "
                f"got {type(train).__name__}"
            ) from None
        expected = (dataset.n_users, dataset.n_items)
        if train.shape != expected:
            raise ModelError(
                f"train has shape {train.shape} but dataset {dataset.name!r} has "
                f"{expected[0]} users and {expected[1]} items"
            )
        started = time.perf_counter()
        if embeddings is None:
            embeddings = ItemEmbeddings.compute(dataset, config)
        if embeddings.n_items != dataset.n_items:
            raise ModelError(
                f"embeddings cover {embeddings.n_items} items but dataset "
                f"{dataset.name!r} has {dataset.n_items}"
            )
        model = cls(
            train=train,
            user_ids=np.asarray(dataset.user_ids).astype(str),
            item_ids=np.asarray(dataset.item_ids).astype(str),
            embeddings=embeddings,
            space=space,
            config=config,
            device=torch.device(device) if device is not None else default_device(),
            dataset_name=dataset.name,
        )
        model.scorer.fit_fixed(model.train, model._rows)
        model._standardize_fixed()
        logger.info(
            "hybrid recommender: fitted EASE and the content map for %d users and "
            "%d items on %s in %.1f s",
            model.n_users,
            model.n_items,
            model.device,
            time.perf_counter() - started,
        )
        return model

    def _standardize_fixed(self) -> None:
        self._standardized["cf"] = self._standardize(self.scorer.cf)
        self._standardized["content"] = self._standardize(self.scorer.content)

    def _standardize(self, component, *args) -> torch.Tensor:
        batch = 4096
        parts = []
        with torch.no_grad():
            for start in range(0, self.n_users, batch):
                rows = self._rows[start : start + batch]
                parts.append(standardize_rows(component(rows, *args), rows > 0))
        if not parts:
            return torch.empty(0, self.n_items, device=self.device)
        return torch.cat(parts)

    # Hyperparameters and lazily trained components

    def resolve(self, hyperparams: Mapping[str, float]) -> dict[str, float]:
        """Validate ``hyperparams`` against the space and fill in fixed values.

        Weights the space does not declare are 0; an undeclared ``beta`` or
        ``gamma`` takes the config's default. ``beta`` and ``gamma`` are snapped to
        the space's grid.

        Raises:
            HyperparamError: on a missing or unknown name, or a value outside
                the space.
        """
        checked = self.space.validate(hyperparams)
        values = {name: 0.0 for name in WEIGHT_NAMES}
        values["beta"] = self.config.default_beta
        values["gamma"] = self.config.default_gamma
        values.update(checked)
        for name in TRAINING_NAMES:
            if name in self.space.names:
                values[name] = self.space[name].snap(values[name])
        return values

    def _training_value(self, name: str, value: float) -> float:
        if name not in self.space.names:
            return (
                self.config.default_beta
                if name == "beta"
                else self.config.default_gamma
            )
        spec = self.space[name]
        if not isinstance(value, numbers.Real) or not spec.min <= value <= spec.max:
            raise HyperparamError(
                f"hyperparameter {name!r} = {value} lies outside "
                f"[{spec.min}, {spec.max}]"
            )
        return spec.snap(value)

    def _topic_matrix(self, beta: float) -> torch.Tensor:
        key = f"topic@{beta!r}"
        if key not in self._standardized:
            self.scorer.train_nvdm(self.train, beta)
            self._standardized[key] = self._standardize(self.scorer.topic, beta)
        return self._standardized[key]

    def _kg_matrix(self, gamma: float) -> torch.Tensor:
        key = f"kg@{gamma!r}"
        if key not in self._standardized:
            self.scorer.fit_kg(self._rows, gamma)
            self._standardized[key] = self._standardize(self.scorer.kg, gamma)
        return self._standardized[key]

    def prepare(
        self, hyperparams_values: Iterable[Mapping[str, float]] | None = None
    ) -> None:
        """Train NVDM and the KG projection for every ``beta`` and ``gamma`` up front.

        Args:
            hyperparams_values: Hyperparameter sets whose ``beta`` and ``gamma``
                values to train; None trains every grid value the space declares.
        """
        if hyperparams_values is None:
            betas = self.space["beta"].grid() if "beta" in self.space.names else []
            gammas = self.space["gamma"].grid() if "gamma" in self.space.names else []
        else:
            resolved = [self.resolve(values) for values in hyperparams_values]
            betas = sorted({values["beta"] for values in resolved})
            gammas = sorted({values["gamma"] for values in resolved})
        jobs = [("beta", value) for value in betas] + [("gamma", v) for v in gammas]
        for name, value in tqdm(jobs, desc="training beta/gamma components"):
            if name == "beta":
                self._topic_matrix(value)
            else:
                self._kg_matrix(value)

    @property
    def trained_betas(self) -> list[float]:
        return sorted(self.scorer.nvdm_models)

    @property
    def trained_gammas(self) -> list[float]:
        return sorted(self.scorer.kg_projections)

    # Scoring

    def _check_users(self, users) -> torch.Tensor:
        users = torch.as_tensor(users, dtype=torch.long).to(self.device).reshape(-1)
        if len(users) and (users.min() < 0 or users.max() >= self.n_users):
            bad = users[(users < 0) | (users >= self.n_users)][0].item()
            raise ModelError(
                f"user index {bad} is outside 0..{self.n_users - 1}; unknown users "
                "get recommend_cold_start() or score_histories()"
            )
        return users

    def score(
        self, users: torch.Tensor, hyperparams: Mapping[str, float]
    ) -> torch.Tensor:
        """Return the hybrid scores of every item for ``users``, ``[B, n_items]``.

        Components with weight 0 are skipped, so their ``beta`` or ``gamma`` is not
        trained.
        """
        values = self.resolve(hyperparams)
        users = self._check_users(users)
        scores = torch.zeros(len(users), self.n_items, device=self.device)
        parts = (
            ("alpha", lambda: self._standardized["cf"]),
            ("w_content", lambda: self._standardized["content"]),
            ("w_kg", lambda: self._kg_matrix(values["gamma"])),
            ("w_topic", lambda: self._topic_matrix(values["beta"])),
        )
        for name, matrix in parts:
            if values[name] != 0.0:
                scores.add_(matrix().index_select(0, users), alpha=values[name])
        return scores

    def score_histories(
        self, histories: list[list[int]], hyperparams: Mapping[str, float]
    ) -> torch.Tensor:
        """Score users outside the training matrix from their item histories.

        Each component is computed from the history as it is for a training user,
        with EASE, the content map, NVDM and the KG projection as fitted.

        Returns:
            ``[len(histories), n_items]`` scores.
        """
        values = self.resolve(hyperparams)
        rows = self._history_rows(histories)
        seen = rows > 0
        scores = torch.zeros_like(rows)
        with torch.no_grad():
            parts = (
                ("alpha", lambda: self.scorer.cf(rows)),
                ("w_content", lambda: self.scorer.content(rows)),
                ("w_kg", lambda: self._kg_for_rows(rows, values["gamma"])),
                ("w_topic", lambda: self._topic_for_rows(rows, values["beta"])),
            )
            for name, component in parts:
                if values[name] != 0.0:
                    z = standardize_rows(component(), seen)
                    scores.add_(z, alpha=values[name])
        return scores

    def _kg_for_rows(self, rows: torch.Tensor, gamma: float) -> torch.Tensor:
        self._kg_matrix(gamma)
        return self.scorer.kg(rows, gamma)

    def _topic_for_rows(self, rows: torch.Tensor, beta: float) -> torch.Tensor:
        self._topic_matrix(beta)
        return self.scorer.topic(rows, beta)

    def _history_rows(self, histories: list[list[int]]) -> torch.Tensor:
        rows = torch.zeros(len(histories), self.n_items, device=self.device)
        for position, history in enumerate(histories):
            items = self._check_items(history, f"history {position}")
            rows[position, items] = 1.0
        return rows

    def _check_items(self, items, source: str) -> torch.Tensor:
        items = torch.as_tensor(list(items), dtype=torch.long, device=self.device)
        if len(items) and (items.min() < 0 or items.max() >= self.n_items):
            bad = items[(items < 0) | (items >= self.n_items)][0].item()
            raise ModelError(
                f"{source} names item index {bad}, outside 0..{self.n_items - 1}"
            )
        return items

    def recommend(
        self,
        users: torch.Tensor,
        hyperparams: Mapping[str, float],
        k: int,
        exclude_train: bool = True,
        exclude: list[list[int]] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the top-``k`` items and their scores for ``users``, each ``[B, k]``.

        Args:
            users: User indices.
            hyperparams: One value per hyperparameter in the space.
            k: Items per user, 1 to ``n_items``.
            exclude_train: Leave out each user's training items.
            exclude: Per user, further item indices to leave out.

        Raises:
            ModelError: when ``k`` exceeds the items a user has left, or an index
                is out of range.
        """
        users = self._check_users(users)
        scores = self.score(users, hyperparams)
        max_excluded = 0
        if exclude_train and len(users):
            scores.masked_fill_(self._seen.index_select(0, users), -torch.inf)
            max_excluded = int(self._train_counts.index_select(0, users).max())
        if exclude is not None:
            self._mask_excluded(scores, exclude)
            max_excluded += max((len(items) for items in exclude), default=0)
        return self._top_k(scores, k, max_excluded)

    def _mask_excluded(self, scores: torch.Tensor, exclude: list[list[int]]) -> None:
        if len(exclude) != len(scores):
            raise ModelError(
                f"exclude has {len(exclude)} lists but {len(scores)} users were given"
            )
        for position, items in enumerate(exclude):
            scores[
                position, self._check_items(items, f"exclude[{position}]")
            ] = -torch.inf

    def _top_k(
        self, scores: torch.Tensor, k: int, max_excluded: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Take the top ``k`` of each row, checking that ``k`` items are left.

        ``max_excluded`` bounds the items masked in any row. When it leaves at
        least ``k``, the scan of every score for -inf is skipped, which is a third
        of ``recommend``'s time on MovieLens-100K.
        """
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= self.n_items:
            raise ModelError(f"k must be an integer in 1..{self.n_items}, got {k!r}")
        certain = max_excluded is not None and self.n_items - max_excluded >= k
        if len(scores) and not certain:
            available = torch.isfinite(scores).sum(dim=1)
            short = int(available.argmin())
            if available[short] < k:
                raise ModelError(
                    f"k={k} but row {short} has only {int(available[short])} items "
                    "left after exclusions; request a smaller k"
                )
        values, indices = torch.topk(scores, k, dim=1)
        return indices, values

    # Unknown users

    def cold_start_scores(self) -> torch.Tensor:
        """Return scores of every item for a user without history, ``[n_items]``.

        The sum of two z-scores: the item's training popularity and the cosine of
        its content embedding with the popularity-weighted mean embedding.
        """
        if self._cold_start is None:
            popularity = self._rows.sum(dim=0)
            items = torch.from_numpy(self.embeddings.content).to(self.device)
            centre = (popularity @ items).unsqueeze(0)
            centrality = content.cosine_scores(centre, items)
            nothing_seen = torch.zeros(
                2, self.n_items, dtype=torch.bool, device=self.device
            )
            both = standardize_rows(
                torch.stack([popularity, centrality[0]]), nothing_seen
            )
            self._cold_start = both.sum(dim=0)
        return self._cold_start

    def recommend_cold_start(
        self, k: int, exclude: list[int] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the top-``k`` cold-start items and their scores, each ``[k]``."""
        scores = self.cold_start_scores().clone().unsqueeze(0)
        if exclude is not None:
            self._mask_excluded(scores, [exclude])
        indices, values = self._top_k(scores, k)
        return indices[0], values[0]

    # Topic features

    def user_topics(
        self, users: torch.Tensor, beta: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the NVDM posterior ``(mu, sigma)`` of ``users``, ``[B, n_topics]``."""
        beta = self._training_value("beta", beta)
        users = self._check_users(users)
        self._topic_matrix(beta)
        with torch.no_grad():
            return self.scorer.nvdm_models[beta].encode(
                self._rows.index_select(0, users)
            )

    def item_topics(self, beta: float) -> torch.Tensor:
        """Return the NVDM decoder weights per item, ``[n_items, n_topics]``."""
        beta = self._training_value("beta", beta)
        self._topic_matrix(beta)
        return self.scorer.nvdm_models[beta].item_topics()

    # Artefacts

    def save(self, directory: str | Path) -> None:
        """Write the artefacts the model server loads; see ``artifacts.py``."""
        from adaptrec.models.artifacts import save_recommender

        save_recommender(self, Path(directory))

    @classmethod
    def load(
        cls, directory: str | Path, device: torch.device | str | None = None
    ) -> HybridRecommender:
        """Read a recommender written by :meth:`save`.

        Raises:
            ArtifactError: naming the file that is missing, corrupt or in another
                format version.
        """
        from adaptrec.models.artifacts import load_recommender

        device = torch.device(device) if device is not None else default_device()
        return load_recommender(Path(directory), device)
