"""Epochs: optimise, measure, emit. One record per epoch (trainer.protocol.EpochRecord)."""

from __future__ import annotations

import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from trainer import graph_metrics, health
from trainer.adam import Adam
from trainer.config import TrainConfig
from trainer.losses import LossBreakdown, structure_loss
from trainer.model import CausalStructureModel
from trainer.protocol import EVAL_FIELDS, LOSS_TERMS
from trainer.result import GraphSink, RecordSink, RunResult, ShouldStop
from trainer.schedule import acyclic_start_epoch, acyclic_weight, get_lr

if TYPE_CHECKING:
    from trainer.data import Dataset

# Per-term gradient norms are measured on every TERM_NORM_EVERY-th step of an epoch (its
# first included): each costs one extra pass through the encoders (the disentanglement
# term's own backward), 1.5× an epoch when measured on every step.
TERM_NORM_EVERY = 8


class NonFiniteError(RuntimeError):
    """Loss or gradients stopped being finite; training on NaN would only hide it."""


def resolve_device(name: str) -> torch.device:
    """The config's `device`: `auto` is the GPU when torch sees one, else the CPU; `cuda`
    without a GPU raises, naming the field (silently training on CPU would hide it)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            "device: 'cuda' asked for, but torch sees no GPU here "
            "(torch.cuda.is_available() is False); use 'auto' or 'cpu'"
        )
    return torch.device(name)


def term_gradients(
    terms: LossBreakdown, params: list[torch.Tensor]
) -> tuple[list[torch.Tensor], dict[str, float]]:
    """∇ of the total loss, and ‖∇ term‖ of each weighted term alone.

    One autograd pass per term, each over that term's own subgraph (sparsity and
    acyclicity touch only L, disentanglement only the encoders), summed into the total:
    the encoders' backward runs twice (reconstruction, disentanglement), which is why the
    loop measures only every TERM_NORM_EVERY-th step (bench/trainer_speed.py).
    """
    total = [torch.zeros_like(p) for p in params]
    norms: dict[str, float] = {}
    for name in LOSS_TERMS:
        term = getattr(terms, name)
        if not term.requires_grad:
            norms[name] = 0.0
            continue
        grads = torch.autograd.grad(term, params, retain_graph=True, allow_unused=True)
        present = [g for g in grads if g is not None]
        norms[name] = float(torch.linalg.vector_norm(torch.stack(
            [torch.linalg.vector_norm(g) for g in present]
        ))) if present else 0.0
        for acc, g in zip(total, grads, strict=True):
            if g is not None:
                acc.add_(g)
    return total, norms


def _flat(params: list[torch.Tensor]) -> torch.Tensor:
    """All parameters as one CPU vector (a GPU-CPU sync point: once per epoch)."""
    return torch.cat([p.detach().flatten() for p in params]).cpu()


def _check_finite(terms: LossBreakdown, where: str) -> None:
    for name in LOSS_TERMS:
        value = getattr(terms, name)
        if not torch.isfinite(value):
            raise NonFiniteError(f"non-finite loss_{name} ({value.item()}) at {where}")


@torch.no_grad()
def validation_recon(
    model: CausalStructureModel, x_val: torch.Tensor, graph: np.ndarray | None = None
) -> float:
    """Unweighted reconstruction MSE on the validation split through `graph` (the reported
    one), or the model's point estimate; restores train mode."""
    model.eval()
    adj = None if graph is None else torch.as_tensor(graph, dtype=x_val.dtype,
                                                     device=x_val.device)
    x_hat, _, _ = model(x_val, adj)
    model.train()
    return float(torch.mean((x_val - x_hat) ** 2))


def train(
    cfg: TrainConfig,
    data: Dataset,
    run_id: str,
    *,
    on_record: RecordSink | None = None,
    on_graph: GraphSink | None = None,
    checkpoint_path: Path | None = None,
    should_stop: ShouldStop | None = None,
) -> RunResult:
    """Train the model on `data` under `cfg`, calling `on_record` once per epoch."""
    torch.manual_seed(cfg.seed)
    started = time.perf_counter()
    device = resolve_device(cfg.device)
    x_train = torch.as_tensor(data.train, dtype=torch.float32, device=device)
    x_val = torch.as_tensor(data.val, dtype=torch.float32, device=device)
    n, d = x_train.shape
    reference = None if data.reference is None else data.reference.astype(np.int8)
    # Without a reference, top-k keeps d edges: as many as a sparse DAG on d nodes has.
    k_reference = d if reference is None else int(reference.sum())

    model = CausalStructureModel(
        d,
        cfg.latent_dim,
        cfg.hidden_dim,
        cfg.sparsify_method,
        cfg.topk_edges,
        edge_mask=cfg.edge_mask,
        temperature=cfg.gumbel_temperature,
    ).to(device)
    # The graph gets its own parameter group (as in ENCO, Lippe et al. 2022): structure
    # logits must travel several units while the SEM weights take small steps.
    sem_params = [p for name, p in model.named_parameters() if name != "adj_logits"]
    optimizer = Adam(
        [
            {"params": sem_params, "lr_scale": 1.0},
            {"params": [model.adj_logits], "lr_scale": cfg.adjacency_lr_scale},
        ],
        lr=cfg.learning_rate_init,
    )
    params = list(model.parameters())
    shuffler = torch.Generator().manual_seed(cfg.seed)
    penalty_from = acyclic_start_epoch(cfg) + 1
    # recon_weighting="residual": each variable's squared error in units of its residual
    # variance, first the data's own variance (nothing explained yet), then each epoch's.
    data_variance = x_train.var(dim=0).clamp_min(1e-12)
    residual_variance = data_variance if cfg.recon_weighting == "residual" else None

    history: list[dict[str, Any]] = []
    epoch_times: list[float] = []
    best_val = math.inf
    best_epoch: int | None = None
    best_record: dict[str, Any] | None = None
    step = 0
    status, reason = "completed", f"ran all {cfg.epochs} epochs"
    # A probe trains the first epochs of a longer plan: its schedules are the plan's.
    last_epoch = cfg.epochs_to_run
    if last_epoch < cfg.epochs:
        reason = f"ran {last_epoch} of {cfg.epochs} planned epochs (stop_after_epochs)"

    for epoch in range(1, last_epoch + 1):
        t0 = time.perf_counter()
        lr = get_lr(epoch, cfg)
        for group in optimizer.param_groups:
            group["lr"] = lr * group["lr_scale"]
        weights = {
            "lambda_recon": cfg.lambda_recon,
            "lambda_sparse": cfg.lambda_sparse,
            "lambda_acyclic": acyclic_weight(epoch, cfg),
            "lambda_disen": cfg.lambda_disen,
        }
        sums = dict.fromkeys(LOSS_TERMS, 0.0)
        squared_error_sum = torch.zeros(d, device=device)
        term_norm_sums = dict.fromkeys(LOSS_TERMS, 0.0)
        term_norm_steps = 0
        norms: list[float] = []
        theta_start = _flat(params)
        try:
            batches = torch.randperm(n, generator=shuffler).split(cfg.batch_size)
            for index, batch_idx in enumerate(batches):
                xb = x_train[batch_idx]
                x_hat, z, probs = model(xb)
                terms = structure_loss(
                    xb, x_hat, z, probs, acyclicity=cfg.acyclicity,
                    residual_variance=residual_variance, **weights
                )
                squared_error_sum += ((xb - x_hat.detach()) ** 2).sum(dim=0)
                _check_finite(terms, f"epoch {epoch} step {step + 1}")
                optimizer.zero_grad()
                if cfg.grad_norms_per_term and index % TERM_NORM_EVERY == 0:
                    grads, term_norms = term_gradients(terms, params)
                    for p, g in zip(params, grads, strict=True):
                        p.grad = g
                    for name, value in term_norms.items():
                        term_norm_sums[name] += value
                    term_norm_steps += 1
                else:
                    terms.total.backward()
                # clip_grad_norm_ returns the norm before clipping: the clip% numerator.
                norm = float(torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip_norm))
                if not math.isfinite(norm):
                    raise NonFiniteError(
                        f"non-finite gradient norm ({norm}) at epoch {epoch} step {step + 1}"
                    )
                optimizer.step()
                step += 1
                norms.append(norm)
                for name in sums:
                    sums[name] += float(getattr(terms, name).detach())
        except NonFiniteError as err:
            status, reason = "failed", str(err)
            break

        n_steps = len(norms)
        if residual_variance is not None:
            # Floored at a fraction of the column's variance, so a near-deterministic column
            # cannot grow its weight (and the gradient) without bound.
            residual_variance = torch.maximum(
                squared_error_sum / n, cfg.residual_floor * data_variance
            )
        means = {name: total / n_steps for name, total in sums.items()}
        shares = health.loss_shares(means)
        with torch.no_grad():
            probs_np = model.edge_probabilities().cpu().numpy().astype(np.float64)
            logit_mean, logit_std = health.logit_stats(
                model.off_diagonal_logits().cpu().numpy()
            )
            update_ratio = health.update_ratio(theta_start.numpy(), _flat(params).numpy())
        threshold = graph_metrics.tuned_threshold(probs_np)
        tuned = graph_metrics.threshold_graph(probs_np, threshold)

        record: dict[str, Any] = {
            "run_id": run_id,
            "epoch": epoch,
            "step": step,
            "time": time.time(),
            "lr": lr,
            "loss_total": sum(means.values()),
            **{f"loss_{name}": value for name, value in means.items()},
            **{f"share_{name}": value for name, value in shares.items()},
            "clip_pct": health.clip_pct(norms, cfg.grad_clip_norm),
            "grad_norm_mean": float(np.mean(norms)),
            "grad_norm_max": float(np.max(norms)),
            "grad_norm_p90": float(np.percentile(norms, 90)),
            "logit_mean": logit_mean,
            "logit_std": logit_std,
            "edges_at_05": health.count_edges_above(probs_np, 0.5),
            "threshold_tuned": threshold,
            "edges_tuned": int(tuned.sum()),
            "edges_topk": int(graph_metrics.topk_graph(probs_np, k_reference).sum()),
            # Filled on evaluation epochs only; null otherwise, so every record has every key.
            **dict.fromkeys(EVAL_FIELDS),
            "is_best": False,
            **{
                f"grad_norm_{name}": (
                    total / term_norm_steps if cfg.grad_norms_per_term else None
                )
                for name, total in term_norm_sums.items()
            },
            "update_ratio": update_ratio,
            "custom": None,  # a training loop's own numbers (SDK runs); ours has none
        }

        is_eval = cfg.is_eval_epoch(epoch)
        if is_eval:
            val_recon = validation_recon(model, x_val, tuned)
            record["val_recon"] = val_recon
            if reference is not None:
                scores = graph_metrics.score_graph(tuned, reference)
                record.update(asdict(scores))
            # Model selection is label-free: the reference graph never picks the checkpoint.
            # val_recon reconstructs through the tuned DAG, the graph the run reports; only
            # epochs once acyclicity is asked for compete, since before it the graph is
            # still free to be dense and cyclic and the tuned cut of it arbitrary.
            if epoch >= penalty_from and math.isfinite(val_recon) and val_recon < best_val:
                best_val, best_epoch = val_recon, epoch
                record["is_best"] = True
                if checkpoint_path is not None:
                    torch.save({"epoch": epoch, "model": model.state_dict()}, checkpoint_path)

        epoch_times.append(time.perf_counter() - t0)
        record["epoch_seconds"] = epoch_times[-1]
        record["eta_seconds"] = health.eta_seconds(epoch_times, last_epoch - epoch)
        history.append(record)
        if record["is_best"]:
            best_record = record
        if on_record is not None:
            on_record(record)
        if is_eval and on_graph is not None:
            on_graph(epoch, np.round(probs_np, 4).tolist())

        if (
            is_eval
            and cfg.patience
            and best_epoch is not None
            and epoch - best_epoch >= cfg.patience
        ):
            status = "early_stopped"
            reason = f"no val_recon improvement for {epoch - best_epoch} epochs (best {best_epoch})"
            break
        if should_stop is not None and should_stop():
            status, reason = "stopped", f"stop requested after epoch {epoch}"
            break

    return RunResult(
        status=status,
        reason=reason,
        epochs_run=len(history),
        best_epoch=best_epoch,
        best_record=best_record,
        last_record=history[-1] if history else None,
        seconds=time.perf_counter() - started,
        history=history,
    )
