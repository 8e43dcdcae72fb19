"""The split STYLE.md asks for, checked on the source: state and workers hold no widgets, the GUI
modules do not import torch at import time, and the main window stays an assembler."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

APP = Path(__file__).resolve().parents[2] / "app"
NO_WIDGETS = ("state", "engine", "input")  # sub-packages that hold no widgets


def top_level_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in tree.body:  # module level only: imports inside functions are lazy on purpose
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_model_side_modules_never_import_widgets():
    for package in NO_WIDGETS:
        for path in (APP / package).glob("*.py"):
            imports = top_level_imports(path)
            assert not any(m.startswith("PySide6.QtWidgets") or m.startswith("pyqtgraph") for m in imports), path


def test_gui_modules_do_not_import_torch_at_import_time():
    for path in APP.rglob("*.py"):
        imports = top_level_imports(path)
        assert not any(m.split(".")[0] in ("torch", "foolbox", "torchvision", "lqvae")
                       and not (m + ".").startswith("lqvae.spec.") for m in imports), path.name  # spec: torch-free


def test_window_import_leaves_torch_unloaded():
    code = "import sys, app.main_window; print('torch' in sys.modules, 'foolbox' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=APP.parent, capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["False", "False"], out.stderr


def test_main_window_is_an_assembler():
    text = (APP / "main_window.py").read_text()
    assert len(text.splitlines()) < 350
    imports = top_level_imports(APP / "main_window.py")
    assert not any(m.split(".")[0] in ("torch", "lqvae") or m == "app.engine.adapter" for m in imports)
