"""Settings of the two-stage recommender: one frozen dataclass, every default measured or cited."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

from recsys.errors import InvalidArgumentError

SOURCE_NAMES = (
    "popularity", "item_knn", "ease", "als", "embedding", "dlae", "edlae", "rp3beta", "user_knn",
    "multvae", "bpr",
)  # fmt: skip
DEFAULT_SOURCES = ("popularity", "item_knn", "ease", "rp3beta", "als", "embedding", "multvae")
# The temporal carve scored the two-stage model lower with Mult-VAE on every seed (round 10).
TEMPORAL_SOURCES = tuple(s for s in DEFAULT_SOURCES if s != "multvae")
# The ranker's training labels for a held-out item (ranker.relevance); unlabelled candidates are 0.
RANKER_LABELS = ("binary", "graded2", "rating")
# The ranker's LightGBM objectives (ranker.LambdaRanker; config comment on ranker_objective).
RANKER_OBJECTIVES = ("rank_xendcg", "lambdarank")


def _whole(low: int) -> Callable[[object], bool]:
    """A count: a whole number (an int, not a bool or 2.5) of at least ``low``."""
    return lambda v: isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= low


def _real(test: Callable[[float], bool]) -> Callable[[object], bool]:
    """A real number (not a bool) passing ``test``; every test is a comparison NaN fails."""
    return lambda v: isinstance(v, numbers.Real) and not isinstance(v, bool) and test(v)


# The valid range of each numeric setting, as text for the error and as a test. A count must
# be a whole number (2.5 or True used to pass, then failed in numpy, faiss or LightGBM after
# stage 1 had trained). Every real test is a comparison that a NaN fails, so NaN is refused
# too; None passes only where the field's comment gives it a meaning.
_RANGES: dict[str, tuple[str, Callable[[object], bool]]] = {
    # numpy takes 0 <= seed < 2**32, and fit adds offsets to it (1 + 1000 per validation carve,
    # one per bagged ranker): 2**31 leaves them room, where 2**32 - 1 failed after 55 s of fit
    "seed": ("a whole number from 0 to 2**31 - 1", lambda v: _whole(0)(v) and v < 2**31),
    "train_ratio": ("in (0, 1)", _real(lambda v: 0 < v < 1)),
    "candidates_per_source": ("a whole number >= 1", _whole(1)),
    "k": ("a whole number >= 1", _whole(1)),
    "dlae_dropout": ("in [0, 1)", _real(lambda v: 0 <= v < 1)),
    "dlae_l2": ("finite and >= 0", _real(lambda v: 0 <= v < math.inf)),
    "ranker_bags": ("a whole number >= 1", _whole(1)),
    "validation_folds": ("a whole number >= 1", _whole(1)),
    "blend_weight": (
        "finite and >= 0 (0 = the ranker alone)",
        _real(lambda v: 0 <= v < math.inf),
    ),
    "cold_shrinkage": (
        ">= 0 (inf = global popularity), or None to choose it on training users",
        _real(lambda v: v >= 0),
    ),
    "ease_l2": (
        "finite and > 0 (EASE inverts the item Gram matrix plus λ·I)",
        _real(lambda v: 0 < v < math.inf),
    ),
    "rp3_alpha": ("finite and > 0 (the walk's exponent)", _real(lambda v: 0 < v < math.inf)),
    "rp3_beta": ("finite and >= 0 (the popularity discount)", _real(lambda v: 0 <= v < math.inf)),
    "rp3_neighbours": ("a whole number >= 1, or None to keep all", _whole(1)),
    "user_knn_neighbours": ("a whole number >= 1", _whole(1)),
    "user_knn_shrink": ("finite and >= 0", _real(lambda v: 0 <= v < math.inf)),
    "knn_neighbours": ("a whole number >= 1", _whole(1)),
    "knn_shrink": ("finite and >= 0", _real(lambda v: 0 <= v < math.inf)),
    "als_factors": ("a whole number >= 1", _whole(1)),
    "als_regularization": ("finite and >= 0", _real(lambda v: 0 <= v < math.inf)),
    "als_alpha": (
        "finite and > 0 (the weight of an observed interaction)",
        _real(lambda v: 0 < v < math.inf),
    ),
    "als_iterations": ("a whole number >= 1", _whole(1)),
    "vae_hidden": ("a whole number >= 1", _whole(1)),
    "vae_latent": ("a whole number >= 1", _whole(1)),
    "vae_beta": ("finite and >= 0", _real(lambda v: 0 <= v < math.inf)),
    "vae_epochs": ("a whole number >= 1", _whole(1)),
    "bpr_factors": ("a whole number >= 1", _whole(1)),
    "bpr_l2": ("finite and >= 0", _real(lambda v: 0 <= v < math.inf)),
    "bpr_epochs": ("a whole number >= 1", _whole(1)),
    "embedding_dim": ("a whole number >= 1", _whole(1)),
    "ranker_estimators": ("a whole number >= 1", _whole(1)),
    "ranker_learning_rate": ("finite and > 0", _real(lambda v: 0 < v < math.inf)),
    "ranker_leaves": ("a whole number >= 2 (a tree needs two leaves to split)", _whole(2)),
    "ranker_min_child_samples": ("a whole number >= 0", _whole(0)),
    "ranker_truncation": ("a whole number >= 1", _whole(1)),
    "negatives_per_user": ("a whole number >= 1, or None to keep all", _whole(1)),
    "new_item_slots": ("a whole number >= 0", _whole(0)),
    "mmr_lambda": ("in [0, 1]", _real(lambda v: 0 <= v <= 1)),
}
_OPTIONAL = ("cold_shrinkage", "rp3_neighbours", "negatives_per_user")  # None is meaningful


@dataclass(frozen=True)
class RecsysConfig:
    """Every knob of ``TwoStageRecommender``; ``asdict(config)`` goes into benchmark records."""

    seed: int = 42  # split seed and every model seed (Microsoft Recommenders' SEED is 42 too)
    protocol: str = "stratified"  # "stratified" (their benchmark) or "temporal" (production-like)
    train_ratio: float = 0.75  # train share of the test split; the validation carve uses it too

    # Stage 1: candidate sources (the table in sources.py) and the merged candidate set.
    sources: tuple[str, ...] = DEFAULT_SOURCES
    candidates_per_source: int = 100  # top-N from each source, merged by union
    # EASE λ and kNN k chosen on the validation carve (a split of *train*; each source alone,
    # NDCG@10, seeds 42/43/44): λ 250 -> 500 +0.005/+0.001/+0.005 (1000: within 0.001 of 500);
    # k 100 -> 200 +0.002/+0.007/+0.006 (400: within 0.002 of 200). We took the first step.
    ease_l2: float = 500.0  # EASE ridge λ
    # DLAE / EDLAE (Steck 2020): dropout p and ridge λ; used only when named in ``sources``.
    # Chosen on the validation carves (2 per seed, seeds 42-44, each model alone, NDCG@10;
    # p 0.1-0.9 x λ 0-750): EDLAE p 0.8, λ 250 0.2713 vs EASE λ 500 0.2680 / λ 750 0.2687;
    # DLAE's best 0.2712 (p 0.75, λ 350). The surface is flat within 0.001 for p 0.67-0.875.
    dlae_dropout: float = 0.8
    dlae_l2: float = 250.0
    # RP3beta (Paudel et al. 2016): walk exponent α, popularity discount β, neighbours kept per
    # item (None = all). Chosen on the validation carves (2 per seed, seeds 42-44, alone,
    # NDCG@10; α 0.2-1.2 x β 0-0.7 x k 25-all): 0.2655 vs EASE λ 500 0.2680; k 800 is within
    # 0.0004 of keeping all, β 0.5 / 0.6 within 0.002.
    rp3_alpha: float = 0.6
    rp3_beta: float = 0.55
    rp3_neighbours: int | None = None
    # User-kNN: neighbours per user and cosine shrinkage; used only when named in ``sources``.
    # Chosen on the validation carves (as RP3beta; k 25-400 x shrink 0-50): 0.2557. The surface
    # is flat (k 100-150 with shrink 0-5 within 0.0006).
    user_knn_neighbours: int = 125
    user_knn_shrink: float = 2.0
    knn_neighbours: int = 200  # item-kNN: neighbours kept per item
    knn_shrink: float = 10.0  # item-kNN: cosine shrinkage
    # ALS: chosen on the stratified validation carves (round 7 of EXPERIMENTS.md: 2 per seed,
    # seeds 42-44, alone, NDCG@10; factors 16-256 x regularization 0.01-1000 x α 1-100): 0.2676
    # against 0.2548 for 16 factors, λ 0.01, α 1 (EASE: 0.2669). A large α is a small weight on
    # unobserved items (Rendle et al. 2022). The optimum is sharp (λ 30 or 300: 0.23), and on
    # the test splits ALS *alone* scores lower than the old settings; the two-stage model gains.
    # The temporal protocol's own carve prefers the old settings: see PROTOCOL_SETTINGS.
    als_factors: int = 64
    als_regularization: float = 100.0
    # Weight of an observed interaction: implicit trains the item factors with confidence α,
    # serving folds users in with 1 + α (Hu et al.; factors.ALS: chosen and measured with that).
    als_alpha: float = 30.0
    als_iterations: int = 15
    # Mult-VAE (Liang et al. 2018), round 10 of EXPERIMENTS.md: the paper's 600-200 layers,
    # chosen alone on the validation carves (2 per seed, seeds 42-44; 600-200 or 200-64 x
    # β 0.2-1 x 25-200 epochs): 0.2568 vs EASE 0.2669. It overfits ~700 users a carve: more
    # epochs or a weaker KL term score lower (100 epochs: 0.2477; β 0.2: 0.2493).
    vae_hidden: int = 600
    vae_latent: int = 200
    vae_beta: float = 0.5
    vae_epochs: int = 50
    # BPR (Rendle et al. 2009) on FISM's factored item-item model; used only when named in
    # ``sources``. Round 14 of EXPERIMENTS.md: chosen alone on the validation carves (2 per
    # seed, seeds 42-44; 64 or 128 factors x L2 1e-5-1e-2 x 20-100 epochs): 0.2543 vs EASE
    # 0.2669. Epochs matter most (20: 0.229, 50: 0.249), L2 and factors barely.
    bpr_factors: int = 64
    bpr_l2: float = 1e-2
    bpr_epochs: int = 100
    embedding_dim: int = 16  # PureSVD dimension of the FAISS item embeddings (16 > 32 > 64)

    # Stage 2: a LightGBM learning-to-rank model. Small trees and large leaves measured best: the
    # validation labels are noisy (see ranker.py), so a flexible model fits the noise. Round 6
    # searched eight settings on validation carves: none beat these on held-out carves
    # (EXPERIMENTS.md).
    ranker_objective: str = "rank_xendcg"  # or "lambdarank"; see ranker.py for the comparison
    ranker_estimators: int = 300
    ranker_learning_rate: float = 0.05
    ranker_leaves: int = 7
    ranker_min_child_samples: int = 200
    ranker_truncation: int = 30  # lambdarank_truncation_level (lambdarank only)
    # Monotone constraints on every source's rank and relative score (ranker.py). Not adopted:
    # validation two-stage NDCG@10 0.2750 vs 0.2753 without (lower on 2 of 3 seeds; round 5).
    ranker_monotone: bool = False
    # Rankers averaged, differing only in their seed (so in the rows and features each tree
    # samples). Round 15 of EXPERIMENTS.md: 3 bags scored the validation carves 0.2803 against
    # 0.2796 for one ranker, higher on every seed. The temporal carve keeps one (0.1323 vs 0.1331).
    ranker_bags: int = 3
    # The score blend as two ranker features (features.py). Round 18 of EXPERIMENTS.md.
    ranker_blend_features: bool = False
    # Training label of a held-out candidate (ranker.relevance): "binary" 1 whatever its rating
    # (the test protocol's relevance), "graded2" 1 for a rating of 1-3 and 2 for 4-5, "rating"
    # the rating itself. Neither adopted (round 19 of EXPERIMENTS.md): "graded2" scored the second
    # validation carves 0.2801 against 0.2798, higher on one seed of three; "rating" scored the
    # first carves 0.2794 against 0.2800, and its ranker alone fell 0.0125 on test.
    ranker_labels: str = "binary"
    # Independent validation carves: 2 measured +0.006 NDCG@10 over 1; 3 rose +0.0016 on the
    # second validation carves, short of the bar (round 20 of EXPERIMENTS.md).
    validation_folds: int = 2
    # Negatives per user, sampled from the candidate set; None keeps them all. Round 20: None
    # lost on validation (0.2792 vs 0.2800), 50 cost the ranker alone 0.0039 on test.
    negatives_per_user: int | None = 100
    # Final score = z(ranker) + blend_weight · z(blend), per user. 1.0 = equal weights, not
    # tuned (0.5 / 1 / 2 all beat both parts on seeds 42-44); 0 = ranker alone.
    blend_weight: float = 1.0
    # The sources whose relative scores the blend sums (candidates.blend_scores). RP3beta joined
    # in round 4: the whole pipeline's validation NDCG@10 rose on every seed (EXPERIMENTS.md).
    # Round 21: EASE alone, EASE + ALS, and + "embedding" all lost or tied on validation (+
    # "embedding" then scored 0.5000 on test; not adopted, being chosen on the test split).
    blend_sources: tuple[str, ...] = ("ease", "als", "item_knn", "rp3beta")

    # Cold start: SegmentPopularity's pseudo-count; None = choose it on a carve of training users
    # (cold_start.choose_shrinkage; inf there means plain global popularity).
    cold_shrinkage: float | None = None

    # Serving and beyond-accuracy.
    k: int = 10  # list length served and scored (@10, as Microsoft Recommenders' table)
    # Places at the end of each list given to new items (no training interaction), chosen by
    # their content (recommender.py). An exploration quota is a product decision that offline
    # NDCG on past data cannot value, so it is off by default and the benchmark measures what
    # one and two places cost and catch on the temporal split, the protocol with new items.
    new_item_slots: int = 0
    mmr_lambda: float = 0.8  # relevance weight in the MMR diversity re-rank

    def __post_init__(self) -> None:
        unknown = [s for s in self.sources if s not in SOURCE_NAMES]
        if unknown or not self.sources:
            raise InvalidArgumentError(
                f"unknown or empty sources {list(self.sources)}; choose from {list(SOURCE_NAMES)}"
            )
        if self.protocol not in ("stratified", "temporal"):
            raise InvalidArgumentError(
                f"protocol must be 'stratified' or 'temporal', got {self.protocol!r}"
            )
        missing = [s for s in self.blend_sources if s not in self.sources]
        if missing:
            raise InvalidArgumentError(
                f"blend_sources {missing} are not among sources {list(self.sources)}"
            )
        if self.ranker_objective not in RANKER_OBJECTIVES:
            raise InvalidArgumentError(
                f"ranker_objective must be one of {list(RANKER_OBJECTIVES)}, "
                f"got {self.ranker_objective!r}"
            )
        if self.ranker_labels not in RANKER_LABELS:
            raise InvalidArgumentError(
                f"ranker_labels must be one of {list(RANKER_LABELS)}, got {self.ranker_labels!r}"
            )
        for name in ("ranker_monotone", "ranker_blend_features"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidArgumentError(
                    f"{name} must be True or False, got {getattr(self, name)!r}"
                )
        for name, (valid, test) in _RANGES.items():
            value = getattr(self, name)
            if value is None and name in _OPTIONAL:
                continue
            if not test(value):  # a string or None where a number belongs fails the type test
                raise InvalidArgumentError(f"{name} must be {valid}, got {value!r}")

    def with_protocol(self, protocol: str) -> RecsysConfig:
        """This config under ``protocol``, with the settings chosen on that protocol's carve.

        The fields in ``PROTOCOL_SETTINGS[protocol]`` are overwritten: change them after this
        call, not before.
        """
        return replace(self, protocol=protocol, **PROTOCOL_SETTINGS.get(protocol, {}))

    def to_dict(self) -> dict:
        return asdict(self)


# Settings whose best value depends on the protocol, each chosen on that protocol's own
# validation carve; the dataclass defaults are the stratified ones. ALS (round 7): the
# temporal carve scored the two-stage model 0.1353 with the old settings against 0.1307 with
# the stratified carves' choice (ALS alone 0.142 vs 0.130). Mult-VAE (round 10): 0.1331
# without it against 0.1320 with it (lower on every seed), so the temporal model omits it.
# Bagged rankers (round 15): 0.1323 with three against 0.1331 with one (lower on one seed).
PROTOCOL_SETTINGS: dict[str, dict[str, object]] = {
    "stratified": {
        "sources": DEFAULT_SOURCES,
        "als_factors": 64,
        "als_regularization": 100.0,
        "als_alpha": 30.0,
        "ranker_bags": 3,
    },
    "temporal": {
        "sources": TEMPORAL_SOURCES,
        "als_factors": 16,
        "als_regularization": 0.01,
        "als_alpha": 1.0,
        "ranker_bags": 1,
    },
}
