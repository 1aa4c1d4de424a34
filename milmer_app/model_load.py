"""Load a checkpoint on a thread of its own, so that the sources connect meanwhile.

Importing torch and building the model take seconds on a small machine; a stream search or a
camera takes about as long. The engine starts the load, reads the input contract from the
checkpoint's JSON (light: no torch) to build its sources, and waits for the model only once they
are connected, so a stream that is not there is reported without waiting for the model.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

from models.contract import InputContract

log = logging.getLogger(__name__)


class BackgroundModelLoad:
    """`models.checkpoint.load_checkpoint(path, device)` on a daemon thread; `result()` waits for it."""

    def __init__(self, path: Path, device: str):
        self.path = path
        self.device_spec = device
        self._done = threading.Event()
        self._result: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="model load", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            from models.checkpoint import load_checkpoint
            from models.device import resolve_device

            device = resolve_device(self.device_spec)
            self._result = (load_checkpoint(self.path, device=device), device)
        except BaseException as exc:
            self._error = exc
        finally:
            self._done.set()

    def result(self) -> tuple[Any, Any]:
        """(LoadedCheckpoint, torch.device); the load's own exception if it failed."""
        self._done.wait()
        if self._error is not None:
            raise self._error
        return self._result


def read_contract(path: Path) -> InputContract | None:
    """The input contract in a checkpoint's JSON, read without torch; None when the JSON cannot be read
    (the full load then names the problem)."""
    json_path = path.with_name(path.name + ".json") if path.suffix not in (".json", ".safetensors") \
        else path.with_suffix(".json")
    try:
        return InputContract.from_dict(json.loads(json_path.read_text(encoding="utf-8"))["contract"])
    except Exception:   # any defect: the checked load reports it in its own words
        log.debug("%s: contract not read ahead of the load", json_path, exc_info=True)
        return None


def checkpoint_path(spec: str) -> Path:
    """The checkpoint a --checkpoint value names ("demo": the built-in demo model)."""
    if spec == "demo":
        from milmer_app.demo import demo_checkpoint

        return demo_checkpoint()
    return Path(spec).expanduser()


def model_identity(path: Path, provenance: dict) -> tuple[str, bool]:
    """(the name the app shows, whether it is a demo model) of the checkpoint at `path`."""
    from milmer_app.demo import DEMO_CHECKPOINT
    from models.checkpoint import checkpoint_paths

    demo = (bool(provenance.get("demo_model") or provenance.get("demo"))
            or checkpoint_paths(path)[1].resolve() == checkpoint_paths(DEMO_CHECKPOINT)[1].resolve())
    return ("demo" if demo else Path(path).with_suffix("").name), demo
