"""Neural Variational Document Model over users' bags of training items.

NVDM (Miao, Yu and Blunsom, "Neural Variational Inference for Text Processing",
ICML 2016) treats each user as a document whose words are the items they liked.
An MLP encoder maps the bag to a Gaussian ``q(u | x) = N(mu, sigma^2)``; a sample
``u = mu + sigma * eps`` (``eps ~ N(0, I)``) gives the topic mixture
``theta = softmax(u)``, and the decoder's softmax over items gives
``log p(i | theta)``. Training minimises the negative ELBO: the reconstruction
loss ``-sum_i x_i log p(i | theta)`` plus ``KL(q(u | x) || N(0, I))``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import scipy.sparse as sp
import torch
from torch import nn
from tqdm.auto import tqdm

from adaptrec.models.common import ModelError, sparse_to_dense

logger = logging.getLogger(__name__)


class NVDM(nn.Module):
    """Encoder ``x -> (mu, log sigma)`` and decoder ``theta -> log p(item)``."""

    def __init__(self, n_items: int, n_topics: int, hidden: int) -> None:
        super().__init__()
        self.n_items = n_items
        self.n_topics = n_topics
        self.hidden = hidden
        self.encoder = nn.Linear(n_items, hidden)
        self.mu = nn.Linear(hidden, n_topics)
        self.log_sigma = nn.Linear(hidden, n_topics)
        self.decoder = nn.Linear(n_topics, n_items)

    def encode(self, bags: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(mu, sigma)`` of ``q(u | x)`` for ``[B, n_items]`` bags.

        The bags may be dense or sparse COO tensors. A user likes a few dozen of
        thousands of items, so the sparse product is what makes training cheap.
        """
        if bags.is_sparse:
            hidden = torch.sparse.mm(bags, self.encoder.weight.T) + self.encoder.bias
        else:
            hidden = self.encoder(bags)
        hidden = torch.tanh(hidden)
        return self.mu(hidden), self.log_sigma(hidden).exp()

    def log_probs(self, topics: torch.Tensor) -> torch.Tensor:
        """Return ``log p(i | theta)`` for every item, with ``theta = softmax(u)``."""
        theta = torch.softmax(topics, dim=1)
        return torch.log_softmax(self.decoder(theta), dim=1)

    def loss(
        self,
        bags: torch.Tensor,
        generator: torch.Generator | None = None,
        kl_weight: float = 1.0,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the mean loss and the mean KL term over ``[B, n_items]`` bags.

        The loss is the negative ELBO when ``kl_weight`` is 1.
        """
        mu, sigma = self.encode(bags.to_sparse())
        eps = torch.randn(
            mu.shape, generator=generator, device=mu.device, dtype=mu.dtype
        )
        topics = mu + sigma * eps
        reconstruction = -(bags * self.log_probs(topics)).sum(dim=1)
        kl = 0.5 * (mu.square() + sigma.square() - 1.0 - 2.0 * sigma.log()).sum(dim=1)
        return (reconstruction + kl_weight * kl).mean(), kl.mean()

    @torch.no_grad()
    def topic_bias(self, bags: torch.Tensor) -> torch.Tensor:
        """Return ``log p(i | theta)`` at ``u = mu`` (no sampling), ``[B, n_items]``."""
        mu, _ = self.encode(bags)
        return self.log_probs(mu)

    def item_topics(self) -> torch.Tensor:
        """Return the decoder weights as item topic vectors, ``[n_items, n_topics]``."""
        return self.decoder.weight.detach()


@dataclass
class NVDMTraining:
    """Training budget of one NVDM fit.

    Attributes:
        n_topics: Number of topics, the size of ``u`` and ``theta``.
        hidden: Width of the encoder's hidden layer.
        epochs: Passes over the training users.
        batch_size: Users per Adam step.
        kl_warmup: Fraction of the epochs over which the KL weight rises from 0
            to 1; 0 trains on the full negative ELBO throughout.
        seed: Seeds the weights, the batch order and ``eps``.
    """

    n_topics: int
    hidden: int
    epochs: int
    batch_size: int
    kl_warmup: float
    seed: int


def fit_nvdm(
    train: sp.csr_matrix,
    learning_rate: float,
    budget: NVDMTraining,
    device: torch.device | None = None,
    progress: bool = True,
) -> tuple[NVDM, list[float]]:
    """Train an NVDM with Adam on the users' training bags.

    Users without training items carry no signal and are skipped.

    Returns:
        The trained model (in eval mode, on ``device``) and the mean training loss
        per epoch, which equals the negative ELBO once the KL warm-up is over.

    Raises:
        ModelError: when the learning rate is not positive or no user has items.
    """
    if not learning_rate > 0:
        raise ModelError(f"NVDM learning rate must be positive, got {learning_rate}")
    device = device or torch.device("cpu")
    bags = sparse_to_dense(train, device)
    bags = bags[bags.sum(dim=1) > 0]
    if len(bags) == 0:
        raise ModelError("NVDM needs at least one user with training items")

    torch.manual_seed(budget.seed)
    model = NVDM(train.shape[1], budget.n_topics, budget.hidden).to(device)
    with torch.no_grad():
        log_frequency = bags.sum(dim=0).add(1.0).log()
        model.decoder.bias.copy_(log_frequency - log_frequency.mean())
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    generator = torch.Generator(device=device).manual_seed(budget.seed)
    order_generator = torch.Generator().manual_seed(budget.seed)

    steps_per_epoch = -(-len(bags) // budget.batch_size)
    warmup_steps = budget.kl_warmup * budget.epochs * steps_per_epoch
    step = 0
    history = []
    epochs = tqdm(
        range(budget.epochs),
        desc=f"NVDM lr={learning_rate:g}",
        disable=not progress,
        leave=False,
    )
    model.train()
    # Callers may score under torch.no_grad() and so train a missing model there.
    with torch.enable_grad():
        for _ in epochs:
            order = torch.randperm(len(bags), generator=order_generator).to(device)
            total = 0.0
            for start in range(0, len(bags), budget.batch_size):
                batch = bags[order[start : start + budget.batch_size]]
                kl_weight = min(1.0, step / warmup_steps) if warmup_steps > 0 else 1.0
                loss, _ = model.loss(batch, generator, kl_weight)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += loss.item() * len(batch)
                step += 1
            history.append(total / len(bags))
            epochs.set_postfix(neg_elbo=f"{history[-1]:.2f}")
    model.eval()
    logger.info(
        "NVDM lr=%g: negative ELBO %.2f -> %.2f over %d epochs",
        learning_rate,
        history[0],
        history[-1],
        budget.epochs,
    )
    return model, history
