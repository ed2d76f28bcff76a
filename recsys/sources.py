"""Stage 1 candidate sources: each turns a user's history into a score for every item.

One contract (``CandidateSource``), seven models in the default set, from the simplest
baseline up, and four optional ones, measured and not adopted (marked *optional*):

=============  ==========================================================================
popularity     number of training users per item; the same list for everyone
item_knn       item-item cosine similarity, top-``k`` neighbours kept (Sarwar et al., WWW 2001)
user_knn       *optional*: user-user cosine similarity, the items of the ``k`` most similar
               users (Herlocker et al., SIGIR 1999)
ease           closed-form linear autoencoder, B = I - P·diagMat(1/diag(P)), P = (XᵀX + λI)⁻¹,
               zero diagonal (Steck, "Embarrassingly Shallow Autoencoders", WWW 2019)
dlae / edlae   *optional*: EASE's denoising relatives: dropout on the input acts as a ridge
               penalty that grows with item popularity, Λ = p/(1-p)·diag(XᵀX) + λ; DLAE
               B = (XᵀX + Λ)⁻¹XᵀX, EDLAE = EASE with Λ for λI (Steck, "Autoencoders that don't
               overfit towards the Identity", NeurIPS 2020)
rp3beta        three-step random walk item -> user -> item, each step's probability raised to α,
               divided by the target's popularity^β (Paudel et al., ACM TiiS 2016)
als            implicit-feedback matrix factorisation, confidence 1 + α·x (Hu, Koren, Volinsky,
               ICDM 2008), trained with ``implicit``; users are folded in by the same
               closed-form least-squares step ALS itself uses, so a new user needs no retrain
embedding      PureSVD item embeddings (Cremonesi et al., RecSys 2010) in a FAISS inner-product
               index; a user's query vector is xᵤ·V, so retrieval is one ANN search, the
               production pattern for two-tower retrieval
multvae        variational autoencoder with a multinomial likelihood, the one non-linear model
               (Liang et al., WWW 2018); scores are its softmax over items
bpr            *optional*: BPR's pairwise ranking criterion (Rendle et al., UAI 2009) on FISM's
               factored item-item model (Kabbur et al., KDD 2013), which scores from history
=============  ==========================================================================

Every source scores users *from their history rows* (``history``: CSR, one row per user), not
from a user table: the same call serves a training user, a user whose history grew since the
last fit, and a brand-new user with three interactions. Items with no training interactions
get score 0 from every collaborative source: only content features (``cold_start``) reach them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

import faiss
import numpy as np
import scipy.sparse as sp

from recsys.errors import InvalidArgumentError

if TYPE_CHECKING:
    from recsys.config import RecsysConfig


@runtime_checkable
class CandidateSource(Protocol):
    """Anything that can be fitted on an interaction matrix and score users from history."""

    name: str

    def fit(self, interactions: sp.csr_matrix) -> CandidateSource: ...

    def score(self, history: sp.csr_matrix) -> np.ndarray:
        """(n_users_in_history, n_items) float32 scores; higher means more likely."""
        ...


def top_n(scores: np.ndarray, history: sp.csr_matrix | None, n: int) -> np.ndarray:
    """(n_users, n) item indices of the highest scores, best first, seen items excluded."""
    scores = np.array(scores, dtype=np.float32, copy=True)
    if history is not None:
        rows, cols = history.nonzero()
        scores[rows, cols] = -np.inf
    n = min(n, scores.shape[1])
    part = np.argpartition(-scores, n - 1, axis=1)[:, :n]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


class Popularity:
    """Score = number of training users who interacted with the item."""

    name = "popularity"

    def fit(self, interactions: sp.csr_matrix) -> Popularity:
        self.counts_ = np.asarray(interactions.sum(axis=0)).ravel().astype(np.float32)
        return self

    def score(self, history: sp.csr_matrix) -> np.ndarray:
        return np.tile(self.counts_, (history.shape[0], 1))


class ItemKNN:
    """Item-based CF: score(u, j) = Σ_{i ∈ history(u)} cos(i, j), keeping each item's top-k."""

    name = "item_knn"

    def __init__(self, neighbours: int = 100, shrink: float = 10.0) -> None:
        self.neighbours = neighbours
        self.shrink = shrink

    def fit(self, interactions: sp.csr_matrix) -> ItemKNN:
        x = interactions.astype(np.float32)
        co = (x.T @ x).toarray()
        norms = np.sqrt(np.diag(co))
        # Shrinkage damps similarities supported by few co-occurrences (Koren, KDD 2008).
        sim = co / (np.outer(norms, norms) + self.shrink + 1e-9)
        np.fill_diagonal(sim, 0.0)
        k = min(self.neighbours, sim.shape[0] - 1)
        if k < sim.shape[0] - 1:  # keep the k most similar items of each column
            drop = np.argpartition(-sim, k, axis=0)[k:, :]
            np.put_along_axis(sim, drop, 0.0, axis=0)
        self.similarity_ = sim.astype(np.float32)
        return self

    def score(self, history: sp.csr_matrix) -> np.ndarray:
        return np.asarray(history @ self.similarity_, dtype=np.float32)


class UserKNN:
    """User-based CF: score(u, j) = Σ_{v ∈ N_k(u)} cos(u, v) · x_vj over u's k nearest users.

    Cosine with shrinkage, cos(u, v) = |S_u ∩ S_v| / (‖x_u‖·‖x_v‖ + shrink), between the
    history row and every training user (Herlocker et al., SIGIR 1999; shrinkage as in
    ``ItemKNN``). Scoring from history keeps the source's contract: a new user needs no refit.
    A training user scored from its own row finds itself among its neighbours; that only adds
    to items it has seen, which serving removes, and costs one of the k slots.
    """

    name = "user_knn"

    def __init__(self, neighbours: int = 100, shrink: float = 10.0) -> None:
        if neighbours < 1 or shrink < 0.0:
            raise InvalidArgumentError(
                f"UserKNN needs neighbours >= 1 and shrink >= 0, got {neighbours} and {shrink}"
            )
        self.neighbours = neighbours
        self.shrink = shrink

    def fit(self, interactions: sp.csr_matrix) -> UserKNN:
        x = interactions.astype(np.float32).tocsr()
        x.data[:] = 1.0
        self.users_ = x
        self.norms_ = np.sqrt(np.asarray(x.sum(axis=1)).ravel())
        return self

    def score(self, history: sp.csr_matrix) -> np.ndarray:
        h = history.astype(np.float32).tocsr()
        h.data[:] = 1.0
        overlap = (h @ self.users_.T).toarray()
        h_norms = np.sqrt(np.asarray(h.sum(axis=1)).ravel())
        sim = overlap / (np.outer(h_norms, self.norms_) + self.shrink + 1e-9)
        k = min(self.neighbours, sim.shape[1])
        if k < sim.shape[1]:  # keep each row's k most similar users
            drop = np.argpartition(-sim, k - 1, axis=1)[:, k:]
            np.put_along_axis(sim, drop, 0.0, axis=1)
        return np.asarray(self.users_.T @ sim.T, dtype=np.float32).T


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


class RP3beta:
    """RP3beta: a popularity-discounted three-step random walk on the user-item graph.

    Paudel, Christoffel, Newell, Bernstein, "Updatable, Accurate, Diverse, and Scalable
    Recommendations for Interactive Applications", ACM TiiS 7(1), 2016. A walk from item i goes
    to one of its users u, then to one of u's items j. With binary X, the two transition
    probabilities are P(u | i) = x_ui / deg(i) and P(j | u) = x_uj / deg(u); each is raised to
    α (α < 1 flattens them) and the sum over users is divided by the target's popularity^β:

        W_ij = Σ_u (x_ui / deg(i))^α · (x_uj / deg(u))^α / deg(j)^β,   score(u, j) = Σ_i x_ui W_ij

    α = 1, β = 0 is P³ (plain walk probabilities); β > 0 discounts popular targets, which the
    walk otherwise over-visits. Like the reference implementation (Dacrema et al.'s RecSys
    2019 reproducibility code), the diagonal is zeroed and each item keeps only its ``k``
    largest outgoing weights (row i of W; ``None`` keeps them all). Items nobody interacted
    with get all-zero rows and columns.
    """

    name = "rp3beta"

    def __init__(
        self, alpha: float = 1.0, beta: float = 0.0, neighbours: int | None = None
    ) -> None:
        if alpha <= 0.0 or beta < 0.0 or (neighbours is not None and neighbours < 1):
            raise InvalidArgumentError(
                f"RP3beta needs alpha > 0, beta >= 0 and neighbours >= 1, got alpha={alpha}, "
                f"beta={beta}, neighbours={neighbours}"
            )
        self.alpha = alpha
        self.beta = beta
        self.neighbours = neighbours

    def fit(self, interactions: sp.csr_matrix) -> RP3beta:
        x = interactions.astype(np.float64).tocsr()
        x.data[:] = 1.0  # the walk is on the binary graph
        user_deg = np.asarray(x.sum(axis=1)).ravel()
        item_deg = np.asarray(x.sum(axis=0)).ravel()
        seen = item_deg > 0
        # (x_ui / deg)^α = x_ui · deg^-α for binary x: both steps are degree scalings.
        item_step = np.where(seen, item_deg, 1.0) ** -self.alpha * seen
        target = np.where(seen, item_deg, 1.0) ** -self.beta * seen
        user_step = np.where(user_deg > 0, user_deg, 1.0) ** -self.alpha
        walk = (x.T @ sp.diags(user_step) @ x).toarray()  # Σ_u x_ui · deg(u)^-α · x_uj
        w = item_step[:, None] * walk * target[None, :]
        np.fill_diagonal(w, 0.0)
        k = w.shape[1] - 1 if self.neighbours is None else min(self.neighbours, w.shape[1] - 1)
        if k < w.shape[1] - 1:  # keep the k largest weights of each row
            drop = np.argpartition(-w, k, axis=1)[:, k:]
            np.put_along_axis(w, drop, 0.0, axis=1)
        # C order: the sparse product above comes out Fortran-ordered, and a history row times
        # a Fortran-ordered matrix was measured ~200x slower (17 ms vs 0.08 ms per user).
        self.weights_ = np.ascontiguousarray(w, dtype=np.float32)
        return self

    def score(self, history: sp.csr_matrix) -> np.ndarray:
        return np.asarray(history @ self.weights_, dtype=np.float32)


class ALS:
    """Implicit ALS via ``implicit``; scoring folds users in with ALS's own user update.

    For a user with history S and confidence c = 1 + α on S (1 elsewhere), the user vector
    minimising Σ c·(p - xᵤ·yᵢ)² + λ‖xᵤ‖² is
    xᵤ = (YᵀY + α·Y_Sᵀ Y_S + λI)⁻¹ · (1 + α)·Σ_{i∈S} yᵢ   (Hu et al. 2008, eq. 4).
    """

    name = "als"

    def __init__(
        self,
        factors: int = 64,
        regularization: float = 0.05,
        alpha: float = 2.0,
        iterations: int = 15,
        seed: int = 0,
    ) -> None:
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.seed = seed

    def fit(self, interactions: sp.csr_matrix) -> ALS:
        from implicit.cpu.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        limit = threadpool_limits(1, "blas")  # implicit's advice: BLAS threads fight its own
        model = AlternatingLeastSquares(
            factors=self.factors,
            regularization=self.regularization,
            alpha=self.alpha,
            iterations=self.iterations,
            random_state=self.seed,
            num_threads=1,  # deterministic and polite on a shared machine
        )
        try:
            model.fit(interactions.astype(np.float32).tocsr(), show_progress=False)
        finally:
            limit.restore_original_limits()
        self.item_factors_ = np.asarray(model.item_factors, dtype=np.float64)
        y = self.item_factors_
        self._yty = y.T @ y
        return self

    def user_factors(self, history: sp.csr_matrix) -> np.ndarray:
        y, reg = self.item_factors_, self.regularization * np.eye(self.item_factors_.shape[1])
        out = np.zeros((history.shape[0], y.shape[1]))
        for u in range(history.shape[0]):
            items = history.indices[history.indptr[u] : history.indptr[u + 1]]
            if len(items) == 0:
                continue
            ys = y[items]
            a = self._yty + self.alpha * ys.T @ ys + reg
            out[u] = np.linalg.solve(a, (1.0 + self.alpha) * ys.sum(axis=0))
        return out

    def score(self, history: sp.csr_matrix) -> np.ndarray:
        return (self.user_factors(history) @ self.item_factors_.T).astype(np.float32)


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
        return _softmax_over_trained(logits, self.trained_items_)


def _softmax_over_trained(logits: np.ndarray, trained_items: np.ndarray) -> np.ndarray:
    """Each row's softmax over the items some training user touched (the others score 0).

    As probabilities, "score / the user's best" (features.py) is exp(logit - best logit).
    """
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p *= trained_items
    return (p / p.sum(axis=1, keepdims=True)).astype(np.float32)


class BPR:
    """BPR's pairwise criterion (Rendle, Freudenthaler, Gantner, Schmidt-Thieme, UAI 2009) on a
    factored item-item model (FISM: Kabbur, Ning, Karypis, KDD 2013), so it scores from history.

    BPR maximises Σ log σ(s_ui - s_uj) over (user, seen item i, unseen item j): it learns to
    *order* items, where ALS and EASE learn to reconstruct the matrix. Rendle's paper applies
    the criterion to two models, matrix factorisation and a learned item-kNN. Factorisation
    keeps a free vector per user, which a new history row would need a fold-in to get; the
    item model does not, so that is the one used here, with FISM's factored similarity:

        s_uj = b_j + (n_u - [j ∈ S_u])^-α · Σ_{i ∈ S_u, i ≠ j} pᵢ·q_j

    where S_u is the user's history and n_u its size. Leaving j out of its own sum is FISM's
    point: otherwise the model learns that an item predicts itself. Each epoch visits every
    user once, in batches of ``batch_size`` users; each seen item is paired with one uniformly
    drawn unseen item. The rows a batch touches are L2-penalised, and the optimiser is Adam,
    run by PyTorch on the CPU; the vectors are then kept as NumPy arrays, as in ``MultVAE``.
    Scores are the softmax over items of s_uj (a per-user monotone map, so the order is BPR's
    and "score / the user's best" is a probability ratio); items no training user touched
    score 0. The defaults are the settings chosen alone on the validation carves (round 14 of
    EXPERIMENTS.md, which also measures the matrix-factorisation form); as an eighth source
    the whole pipeline scored lower with it there, so it is optional.
    """

    name = "bpr"

    def __init__(
        self,
        factors: int = 64,
        l2: float = 1e-2,
        epochs: int = 100,
        alpha: float = 0.5,
        batch_size: int = 16,
        learning_rate: float = 1e-3,
        seed: int = 0,
    ) -> None:
        sizes = (factors, epochs, batch_size)
        if min(sizes) < 1 or l2 < 0.0 or alpha < 0.0 or learning_rate <= 0.0:
            raise InvalidArgumentError(
                "BPR needs factors, epochs, batch_size >= 1, l2 >= 0, alpha >= 0 and "
                f"learning_rate > 0; got {sizes}, l2={l2}, alpha={alpha}, "
                f"learning_rate={learning_rate}"
            )
        self.factors = factors
        self.l2 = l2
        self.epochs = epochs
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.seed = seed

    def fit(self, interactions: sp.csr_matrix) -> BPR:
        import torch

        torch.manual_seed(self.seed)
        x = interactions.astype(np.float32).tocsr()
        x.data[:] = 1.0
        n_users, n_items = x.shape
        p = torch.nn.Parameter(0.01 * torch.randn(n_items, self.factors))
        q = torch.nn.Parameter(0.01 * torch.randn(n_items, self.factors))
        bias = torch.nn.Parameter(torch.zeros(n_items))
        # foreach: one kernel per step for all three tensors, ~1.8x faster here (same maths)
        optimiser = torch.optim.Adam([p, q, bias], lr=self.learning_rate, foreach=True)
        draws = torch.Generator().manual_seed(self.seed)
        for _ in range(self.epochs):
            # A batch is a few users with every item they have seen, so Σ_{i ∈ S_u} pᵢ is
            # computed once per user, not once per pair.
            for batch in torch.randperm(n_users, generator=draws).split(self.batch_size):
                rows = x[batch.numpy()]
                dense = torch.from_numpy(rows.toarray())
                u = torch.from_numpy(np.repeat(np.arange(len(batch)), np.diff(rows.indptr)))
                i = torch.from_numpy(rows.indices.astype(np.int64))
                j = torch.randint(n_items, (len(i),), generator=draws)
                keep = dense[u, j] == 0  # a draw that hits a seen item is dropped, not redrawn
                u, i, j = u[keep], i[keep], j[keep]
                summed = (dense @ p)[u]
                n = dense.sum(dim=1)[u]
                without_i = (summed - p[i]) * (n - 1.0).clamp(min=1.0).pow(-self.alpha)[:, None]
                with_all = summed * n.pow(-self.alpha)[:, None]
                s_i = bias[i] + (without_i * q[i]).sum(dim=1)
                s_j = bias[j] + (with_all * q[j]).sum(dim=1)
                penalty = p[i].pow(2).sum() + q[i].pow(2).sum() + q[j].pow(2).sum()
                penalty = penalty + bias[i].pow(2).sum() + bias[j].pow(2).sum()
                loss = -torch.nn.functional.logsigmoid(s_i - s_j).mean()
                loss = loss + self.l2 * penalty / max(len(u), 1)
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
        self.item_context_ = p.detach().numpy().copy()  # pᵢ: what having seen i says
        self.item_target_ = q.detach().numpy().copy()  # q_j: what j needs
        self.item_bias_ = bias.detach().numpy().copy()
        self.trained_items_ = (x.getnnz(axis=0) > 0).astype(np.float32)
        return self

    def score(self, history: sp.csr_matrix) -> np.ndarray:
        h = history.astype(np.float32).tocsr()
        h.data[:] = 1.0
        n = np.asarray(h.sum(axis=1), dtype=np.float32)
        # One user vector for every item: exact for the unseen items that get served; a seen
        # item's own p_j stays in the sum (training left it out), but serving drops seen items.
        user = np.asarray(h @ self.item_context_) * np.maximum(n, 1.0) ** -self.alpha
        logits = user @ self.item_target_.T + self.item_bias_
        return _softmax_over_trained(logits, self.trained_items_)


def _numpy_layer(layer) -> tuple[np.ndarray, np.ndarray]:
    """A ``torch.nn.Linear``'s (weight, bias) as arrays, weight transposed: y = x @ w + b."""
    return layer.weight.detach().numpy().T.copy(), layer.bias.detach().numpy().copy()


class EmbeddingNeighbours:
    """PureSVD item embeddings served from a FAISS inner-product index.

    V (n_items, d) are the top-d right singular vectors of X; a user's query is q = xᵤ·V and
    score(u, i) = q·vᵢ, i.e. the rank-d reconstruction of xᵤ. ``IndexFlatIP`` is exact; swap in
    ``IndexHNSWFlat`` for millions of items (the call sites do not change).
    """

    name = "embedding"

    def __init__(self, dim: int = 64, seed: int = 0) -> None:
        self.dim = dim
        self.seed = seed

    def fit(self, interactions: sp.csr_matrix) -> EmbeddingNeighbours:
        from scipy.sparse.linalg import svds

        x = interactions.astype(np.float64)
        d = min(self.dim, min(x.shape) - 1)
        rng = np.random.default_rng(self.seed)
        v0 = rng.standard_normal(min(x.shape))  # svds' start vector: fixed for reproducibility
        _, _, vt = svds(x, k=d, v0=v0)
        self.item_vectors_ = np.ascontiguousarray(vt.T, dtype=np.float32)
        self.index_ = faiss.IndexFlatIP(d)
        self.index_.add(self.item_vectors_)
        return self

    def query(self, history: sp.csr_matrix) -> np.ndarray:
        return np.ascontiguousarray(history @ self.item_vectors_, dtype=np.float32)

    def score(self, history: sp.csr_matrix) -> np.ndarray:
        return self.query(history) @ self.item_vectors_.T

    def search(
        self, history: sp.csr_matrix, n: int, exclude: sp.csr_matrix | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """FAISS top-n excluding ``exclude`` (default: seen items): (scores, item indices).

        Both arrays are (n_users, n); slots left empty (tiny catalogues) hold -inf / -1.
        """
        exclude = history if exclude is None else exclude.tocsr()
        seen_max = int(np.diff(exclude.indptr).max(initial=0))
        fetch = min(n + seen_max, self.index_.ntotal)
        scores, items = self.index_.search(self.query(history), fetch)
        out_s = np.full((history.shape[0], n), -np.inf, dtype=np.float32)
        out_i = np.full((history.shape[0], n), -1, dtype=np.int64)
        for u in range(history.shape[0]):
            seen = set(exclude.indices[exclude.indptr[u] : exclude.indptr[u + 1]].tolist())
            keep = [j for j, item in enumerate(items[u]) if item not in seen][:n]
            out_s[u, : len(keep)] = scores[u, keep]
            out_i[u, : len(keep)] = items[u, keep]
        return out_s, out_i


def build_sources(config: RecsysConfig) -> list[CandidateSource]:
    """The sources named in ``config.sources``, constructed with the config's settings."""
    factories = {
        "popularity": lambda: Popularity(),
        "item_knn": lambda: ItemKNN(config.knn_neighbours, config.knn_shrink),
        "ease": lambda: EASE(config.ease_l2),
        "dlae": lambda: DLAE(config.dlae_dropout, config.dlae_l2),
        "edlae": lambda: EDLAE(config.dlae_dropout, config.dlae_l2),
        "user_knn": lambda: UserKNN(config.user_knn_neighbours, config.user_knn_shrink),
        "rp3beta": lambda: RP3beta(config.rp3_alpha, config.rp3_beta, config.rp3_neighbours),
        "als": lambda: ALS(
            config.als_factors,
            config.als_regularization,
            config.als_alpha,
            config.als_iterations,
            config.seed,
        ),
        "embedding": lambda: EmbeddingNeighbours(config.embedding_dim, config.seed),
        "multvae": lambda: MultVAE(
            config.vae_hidden,
            config.vae_latent,
            config.vae_beta,
            config.vae_epochs,
            seed=config.seed,
        ),
        "bpr": lambda: BPR(config.bpr_factors, config.bpr_l2, config.bpr_epochs, seed=config.seed),
    }
    return [factories[name]() for name in config.sources]
