"""One validated training configuration, the named presets and the emergency patches.

This module is part of the public contract: the backend imports it (no torch here) to
validate run requests with exactly the rules the trainer applies.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

# How a run names a data file the backend resolves (no folders, no leading dot, so never
# `..`); uploaded files carry the prefix.
UPLOAD_PREFIX = "upload:"
MAX_FILE_NAME = 128
FILE_NAME_PATTERN = r"^(upload:)?[A-Za-z0-9][A-Za-z0-9._+() -]{0,127}$"


# The most one run's estimated allocations may take (TrainConfig.memory_estimate): a typo
# in a sample count must be refused at validation, not swap the machine out.
MAX_RUN_MEMORY_BYTES = 8 * 2**30


class ConfigError(ValueError):
    """A configuration value was refused; the message names the field and what is allowed."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class TrainConfig(BaseModel):
    """Every knob of a run. Field names follow the seed's, so logs stay comparable."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)

    # optimisation
    learning_rate_init: float = Field(3e-5, gt=0, le=1.0, description="LR at epoch 0")
    learning_rate_max: float = Field(5e-4, gt=0, le=1.0, description="LR reached after warmup")
    warmup_epochs: int = Field(3, ge=0, le=10_000)
    lr_schedule: Literal["cosine", "constant"] = Field(
        "cosine", description="after warmup: cosine decay to learning_rate_init, or constant"
    )
    adjacency_lr_scale: float = Field(
        20.0, gt=0, le=1e6, description="adjacency logits learn at lr × this (own param group)"
    )
    grad_clip_norm: float = Field(1.0, gt=0, le=1e6, description="max global grad norm")
    epochs: int = Field(100, ge=1, le=100_000)
    stop_after_epochs: int | None = Field(
        None, ge=1, le=100_000,
        description="end the run after this many epochs while the LR and acyclicity "
        "schedules stay planned over `epochs` (a probe's look at a longer run's start)",
    )
    batch_size: int = Field(128, ge=1, le=1_000_000)
    eval_every: int = Field(2, ge=1, le=10_000)
    patience: int = Field(15, ge=0, le=100_000, description="epochs without improvement; 0 = off")
    seed: int = Field(0, ge=0, le=2**31 - 1)

    # loss weights
    lambda_recon: float = Field(10.0, ge=0, le=1e9)
    lambda_sparse: float = Field(1e-5, ge=0, le=1e9)
    lambda_acyclic: float = Field(3e-6, ge=0, le=1e9)
    lambda_disen: float = Field(1e-5, ge=0, le=1e9)

    # model
    latent_dim: int = Field(16, ge=1, le=1024)
    hidden_dim: int = Field(32, ge=1, le=4096)
    sparsify_method: Literal["topk", "sigmoid"] = "topk"
    topk_edges: int | None = Field(
        None, ge=1, le=10_000, description="edges kept by topk; default: the variable count"
    )
    acyclicity: Literal["notears", "dagma"] = "notears"
    edge_mask: Literal["gumbel", "soft"] = Field(
        "gumbel",
        description="gumbel: hard 0/1 edges sampled per example, straight-through gradient "
        "(DCDI); soft: decoders read the probabilities themselves (the seed's model)",
    )
    gumbel_temperature: float = Field(
        1.0, gt=0, le=100, description="temperature of the Gumbel-sigmoid edge sample"
    )
    acyclic_schedule: Literal["rising", "constant"] = Field(
        "rising",
        description="rising: λ_acyclic off for the first acyclic_start of the epochs, then "
        "rising linearly to its value at the last epoch (SDCD); constant: λ_acyclic throughout",
    )
    acyclic_start: float = Field(
        1 / 3, ge=0, lt=1, description="fraction of the epochs before the acyclicity penalty"
    )
    # "equal", not "none": forms read the word none as an empty value.
    recon_weighting: Literal["equal", "residual"] = Field(
        "equal",
        description="equal: plain MSE, every variable's error alike; residual: each "
        "variable's squared error divided by its residual variance of the previous epoch "
        "(Gaussian likelihood with a noise variance per variable, GOLEM-NV)",
    )
    residual_floor: float = Field(
        1e-6, gt=0, le=1,
        description="recon_weighting residual: a variable's residual variance is taken as "
        "at least this fraction of its data variance (caps its weight at 1/this)",
    )
    grad_norms_per_term: bool = Field(
        True, description="measure each loss term's own gradient norm (one backward per term)"
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto",
        description="where the model trains: auto takes a GPU when torch sees one, else the "
        "CPU; cuda insists on a GPU (and on Ray asks the cluster for one)",
    )

    # data
    dataset: Literal["uci", "synthetic", "csv"] = Field(
        "uci", description="uci: Air Quality; synthetic: a random SEM; csv: your own file "
        "(docs/data.md, Your own CSV)"
    )
    standardize: bool | None = Field(
        None, description="z-score columns with training statistics; default: on for uci and csv"
    )
    val_fraction: float = Field(0.2, gt=0, lt=0.9)
    synthetic_nodes: int = Field(13, ge=2, le=200)
    synthetic_edges: int = Field(13, ge=0, le=20_000)
    synthetic_samples: int = Field(2000, ge=20, le=10_000_000)
    synthetic_mechanism: Literal["linear", "mlp"] = "linear"
    synthetic_noise_scale: float = Field(1.0, gt=0, le=1e6)
    csv_separator: Literal["auto", "comma", "semicolon"] = Field(
        "auto", description="csv: the column separator; auto picks the one splitting the header"
    )
    csv_missing: str | None = Field(
        None, max_length=32,
        description="csv: the value coding a missing cell, e.g. -200 (compared as a number "
        "when it is one); empty cells, NA, NaN and null are always missing",
    )
    data_file: str | None = Field(
        None, max_length=MAX_FILE_NAME + len(UPLOAD_PREFIX), pattern=FILE_NAME_PATTERN,
        description="runs started by the backend: a file of its --data-dir, or 'upload:<name>' "
        "for an uploaded one (GET /api/datasets); handed to the trainer as --data",
    )
    reference_file: str | None = Field(
        None, max_length=MAX_FILE_NAME + len(UPLOAD_PREFIX), pattern=FILE_NAME_PATTERN,
        description="csv runs started by the backend: the reference graph JSON, named like "
        "data_file; handed to the trainer as --reference",
    )

    @field_validator("csv_missing", mode="before")
    @classmethod
    def _marker_as_text(cls, value: object) -> object:
        # A form or `--set csv_missing=-200` yields a number; the marker is kept as written.
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        return value

    @model_validator(mode="after")
    def _check_relations(self) -> TrainConfig:
        if self.learning_rate_init > self.learning_rate_max:
            raise ValueError(
                "learning_rate_init must be <= learning_rate_max "
                f"(got {self.learning_rate_init} > {self.learning_rate_max})"
            )
        max_edges = self.synthetic_nodes * (self.synthetic_nodes - 1) // 2
        if self.reference_file is not None and self.dataset != "csv":
            raise ValueError(
                f"reference_file applies to dataset 'csv' only (got dataset {self.dataset!r})"
            )
        if self.dataset == "synthetic" and self.synthetic_edges > max_edges:
            raise ValueError(
                f"synthetic_edges must be <= {max_edges} for {self.synthetic_nodes} nodes "
                f"(got {self.synthetic_edges})"
            )
        for fields, need in self.memory_estimate().items():
            if need > MAX_RUN_MEMORY_BYTES:
                raise ValueError(
                    f"{fields}: an estimated {need / 2**30:.1f} GiB, above the "
                    f"{MAX_RUN_MEMORY_BYTES / 2**30:g} GiB one run may take; lower them"
                )
        return self

    def memory_estimate(self) -> dict[str, float]:
        """Bytes the largest allocations this config implies will take, by the fields that
        drive them (those a config alone fixes: a synthetic dataset's size; the CSV and UCI
        files are bounded by their size limit)."""
        if self.dataset != "synthetic":
            return {}
        n, d = self.synthetic_samples, self.synthetic_nodes
        batch = min(self.batch_size, n)
        # float64 generation, its float32 tensors and a split copy: ~20 bytes per value.
        data = 20.0 * n * d
        # Per step: a (B, d, d) Gumbel mask (noise, soft, hard, grads) and the (B, d, k)
        # latents and hidden activations, forward and backward, float32.
        step = 4.0 * batch * d * (4 * d + 3 * (self.latent_dim + 2 * self.hidden_dim))
        return {
            "synthetic_samples × synthetic_nodes": data,
            "batch_size × synthetic_nodes² (and latent_dim, hidden_dim)": step,
        }

    @property
    def epochs_to_run(self) -> int:
        """The epochs this run trains: `epochs`, or fewer with `stop_after_epochs`."""
        return min(self.epochs, self.stop_after_epochs or self.epochs)

    def is_eval_epoch(self, epoch: int) -> bool:
        """Whether 1-based `epoch` is evaluated (metrics against the reference, a graph
        snapshot): every `eval_every`-th epoch and the last one the run trains."""
        last = self.epochs_to_run
        return 1 <= epoch <= last and (epoch % self.eval_every == 0 or epoch == last)

    @property
    def standardize_effective(self) -> bool:
        """`standardize` with its dataset-dependent default resolved."""
        if self.standardize is None:
            return self.dataset in ("uci", "csv")
        return self.standardize


# Presets are named partial configs over the field defaults above.
# `standard` is the seed's configuration that failed on UCI: raw (unstandardized) data.
_STANDARD: dict[str, Any] = {
    "learning_rate_init": 3e-5,
    "learning_rate_max": 5e-4,
    "warmup_epochs": 3,
    "lambda_recon": 10.0,
    "lambda_sparse": 1e-5,
    "lambda_acyclic": 3e-6,
    "lambda_disen": 1e-5,
    "grad_clip_norm": 1.0,
    "dataset": "uci",
    "standardize": False,
}
PRESETS: dict[str, dict[str, Any]] = {
    "standard": _STANDARD,
    # The same hyperparameters on a synthetic ER graph with known truth: a failure there is
    # the hyperparameters', not UCI's.
    "synthetic": {**_STANDARD, "dataset": "synthetic"},
    "uci": {
        "learning_rate_init": 3e-6,
        "learning_rate_max": 5e-5,
        "warmup_epochs": 5,
        "lambda_recon": 100.0,
        "lambda_sparse": 1e-6,
        "lambda_acyclic": 1e-7,
        "lambda_disen": 1e-6,
        "grad_clip_norm": 0.5,
        "dataset": "uci",
        "standardize": True,
    },
    # The configuration under which the model learns structure, chosen on synthetic data
    # only (bench/select_healthy.py; docs/presets.md says what was tried and on which seeds).
    "healthy": {
        "learning_rate_init": 1e-3,
        "learning_rate_max": 3e-3,
        "warmup_epochs": 3,
        "batch_size": 32,
        "lambda_recon": 1.0,
        "lambda_sparse": 0.03,
        "lambda_acyclic": 1.0,
        "lambda_disen": 1e-3,
        "grad_clip_norm": 5.0,
        "recon_weighting": "residual",
        "adjacency_lr_scale": 2.0,
        "sparsify_method": "sigmoid",
        "edge_mask": "gumbel",
        "acyclic_schedule": "rising",
        "epochs": 40,
        "patience": 0,
        "dataset": "uci",
        "standardize": True,
    },
}

# The seed's four emergency adjustments, each the fix of one red flag.
PATCHES: dict[str, dict[str, Any]] = {
    "lower_lr": {"learning_rate_init": 1e-6, "learning_rate_max": 2e-5, "grad_clip_norm": 0.3},
    "sigmoid_sparsify": {"sparsify_method": "sigmoid"},
    "rebalance_losses": {"lambda_recon": 500.0, "lambda_sparse": 5e-7, "lambda_disen": 5e-7},
    "bigger_model": {"latent_dim": 32, "hidden_dim": 64},
}


def field_choices(name: str) -> list[Any] | None:
    """The values a field takes when it is one of a fixed few (a `Literal`), else None."""
    ann = TrainConfig.model_fields[name].annotation
    if getattr(ann, "__origin__", None) is Literal:
        return list(getattr(ann, "__args__", ()))
    return None


def describe_field(name: str) -> str:
    """The allowed values of a field, in words, from its declared constraints."""
    field = TrainConfig.model_fields[name]
    ann = field.annotation
    choices = field_choices(name)
    if choices is not None:
        return "one of " + ", ".join(repr(a) for a in choices)
    bounds: list[str] = []
    for meta in field.metadata:
        for attr, sym in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
            value = getattr(meta, attr, None)
            if value is not None:
                bounds.append(f"{sym} {value}")
    kind = {int: "integer", float: "number", bool: "true/false"}.get(ann, "")  # type: ignore[call-overload]
    if ann == bool | None:
        kind = "true/false"
    if ann == int | None:
        kind = "integer"
    return " ".join(p for p in [kind, " and ".join(bounds)] if p) or "a valid value"


def format_validation_error(err: ValidationError) -> ConfigError:
    """Turn pydantic's error into one line per field, naming what is allowed."""
    lines: list[str] = []
    first_field: str | None = None
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        if loc and first_field is None:
            first_field = loc
        if e["type"] == "extra_forbidden":
            known = ", ".join(TrainConfig.model_fields)
            lines.append(f"unknown field {loc!r}; known fields: {known}")
        elif loc in TrainConfig.model_fields:
            lines.append(
                f"{loc}: {e['msg']} (got {e.get('input')!r}; allowed: {describe_field(loc)})"
            )
        else:
            lines.append(e["msg"].removeprefix("Value error, "))
    return ConfigError("; ".join(lines), field=first_field)


def build_config(
    preset: str = "standard",
    overrides: dict[str, Any] | None = None,
    patches: list[str] | None = None,
) -> TrainConfig:
    """Preset, then named patches, then explicit overrides; validated as one object."""
    if preset not in PRESETS:
        raise ConfigError(
            f"preset: unknown preset {preset!r}; allowed: {', '.join(PRESETS)}", field="preset"
        )
    values: dict[str, Any] = dict(PRESETS[preset])
    for name in patches or []:
        if name not in PATCHES:
            raise ConfigError(
                f"patch: unknown patch {name!r}; allowed: {', '.join(PATCHES)}", field="patch"
            )
        values.update(PATCHES[name])
    values.update(overrides or {})
    try:
        return TrainConfig(**values)
    except ValidationError as err:
        raise format_validation_error(err) from None


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """`key=value` strings from the command line, values parsed as JSON where they can be.

    Types are left to `TrainConfig` so a bad value is reported with its field's range.
    """
    import json

    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set expects key=value, got {pair!r}", field=key or None)
        if key not in TrainConfig.model_fields:
            raise ConfigError(
                f"unknown field {key!r}; known fields: {', '.join(TrainConfig.model_fields)}",
                field=key,
            )
        raw = raw.strip()
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            lowered = raw.lower()
            value = {"true": True, "false": False, "none": None, "null": None}.get(lowered, raw)
        out[key] = value
    return out
