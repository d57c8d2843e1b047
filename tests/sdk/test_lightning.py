"""CausalwatchLogger + CausalwatchWatch on a tiny LightningModule, against a real backend."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset
from utils.backend_server import BackendServer

import causalwatch as cw
from causalwatch.lightning import CausalwatchLogger, CausalwatchWatch

VARIABLES = ["a", "b", "c"]
REFERENCE = [("a", "b"), ("b", "c")]
EPOCHS = 2
BATCHES = 4


class TinyStructure(pl.LightningModule):
    """x̂ = x (W ⊙ σ(A)), with a sparsity term: a user's module, not our trainer's."""

    def __init__(self, d: int = 3, lr: float = 1e-2) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.adj_logits = nn.Parameter(0.1 * torch.randn(d, d))
        self.weights = nn.Parameter(0.1 * torch.randn(d, d))

    def training_step(self, batch: list[Tensor], batch_idx: int) -> Tensor:
        (x,) = batch
        p = torch.sigmoid(self.adj_logits) * (1 - torch.eye(3))
        recon = ((x - x @ (self.weights * p)) ** 2).mean()
        sparse = 1e-3 * p.sum()
        cw.torch.loss_terms({"recon": recon, "sparse": sparse})
        self.log("train_loss", recon + sparse, on_step=True, on_epoch=True)
        self.log("loss_recon", recon, on_step=False, on_epoch=True)
        return recon + sparse

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams["lr"])


def _loader() -> DataLoader[tuple[Tensor, ...]]:
    x = torch.randn(BATCHES * 16, 3, generator=torch.Generator().manual_seed(0))
    return DataLoader(TensorDataset(x), batch_size=16)


def test_logger_and_watch_stream_a_lightning_fit(shared_backend: BackendServer,
                                                 tmp_path: Path) -> None:
    # One backend for the module: these tests neither stop it nor count its runs.
    torch.manual_seed(0)
    logger = CausalwatchLogger(name="lightning e2e", server=shared_backend.url,
                               reference=REFERENCE, variables=VARIABLES, mode="online")
    watch = CausalwatchWatch(adjacency="adj_logits", eval_every=1, term_norm_every=1)
    trainer = pl.Trainer(
        max_epochs=EPOCHS, enable_progress_bar=False, enable_model_summary=False,
        logger=logger, callbacks=[watch], default_root_dir=tmp_path, log_every_n_steps=1,
        gradient_clip_val=1e-9, enable_checkpointing=False, accelerator="cpu",
    )
    trainer.fit(TinyStructure(), _loader())

    run_id = logger.version
    assert run_id and logger.experiment.id == run_id
    run = shared_backend.wait_finished(run_id, timeout=30)
    assert run["status"] == "completed", run
    assert run["config"]["lr"] == 1e-2 and run["config"]["d"] == 3  # log_hyperparams
    records = shared_backend.metrics(run_id)
    assert [r["epoch"] for r in records] == [1, 2]
    assert [r["step"] for r in records] == [0, 1]  # Lightning's epoch
    for r in records:
        # Lightning clips every step at 1e-9 (gradient_clip_val): observed, each row's own.
        assert r["clip_pct"] == 100.0, r
        assert r["loss_recon"] > 0 and r["share_recon"] > 0 and r["share_sparse"] > 0
        assert r["grad_norm_recon"] > 0 and r["grad_norm_sparse"] > 0
        assert r["logit_std"] > 0 and r["edges_topk"] == len(REFERENCE)
        assert r["shd"] is not None and r["f1_skeleton"] is not None
        assert {"train_loss_step", "train_loss_epoch"} <= set(r["custom"]), r["custom"]
    # The callback closed its clip observer: torch is as before the fit.
    assert torch.nn.utils.clip_grad_norm_.__module__ == "torch.nn.utils.clip_grad"


def test_a_failed_fit_fails_the_run(shared_backend: BackendServer, tmp_path: Path) -> None:
    class Broken(TinyStructure):
        def training_step(self, batch: list[Tensor], batch_idx: int) -> Tensor:
            if self.current_epoch == 1:
                raise RuntimeError("boom")
            return super().training_step(batch, batch_idx)

    logger = CausalwatchLogger(name="lightning fails", server=shared_backend.url, mode="online")
    trainer = pl.Trainer(max_epochs=EPOCHS, enable_progress_bar=False, logger=logger,
                         callbacks=[CausalwatchWatch()], default_root_dir=tmp_path,
                         enable_checkpointing=False, enable_model_summary=False,
                         log_every_n_steps=1)
    with pytest.raises(RuntimeError, match="boom"):
        trainer.fit(Broken(), _loader())
    run = shared_backend.wait_finished(logger.version, timeout=30)
    assert run["status"] == "failed", run


def test_importing_causalwatch_imports_neither_torch_nor_lightning() -> None:
    code = ("import sys, causalwatch; "
            "print(sorted(m for m in ('torch', 'lightning') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"
