"""Command line: train a model, classify text, work the review queue.

    python -m moderation train [--data-dir D] [--model PATH] [--seed 0] [--features tfidf]
                               [--deployment-prior]   (serve at config.DEPLOYMENT_PRIOR)
                               [--identity-guard] [--require-parent]   (moderation/identity.py)
    python -m moderation classify "some text" [--model PATH]
    python -m moderation queue [--db PATH] enqueue "text" --label hate --score 0.7 [--reach 100]
    python -m moderation queue [--db PATH] next --reviewer alice
    python -m moderation queue [--db PATH] decide ITEM_ID --reviewer alice --outcome violation
    python -m moderation queue [--db PATH] appeal ITEM_ID --user bob [--reason "..."]
    python -m moderation queue [--db PATH] overturns          (JSON lines: new training labels)

The model file defaults to ``$AIS_MODERATION_MODEL`` or ``~/.cache/ais/moderation/model.pkl``; the
queue to ``$AIS_MODERATION_DB`` or ``moderation-queue.sqlite`` in the working directory. Output is
JSON on stdout; errors are one line on stderr with exit status 2. ``train`` prints aggregate
figures only: the training data contains offensive text that has no place in a terminal log.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import asdict, replace
from pathlib import Path

from moderation.errors import ModerationError


def _default_model() -> Path:
    env = os.environ.get("AIS_MODERATION_MODEL")
    return Path(env) if env else Path.home() / ".cache" / "ais" / "moderation" / "model.pkl"


def _default_db() -> Path:
    return Path(os.environ.get("AIS_MODERATION_DB", "moderation-queue.sqlite"))


def _print(obj: object) -> None:
    print(json.dumps(obj, indent=2, default=str))


def _train(args: argparse.Namespace) -> None:
    from evals.datasets import load_davidson
    from moderation.config import DEPLOYMENT_PRIOR, ModerationConfig
    from moderation.eval import evaluate_seed, train, with_deployment_prior, with_identity_guard
    from moderation.labels import from_davidson

    data = from_davidson(load_davidson(args.data_dir))
    config = replace(ModerationConfig(), features=args.features, seed=args.seed)
    trained = train(data, args.seed, config)
    if args.deployment_prior:  # same heads; probabilities and thresholds moved to the prior
        trained = with_deployment_prior(trained, data, DEPLOYMENT_PRIOR)
    if args.identity_guard:  # thresholds re-chosen on guarded validation scores
        trained = with_identity_guard(trained, data, require_parent=args.require_parent)
    trained.require_parent = args.require_parent  # a routing rule: thresholds unchanged
    # how to serve it travels with the model: classify builds the same Moderator
    trained.model.serving_options = {
        "identity_guard": trained.identity_guard,
        "require_parent": trained.require_parent,
    }
    report = evaluate_seed(trained, data, with_tradeoff=False)
    trained.model.save(args.model)
    _print(
        {
            "model": str(args.model),
            "test_weighted_f1": round(report.three_class["weighted"]["f1"], 4),
            "test_hate_f1": round(report.three_class["per_class"][0]["f1"], 4),
            "hate_threshold": report.hate_threshold,
            # an unreachable auto threshold is inf; JSON has no inf, so print null ("never")
            "thresholds": {
                k: {n: (None if x == float("inf") else x) for n, x in asdict(v).items()}
                for k, v in trained.thresholds.items()
            },
            "routing_shares": report.routing.shares,
        }
    )


def _classify(args: argparse.Namespace) -> None:
    from moderation.classifier import ModerationModel
    from moderation.pipeline import Moderator

    model = ModerationModel.load(args.model)
    moderator = Moderator(model, **getattr(model, "serving_options", {}))
    _print(asdict(moderator.moderate(args.text)))


def _queue(args: argparse.Namespace) -> None:
    from moderation.queue import ReviewQueue

    with ReviewQueue(args.db) as queue:
        if args.action == "enqueue":
            item = queue.enqueue(
                args.content_id, args.text, args.label, args.score, reach=args.reach
            )
            _print({"item_id": item, "pending": queue.pending()})
        elif args.action == "next":
            claim = queue.claim(args.reviewer)
            _print(asdict(claim) if claim else {"item_id": None, "message": "queue is empty"})
        elif args.action == "decide":
            queue.decide(args.item_id, args.reviewer, args.outcome, args.note)
            _print({"item_id": args.item_id, "decision": queue.decision(args.item_id)})
        elif args.action == "appeal":
            appeal = queue.appeal(args.item_id, args.user, args.reason)
            _print({"item_id": args.item_id, "appeal_item_id": appeal})
        elif args.action == "overturns":
            for label in queue.overturns():
                print(json.dumps(asdict(label)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m moderation", description=__doc__.split("\n")[0]
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log decisions to stderr")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train on Davidson et al. and save the model")
    train.add_argument("--data-dir", default=None)
    train.add_argument("--model", type=Path, default=_default_model())
    train.add_argument("--seed", type=int, default=0)
    train.add_argument(
        "--features", default="tfidf", choices=["tfidf", "embedding", "tfidf+embedding"]
    )
    train.add_argument(
        "--deployment-prior",
        action="store_true",
        help="serve at moderation.config.DEPLOYMENT_PRIOR (10%% offensive, 1%% hate), not at "
        "Davidson's 83%% offensive",
    )
    train.add_argument(
        "--identity-guard",
        action="store_true",
        help="a hate score must survive deleting identity terms (moderation/identity.py)",
    )
    train.add_argument(
        "--require-parent",
        action="store_true",
        help="a hate flag also needs the offensive score at its review cut",
    )
    train.set_defaults(fn=_train)

    classify = sub.add_parser("classify", help="moderate one text and print the verdict")
    classify.add_argument("text")
    classify.add_argument("--model", type=Path, default=_default_model())
    classify.set_defaults(fn=_classify)

    queue = sub.add_parser("queue", help="the human review queue")
    queue.add_argument("--db", type=Path, default=_default_db())
    qsub = queue.add_subparsers(dest="action", required=True)
    enqueue = qsub.add_parser("enqueue")
    enqueue.add_argument("text")
    enqueue.add_argument("--label", required=True)
    enqueue.add_argument("--score", type=float, required=True)
    enqueue.add_argument("--reach", type=int, default=0)
    enqueue.add_argument("--content-id", default="cli")
    nxt = qsub.add_parser("next")
    nxt.add_argument("--reviewer", required=True)
    decide = qsub.add_parser("decide")
    decide.add_argument("item_id")
    decide.add_argument("--reviewer", required=True)
    decide.add_argument("--outcome", required=True, choices=["violation", "no_violation"])
    decide.add_argument("--note", default="")
    appeal = qsub.add_parser("appeal")
    appeal.add_argument("item_id")
    appeal.add_argument("--user", required=True)
    appeal.add_argument("--reason", default="")
    qsub.add_parser("overturns")
    queue.set_defaults(fn=_queue)

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    try:
        args.fn(args)
    except ModerationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
