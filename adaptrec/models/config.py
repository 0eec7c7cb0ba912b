"""Training budgets and fixed settings of the hybrid recommender."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from adaptrec.models.common import ModelError
from adaptrec.models.kg import Node2VecParams
from adaptrec.models.nvdm import NVDMTraining


@dataclass(frozen=True)
class ModelConfig:
    """Everything about the recommender that the tuners do not change.

    The defaults are for the full run; :meth:`quick` returns small budgets for
    tests and ``--preset quick``.

    Attributes:
        n_topics: NVDM topics, the size of ``mu``, ``sigma`` and ``theta``.
        nvdm_epochs: NVDM passes over the training users, per learning rate.
        nvdm_hidden: Width of the NVDM encoder's hidden layer.
        nvdm_batch_size: Users per NVDM Adam step.
        nvdm_kl_warmup: Fraction of the NVDM epochs over which the KL weight rises
            from 0 to 1.
        node2vec_dim: Size of the KG item vectors.
        node2vec_walk_length: Nodes per Node2Vec random walk.
        node2vec_context: Skip-gram window on each side of a node.
        p: Node2Vec return parameter.
        q: Node2Vec in-out parameter.
        node2vec_epochs: Walks started from every graph node.
        node2vec_workers: Skip-gram threads; only 1 gives the same vectors for the
            same seed.
        ease_lambda: EASE ridge penalty.
        content_user_l2: Ridge penalty on the profile side of the content map.
        content_item_l2: Ridge penalty on the item side of the content map.
        default_beta: NVDM learning rate used when the space declares no ``beta``.
        default_gamma: KG regularisation used when the space declares no ``gamma``.
        seed: Seeds NVDM and Node2Vec.
    """

    n_topics: int = 20
    nvdm_epochs: int = 100
    nvdm_hidden: int = 256
    nvdm_batch_size: int = 64
    nvdm_kl_warmup: float = 0.5
    node2vec_dim: int = 64
    node2vec_walk_length: int = 20
    node2vec_context: int = 5
    p: float = 1.0
    q: float = 1.0
    node2vec_epochs: int = 5
    node2vec_workers: int = 1
    ease_lambda: float = 200.0
    content_user_l2: float = 1.0
    content_item_l2: float = 0.01
    default_beta: float = 0.003
    default_gamma: float = 250.0
    seed: int = 0

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.type == "int":
                if not isinstance(value, int) or isinstance(value, bool):
                    raise ModelError(
                        f"ModelConfig.{field.name} must be an integer, got {value!r}"
                    )
                if field.name != "seed" and value < 1:
                    raise ModelError(
                        f"ModelConfig.{field.name} must be at least 1, got {value}"
                    )
            elif not isinstance(value, int | float) or isinstance(value, bool):
                raise ModelError(
                    f"ModelConfig.{field.name} must be a number, got {value!r}"
                )
            elif field.name == "nvdm_kl_warmup":
                if not 0.0 <= value <= 1.0:
                    raise ModelError(
                        f"ModelConfig.nvdm_kl_warmup must lie in [0, 1], got {value}"
                    )
            elif not value > 0:
                raise ModelError(
                    f"ModelConfig.{field.name} must be positive, got {value}"
                )

    @classmethod
    def quick(cls, **overrides: Any) -> ModelConfig:
        """Return small budgets: seconds per component on MovieLens-100K."""
        budget: dict[str, Any] = {
            "nvdm_epochs": 10,
            "nvdm_hidden": 64,
            "node2vec_dim": 16,
            "node2vec_walk_length": 10,
            "node2vec_context": 3,
            "node2vec_epochs": 1,
        }
        budget.update(overrides)
        return cls(**budget)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ModelConfig:
        """Build a config from :meth:`to_dict` output.

        Raises:
            ModelError: on an unknown key or an invalid value.
        """
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ModelError(
                f"unknown ModelConfig keys {unknown}; known: {sorted(known)}"
            )
        return cls(**values)

    def nvdm_training(self) -> NVDMTraining:
        return NVDMTraining(
            n_topics=self.n_topics,
            hidden=self.nvdm_hidden,
            epochs=self.nvdm_epochs,
            batch_size=self.nvdm_batch_size,
            kl_warmup=self.nvdm_kl_warmup,
            seed=self.seed,
        )

    def node2vec_params(self) -> Node2VecParams:
        return Node2VecParams(
            dim=self.node2vec_dim,
            walk_length=self.node2vec_walk_length,
            context=self.node2vec_context,
            p=self.p,
            q=self.q,
            epochs=self.node2vec_epochs,
            seed=self.seed,
            workers=self.node2vec_workers,
        )
