"""The Ray executor's tests share one real Ray head (ray_head.py) per module."""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from utils.ray_head import RayHead, alive


@pytest.fixture(scope="module")
def ray_head() -> Iterator[RayHead]:
    if shutil.which("ray", path=str(Path(sys.executable).parent)) is None:
        pytest.fail("ray is not installed in this environment: `make test` installs the "
                    "project's ray extra (pip install -e '.[dev,lightning,ray]')")
    head = RayHead().start()
    try:
        yield head
    finally:
        head.stop()
    deadline = time.monotonic() + 10
    while alive(head) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not alive(head), f"Ray processes left behind: {alive(head)}"
