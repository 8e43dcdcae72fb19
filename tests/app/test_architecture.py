"""The split the style guide asks for, checked on the source: state, engine door and input hold no widgets,
the GUI modules do not import torch at import time, the main window stays an assembler, and every
sub-package says what it holds.

The style guide is ``STYLE.md`` in the shared folder beside the repository (``../shared/STYLE.md``), not a
file of the repository. The import rules themselves are import-linter contracts in ``pyproject.toml``
(``tests/test_contract.py``); ``PySide6.QtWidgets`` is checked here because import-linter sees an external
package only as a whole, and the state and the engine door need ``PySide6.QtCore`` for ``QObject`` and signals.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "app"
NO_WIDGETS = ("state", "engine", "input")  # sub-packages that hold no widgets
WIDGETS = ("panels", "render")  # the only sub-packages that draw


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


def test_the_app_is_the_sub_packages_of_the_layout():
    packages = {p.parent.name for p in APP.glob("*/__init__.py")}
    assert packages == set(NO_WIDGETS) | set(WIDGETS), "a new app sub-package: give it a side above and a README row"


def test_every_sub_package_says_what_it_holds_and_the_readme_lists_it():
    readme = (ROOT / "README.md").read_text()
    for init in sorted([*APP.glob("*/__init__.py"), *(ROOT / "lqvae").glob("*/__init__.py")]):
        folder = init.parent.relative_to(ROOT).as_posix()
        assert ast.get_docstring(ast.parse(init.read_text())), f"{folder}/__init__.py has no docstring"
        assert f"| `{folder}/` |" in readme, f"README.md's Layout table has no row for {folder}/"
