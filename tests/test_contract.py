"""The architecture written down in ``pyproject.toml`` ([tool.importlinter]) holds: import-linter checks every
import, lazy ones inside functions included (issue 16)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _lint(cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.fail("import-linter is not installed: it is in the test extras of pyproject.toml (make test installs it)")
    return subprocess.run([exe, "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=300, env=env)


def test_every_import_respects_the_layers():
    proc = _lint(ROOT)
    assert proc.returncode == 0 and " 0 broken" in proc.stdout, proc.stdout[-4000:] + proc.stderr[-2000:]


def test_the_contract_catches_a_violation(tmp_path):
    """A copy of the tree where a panel imports torch must fail the same check."""
    for part in ("lqvae", "app", "pyproject.toml"):
        src = ROOT / part
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / part)
    panel = tmp_path / "app" / "panels" / "status_bar.py"
    panel.write_text(panel.read_text() + "\n\ndef _bad():\n    import torch  # noqa: F401\n")
    proc = _lint(tmp_path, env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert proc.returncode != 0 and "app.panels.status_bar -> torch" in proc.stdout, proc.stdout[-2000:]
