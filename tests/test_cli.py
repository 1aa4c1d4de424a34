"""The two command-line tools start, describe themselves and fail clearly."""

from __future__ import annotations

import subprocess
import sys

import pytest

from milmer_app import cli as app_cli
from training import cli as train_cli


def _run(module: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("module", ["milmer_app.cli", "training.cli"])
def test_help_and_version(module):
    help_run = _run(module, "--help")
    assert help_run.returncode == 0, help_run.stderr
    assert "usage:" in help_run.stdout
    version = _run(module, "--version")
    assert version.returncode == 0
    assert "0." in version.stdout


def test_train_help_lists_every_subcommand():
    text = train_cli.build_parser().format_help()
    for command in train_cli.COMMANDS:
        assert command.name in text


def test_app_help_lists_headless_options():
    text = app_cli.build_parser().format_help()
    for option in ("--headless", "--eeg", "--video", "--checkpoint", "--demo", "--quit-after", "--predictions"):
        assert option in text


def test_missing_file_is_one_line_without_traceback(tmp_path):
    missing = tmp_path / "nope"
    result = _run("training.cli", "evaluate", "--checkpoint", str(missing / "x.safetensors"), "--deap", str(missing))
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "milmer-train: error:" in result.stderr
