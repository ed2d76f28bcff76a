"""Autoencoder sources: a user's history row in, a score for every item out.

EASE and its denoising relatives DLAE / EDLAE are linear and solved in closed form (one
matrix inverse); Mult-VAE is the non-linear one, trained with PyTorch and scored with NumPy.
The table in ``sources.py`` compares them with the other families.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recsys.errors import InvalidArgumentError
from recsys.sources import softmax_over_trained


class EASE:
    """Embarrassingly Shallow Autoencoder: one regularised least-squares item-item matrix."""

    name = "ease"

    def __init__(self, l2: float = 250.0) -> None:
        self.l2 = l2

    def fit(self, interactions: sp.csr_matrix) -> EASE:
        gram = (interactions.T @ interactions).toarray().astype(np.float64)
        gram[np.diag_indices_from(gram)] += self.l2
        p = np.linalg.inv(gram)
        b = -p / np.diag(p)  # column j divided by P_jj
        np.fill_diagonal(b, 0.0)  # the constraint diag(B) = 0: no item predicts itself
        self.weights_ = b.astype(np.float32)
        return self

    def score(self, history: sp.csr_matrix) -> np.ndarray:
        return np.asarray(history @ self.weights_, dtype=np.float32)


class DLAE:
    """Dropout-denoising linear autoencoder (Steck, "Autoencoders that don't overfit towards
    the Identity", NeurIPS 2020), in closed form.

    Training on inputs X∘Δ/(1-p) (each entry dropped with probability p) to reconstruct X has,
    in expectation over the dropout mask Δ, the objective

        ‖X - XB‖² + ‖Λ^½ B‖²,   Λ = p/(1-p) · diagMat(diag(G)) + λI,   G = XᵀX,

    so B = (G + Λ)⁻¹ G = I - PΛ with P = (G + Λ)⁻¹. Dropout is an L2 penalty that grows with
    an item's popularity (diag(G) counts its users): popular items are pushed hardest away
    from predicting themselves, which is what "overfitting towards the identity" means here.
    The diagonal of B is not zero, but it only scores items the user has already seen, which
    serving removes.
    """

    name = "dlae"

    def __init__(self, dropout: float = 0.25, l2: float = 50.0) -> None:
        if not 0.0 <= dropout < 1.0 or l2 < 0.0:
            raise InvalidArgumentError(
                f"DLAE needs 0 <= dropout < 1 and l2 >= 0, got dropout={dropout}, l2={l2}"
            )
        self.dropout = dropout
        self.l2 = l2

    def penalty(self, gram: np.ndarray) -> np.ndarray:
        """(n_items,) the diagonal of Λ = p/(1-p) · diag(G) + λ."""
        return self.dropout / (1.0 - self.dropout) * np.diag(gram) + self.l2

    def _inverse(self, interactions: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
        gram = (interactions.T @ interactions).toarray().astype(np.float64)
        lam = self.penalty(gram)
        # Items nobody interacted with have G_jj = 0; the 1e-6 floor keeps G + Λ invertible at
        # λ = 0 (their rows and columns of B come out 0 either way).
        gram[np.diag_indices_from(gram)] += np.maximum(lam, 1e-6)
        return np.linalg.inv(gram), lam

    def fit(self, interactions: sp.csr_matrix) -> DLAE:
        p, lam = self._inverse(interactions)
        self.weights_ = (np.eye(len(lam)) - p * lam[None, :]).astype(np.float32)  # I - PΛ
        return self

    def score(self, history: sp.csr_matrix) -> np.ndarray:
        return np.asarray(history @ self.weights_, dtype=np.float32)


class EDLAE(DLAE):
    """Emphasised denoising (Steck 2020, full emphasis): the loss counts only dropped entries.

    An item can only be asked to reconstruct itself when its own input was dropped, so its
    diagonal weight never helps: B_jj = 0 is forced, and the expected loss becomes EASE's
    objective with Λ in place of λI. The solution is EASE's formula with that penalty:

        B = I - P · diagMat(1/diag(P)),   P = (G + Λ)⁻¹,   Λ = p/(1-p) · diagMat(diag(G)) + λI.

    At p = 0 this *is* EASE; at p > 0 popular items get a larger ridge than rare ones.
    """

    name = "edlae"

    def fit(self, interactions: sp.csr_matrix) -> EDLAE:
        p, _ = self._inverse(interactions)
        b = -p / np.diag(p)  # column j divided by P_jj
        np.fill_diagonal(b, 0.0)
        self.weights_ = b.astype(np.float32)
        return self


class MultVAE:
    """Variational autoencoder with a multinomial likelihood (Liang, Krishnan, Hoffman, Jebara,
    "Variational Autoencoders for Collaborative Filtering", WWW 2018): the one non-linear source.

    A user's history row, L2-normalised and (in training) with half its entries dropped, is
    encoded through a tanh layer to a Gaussian q(z | x) = N(μ, σ²); the decoder maps z back
    through a tanh layer to logits over every item, and the loss is the multinomial
    log-likelihood -Σᵢ xᵢ·log softmax(logits)ᵢ plus β·KL(q ‖ N(0, I)), with β raised linearly
    from 0 to ``beta`` over the first 80 % of the updates (the paper's annealing). Scoring uses
    μ, not a sample, so a user's scores are deterministic; they are the decoder's softmax
    probabilities. Trained with PyTorch on the CPU (``fit`` seeds torch's global generator,
    which dropout draws from); the weights are then kept as NumPy arrays, so scoring and
    pickling need no PyTorch.

    The defaults are the paper's (600-200 layers, β capped at 0.2, 200 epochs, Adam 1e-3)
    except the batch, 100 users instead of 500, as MovieLens 100K has only 943.
    ``RecsysConfig`` holds the settings chosen on its validation carves (β 0.5, 50 epochs).
    """

    name = "multvae"

    def __init__(
        self,
        hidden: int = 600,
        latent: int = 200,
        beta: float = 0.2,
        epochs: int = 200,
        batch_size: int = 100,
        learning_rate: float = 1e-3,
        dropout: float = 0.5,
        seed: int = 0,
    ) -> None:
        sizes = (hidden, latent, epochs, batch_size)
        if min(sizes) < 1 or beta < 0.0 or learning_rate <= 0.0 or not 0.0 <= dropout < 1.0:
            raise InvalidArgumentError(
                "MultVAE needs hidden, latent, epochs, batch_size >= 1, beta >= 0, "
                f"learning_rate > 0 and dropout in [0, 1); got {sizes}, beta={beta}, "
                f"learning_rate={learning_rate}, dropout={dropout}"
            )
        self.hidden = hidden
        self.latent = latent
        self.beta = beta
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.dropout = dropout
        self.seed = seed

    def fit(self, interactions: sp.csr_matrix) -> MultVAE:
        import torch
        from torch import nn

        torch.manual_seed(self.seed)
        n_users, n_items = interactions.shape
        encoder = nn.Linear(n_items, self.hidden)
        to_latent = nn.Linear(self.hidden, 2 * self.latent)  # μ and log σ², side by side
        decoder = nn.Sequential(
            nn.Linear(self.latent, self.hidden), nn.Tanh(), nn.Linear(self.hidden, n_items)
        )
        params = [*encoder.parameters(), *to_latent.parameters(), *decoder.parameters()]
        optimiser = torch.optim.Adam(params, lr=self.learning_rate)
        x_all = interactions.astype(np.float32).tocsr()  # densified a batch at a time
        order = torch.Generator().manual_seed(self.seed)
        steps_per_epoch = -(-n_users // self.batch_size)
        anneal_steps = max(1.0, 0.8 * self.epochs * steps_per_epoch)
        step = 0
        for _ in range(self.epochs):
            for batch in torch.randperm(n_users, generator=order).split(self.batch_size):
                x = torch.from_numpy(x_all[batch.numpy()].toarray())
                h = nn.functional.dropout(nn.functional.normalize(x, dim=1), self.dropout)
                mu, log_var = to_latent(torch.tanh(encoder(h))).chunk(2, dim=1)
                z = mu + torch.randn_like(mu) * torch.exp(0.5 * log_var)
                log_p = nn.functional.log_softmax(decoder(z), dim=1)
                nll = -(log_p * x).sum(dim=1).mean()
                kl = 0.5 * (mu.pow(2) + log_var.exp() - 1.0 - log_var).sum(dim=1).mean()
                beta = self.beta * min(1.0, step / anneal_steps)
                optimiser.zero_grad()
                (nll + beta * kl).backward()
                optimiser.step()
                step += 1
        self.encoder_ = _numpy_layer(encoder)
        w_mu, b_mu = _numpy_layer(to_latent)
        self.to_mean_ = (w_mu[:, : self.latent].copy(), b_mu[: self.latent].copy())
        self.decoder_ = (_numpy_layer(decoder[0]), _numpy_layer(decoder[2]))
        self.trained_items_ = (interactions.getnnz(axis=0) > 0).astype(np.float32)
        return self

    def score(self, history: sp.csr_matrix) -> np.ndarray:
        x = history.astype(np.float32)
        norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1))).astype(np.float32)
        (w1, b1), (wm, bm) = self.encoder_, self.to_mean_
        (w3, b3), (w4, b4) = self.decoder_
        h = np.tanh(np.asarray(x @ w1) / np.maximum(norms, 1e-12) + b1)
        logits = np.tanh((h @ wm + bm) @ w3 + b3) @ w4 + b4
        return softmax_over_trained(logits, self.trained_items_)


def _numpy_layer(layer) -> tuple[np.ndarray, np.ndarray]:
    """A ``torch.nn.Linear``'s (weight, bias) as arrays, weight transposed: y = x @ w + b."""
    return layer.weight.detach().numpy().T.copy(), layer.bias.detach().numpy().copy()
