"""Config validation: presets, patches, overrides, field-named errors."""

import pytest

from trainer.config import (
    PATCHES,
    PRESETS,
    ConfigError,
    TrainConfig,
    build_config,
    describe_field,
    field_choices,
    parse_overrides,
)


def test_presets_match_the_design() -> None:
    std = build_config("standard")
    assert (std.learning_rate_init, std.learning_rate_max, std.warmup_epochs) == (3e-5, 5e-4, 3)
    assert (std.lambda_recon, std.lambda_sparse, std.lambda_acyclic, std.lambda_disen) == (
        10.0, 1e-5, 3e-6, 1e-5,
    )
    assert std.grad_clip_norm == 1.0
    assert std.eval_every == 2 and std.patience == 15
    assert std.dataset == "uci" and std.standardize_effective is False
    syn = build_config("synthetic")
    assert syn.dataset == "synthetic" and syn.lambda_recon == 10.0
    uci = build_config("uci")
    assert (uci.learning_rate_init, uci.learning_rate_max, uci.warmup_epochs) == (3e-6, 5e-5, 5)
    assert (uci.lambda_recon, uci.lambda_sparse, uci.lambda_acyclic, uci.lambda_disen) == (
        100.0, 1e-6, 1e-7, 1e-6,
    )
    assert uci.grad_clip_norm == 0.5 and uci.standardize_effective is True


def test_standardize_defaults_on_for_uci_only() -> None:
    assert TrainConfig(dataset="uci").standardize_effective is True
    assert TrainConfig(dataset="synthetic").standardize_effective is False


def test_patches_apply_the_seed_adjustments() -> None:
    cfg = build_config("standard", patches=["lower_lr", "sigmoid_sparsify"])
    assert (cfg.learning_rate_init, cfg.learning_rate_max, cfg.grad_clip_norm) == (1e-6, 2e-5, 0.3)
    assert cfg.sparsify_method == "sigmoid"
    assert set(PATCHES) == {"lower_lr", "sigmoid_sparsify", "rebalance_losses", "bigger_model"}
    assert set(PRESETS) == {"standard", "synthetic", "uci", "healthy"}


@pytest.mark.parametrize(
    ("overrides", "field", "fragment"),
    [
        ({"learning_rate_max": -1.0}, "learning_rate_max", "> 0"),
        ({"epochs": 0}, "epochs", ">= 1"),
        ({"epochs": "many"}, "epochs", "integer"),
        ({"sparsify_method": "gumbel"}, "sparsify_method", "'topk', 'sigmoid'"),
        ({"grad_clip_norm": 0}, "grad_clip_norm", "> 0"),
        ({"not_a_field": 1}, "not_a_field", "unknown field"),
    ],
)
def test_bad_values_name_the_field_and_the_allowed_range(
    overrides: dict, field: str, fragment: str
) -> None:
    with pytest.raises(ConfigError) as info:
        build_config("standard", overrides)
    assert info.value.field == field
    assert field in str(info.value)
    assert fragment in str(info.value)


def test_relations_between_fields_are_checked() -> None:
    with pytest.raises(ConfigError, match="learning_rate_init must be <= learning_rate_max"):
        build_config("standard", {"learning_rate_init": 1e-2})


def test_unknown_preset_and_patch() -> None:
    with pytest.raises(ConfigError, match="unknown preset 'fast'"):
        build_config("fast")
    with pytest.raises(ConfigError, match="unknown patch 'x'"):
        build_config("uci", patches=["x"])


def test_parse_overrides_parses_json_values_and_rejects_unknown_keys() -> None:
    assert parse_overrides(["epochs=5", "standardize=false", "sparsify_method=sigmoid"]) == {
        "epochs": 5,
        "standardize": False,
        "sparsify_method": "sigmoid",
    }
    assert parse_overrides(["lambda_sparse=1e-4"]) == {"lambda_sparse": 1e-4}
    with pytest.raises(ConfigError, match="unknown field 'lr'"):
        parse_overrides(["lr=1"])
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["epochs"])


def test_synthetic_preset_is_standard_on_synthetic_data() -> None:
    std, syn = build_config("standard").model_dump(), build_config("synthetic").model_dump()
    assert {k for k in std if std[k] != syn[k]} == {"dataset"}


def test_choices_are_data_and_their_words_follow_them() -> None:
    assert field_choices("sparsify_method") == ["topk", "sigmoid"]
    assert field_choices("dataset") == ["uci", "synthetic", "csv"]
    assert field_choices("epochs") is None and field_choices("standardize") is None
    assert describe_field("sparsify_method") == "one of 'topk', 'sigmoid'"
    assert describe_field("epochs") == "integer >= 1 and <= 100000"
