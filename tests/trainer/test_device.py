"""The config's `device`: auto → CPU on a machine without a GPU (this one), cuda refused.

Untested here (no GPU on this machine or CI): training on cuda itself, and `auto` picking
a GPU. What can be checked without one is that the choice is made, logged and enforced.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from trainer.config import ConfigError, build_config
from trainer.loop import resolve_device

NO_GPU = not torch.cuda.is_available()


def test_device_defaults_to_auto_and_refuses_other_names() -> None:
    assert build_config("synthetic").device == "auto"
    with pytest.raises(ConfigError) as err:
        build_config("synthetic", {"device": "tpu"})
    assert err.value.field == "device" and "'cuda'" in str(err.value)


@pytest.mark.skipif(not NO_GPU, reason="checks the no-GPU fallback")
def test_auto_is_the_cpu_and_cuda_is_refused_without_a_gpu() -> None:
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match=r"device: .cuda.*no GPU"):
        resolve_device("cuda")


@pytest.mark.skipif(not NO_GPU, reason="checks the no-GPU fallback")
def test_the_trainer_logs_its_device_and_exits_2_on_cuda_without_a_gpu(tmp_path: Path) -> None:
    def run(device: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "trainer", "--preset", "synthetic", "--quiet",
             "--runs-dir", str(tmp_path), "--run-id", f"dev-{device}",
             "--set", "epochs=1", "--set", "synthetic_samples=100", "--set", f"device={device}"],
            cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
        )

    auto = run("auto")
    assert auto.returncode == 0, auto.stderr
    log = (tmp_path / "dev-auto" / "train.log").read_text()
    assert "device cpu (config device auto)" in log
    cuda = run("cuda")
    assert cuda.returncode == 2
    assert "device: 'cuda' asked for, but torch sees no GPU" in cuda.stderr
