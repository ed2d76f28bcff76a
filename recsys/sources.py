"""Stage 1 candidate sources: each turns a user's history into a score for every item.

One contract (``CandidateSource``), seven models in the default set, from the simplest
baseline up, and four optional ones, measured and not adopted (marked *optional*). This file
holds the contract, what the sources share and the simplest of them; the others live in one
file per family, and ``candidates.build_sources`` builds the set a config names.

=============  ==========================================================================
**sources.py**
popularity     number of training users per item; the same list for everyone
**neighbours.py**: scores summed over similar items or users, or a random walk
item_knn       item-item cosine similarity, top-``k`` neighbours kept (Sarwar et al., WWW 2001)
user_knn       *optional*: user-user cosine similarity, the items of the ``k`` most similar
               users (Herlocker et al., SIGIR 1999)
rp3beta        three-step random walk item -> user -> item, each step's probability raised to α,
               divided by the target's popularity^β (Paudel et al., ACM TiiS 2016)
**autoencoders.py**: a user's history in, a score for every item out
ease           closed-form linear autoencoder, B = I - P·diagMat(1/diag(P)), P = (XᵀX + λI)⁻¹,
               zero diagonal (Steck, "Embarrassingly Shallow Autoencoders", WWW 2019)
dlae / edlae   *optional*: EASE's denoising relatives: dropout on the input acts as a ridge
               penalty that grows with item popularity, Λ = p/(1-p)·diag(XᵀX) + λ; DLAE
               B = (XᵀX + Λ)⁻¹XᵀX, EDLAE = EASE with Λ for λI (Steck, "Autoencoders that don't
               overfit towards the Identity", NeurIPS 2020)
multvae        variational autoencoder with a multinomial likelihood, the one non-linear model
               (Liang et al., WWW 2018); scores are its softmax over items
**factors.py**: users and items as low-dimensional vectors
als            implicit-feedback matrix factorisation (Hu, Koren, Volinsky, ICDM 2008), trained
               with ``implicit`` (confidence α·x); users are folded in by Hu et al.'s closed-form
               least-squares step with confidence 1 + α·x, so a new user needs no retrain (one
               more than implicit trained with, on purpose: ``factors.ALS`` says why)
embedding      PureSVD item embeddings (Cremonesi et al., RecSys 2010) in a FAISS inner-product
               index; a user's query vector is xᵤ·V, so retrieval is one ANN search, the
               production pattern for two-tower retrieval
bpr            *optional*: BPR's pairwise ranking criterion (Rendle et al., UAI 2009) on FISM's
               factored item-item model (Kabbur et al., KDD 2013), which scores from history
=============  ==========================================================================

Every source scores users *from their history rows* (``history``: CSR, one row per user), not
from a user table: the same call serves a training user, a user whose history grew since the
last fit, and a brand-new user with three interactions. Items with no training interactions
get score 0 from every collaborative source: only content features (``cold_start``) reach them.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import scipy.sparse as sp


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


def softmax_over_trained(logits: np.ndarray, trained_items: np.ndarray) -> np.ndarray:
    """Each row's softmax over the items some training user touched (the others score 0).

    As probabilities, "score / the user's best" (features.py) is exp(logit - best logit).
    """
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p *= trained_items
    return (p / p.sum(axis=1, keepdims=True)).astype(np.float32)


class Popularity:
    """Score = number of training users who interacted with the item."""

    name = "popularity"

    def fit(self, interactions: sp.csr_matrix) -> Popularity:
        self.counts_ = np.asarray(interactions.sum(axis=0)).ravel().astype(np.float32)
        return self

    def score(self, history: sp.csr_matrix) -> np.ndarray:
        return np.tile(self.counts_, (history.shape[0], 1))
