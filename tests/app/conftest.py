"""Fixtures for the app tests: tiny random checkpoints and synthetic samples in a temp dir.

Nothing here needs the shipped checkpoints: the environment variables point the app at the temp dir for
the whole session. Helpers that are not fixtures are in ``tests/app/helpers.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ["LQVAE_THREADS"] = "1"

import pytest  # noqa: E402

from tests.app.helpers import make_env, open_window, tiny_defenses  # noqa: E402


@pytest.fixture(scope="session")
def app_env(tmp_path_factory) -> dict[str, str]:
    env = make_env(tmp_path_factory.mktemp("lqvae_app"))
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield env
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def model_cache(app_env):
    """Loaded models shared by the windows of the session (loading is not what these tests test)."""
    from app.engine.adapter import ModelCache

    return ModelCache()


@pytest.fixture
def window(qtbot, app_env, model_cache):
    """A started main window whose models have loaded and whose first analysis has been drawn."""
    win = open_window(qtbot, model_cache)
    yield win
    win.controller.shutdown()


@pytest.fixture
def defended_window(qtbot, tmp_path, monkeypatch, app_env):
    """A started window whose checkpoints add Defense-GAN, the VAE and a "Madry" classifier A to the tiny models."""
    tiny_defenses(tmp_path / "ckpt", Path(app_env["LQVAE_CHECKPOINTS"]))
    monkeypatch.setenv("LQVAE_CHECKPOINTS", str(tmp_path / "ckpt"))
    win = open_window(qtbot)
    yield win
    win.controller.shutdown()
