"""Shared fixtures. The environment is set before Qt or liblsl are imported anywhere."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("LSLAPICFG", str(ROOT / "resources" / "lsl_api.cfg"))
# Keep the two cores for the code under test rather than oversubscribed BLAS pools.
os.environ.setdefault("OMP_NUM_THREADS", "2")

import pytest  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def private_user_folders(tmp_path_factory: pytest.TempPathFactory):
    """Keep the demo cache and saved settings of the app under test out of the user's home."""
    saved = {key: os.environ.get(key) for key in ("XDG_CACHE_HOME", "XDG_CONFIG_HOME")}
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("cache"))
    os.environ["XDG_CONFIG_HOME"] = str(tmp_path_factory.mktemp("config"))
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    """A temporary output folder for a test's files."""
    path = tmp_path / "out"
    path.mkdir()
    return path


@pytest.fixture
def lsl_config() -> Path:
    """The LSL configuration that keeps streams on this machine."""
    path = Path(os.environ["LSLAPICFG"])
    assert path.is_file(), path
    return path


@pytest.fixture
def qapp_offscreen(qapp):
    """pytest-qt's QApplication, guaranteed to run on the offscreen platform."""
    assert qapp.platformName() in {"offscreen", "xcb", "minimal"}, qapp.platformName()
    return qapp
