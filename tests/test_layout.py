"""The one-way dependency rule, enforced by parsing imports (STYLE.md, Layout)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def package_files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def test_trainer_imports_nothing_else_of_ours() -> None:
    for path in package_files("trainer"):
        bad = {m for m in imported_modules(path) if m.split(".")[0] in {"backend", "dashboard"}}
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_contract_modules_do_not_need_torch() -> None:
    # The backend imports these two to validate configs and messages; it must not load torch.
    for name in ("config.py", "protocol.py"):
        mods = imported_modules(ROOT / "trainer" / name)
        assert not {m for m in mods if m.split(".")[0] in {"torch", "numpy", "pandas"}}, name
        ours = {m for m in mods if m.split(".")[0] == "trainer"}
        assert ours <= {"trainer.config", "trainer.protocol"}, (name, ours)


def test_backend_uses_only_the_trainer_contract() -> None:
    for path in package_files("backend"):
        ours = {m for m in imported_modules(path) if m.split(".")[0] in {"trainer", "dashboard"}}
        assert ours <= {"trainer.config", "trainer.protocol"}, f"{path.relative_to(ROOT)}: {ours}"


def test_dashboard_imports_neither_backend_nor_trainer() -> None:
    for path in package_files("dashboard"):
        ours = {m for m in imported_modules(path) if m.split(".")[0] in {"trainer", "backend"}}
        assert not ours, f"{path.relative_to(ROOT)} imports {ours}"
