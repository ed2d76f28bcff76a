import moderation


def test_public_api_is_pinned():
    assert sorted(moderation.__all__) == sorted(
        [
            "AlreadyDecidedError", "AppealError", "BinaryContentError", "CategoryError",
            "ConfigError", "EncodingError", "InvalidTextError", "ItemNotFoundError",
            "LabelThresholds", "LeaseError", "ModerationConfig", "ModerationError",
            "ModerationModel", "Moderator", "NotTrainedError", "Perturber", "QueueError",
            "ReviewQueue", "TextTooLongError", "UnsafeModelError", "Verdict",
            "choose_thresholds", "normalise", "normalise_with_signals", "risk_priority", "route",
            "three_class", "tune_hate_threshold", "validate_text",
        ]
    )  # fmt: skip
    for name in moderation.__all__:
        assert getattr(moderation, name) is not None


def test_every_error_derives_from_the_root():
    errors = [getattr(moderation, n) for n in moderation.__all__ if n.endswith("Error")]
    assert all(issubclass(e, moderation.ModerationError) for e in errors)
