"""Callbacks by topic: the engine's one way of telling the GUI, the headless runner and tests what happens."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from milmer_app.prediction import Prediction
from milmer_app.stream_status import StreamStatus

log = logging.getLogger(__name__)

PredictionListener = Callable[[Prediction], None]
StatusListener = Callable[[list[StreamStatus]], None]
EventListener = Callable[[str, str], None]           # (level, message)
MarkerListener = Callable[[str, float, str], None]   # (text, LSL time, the stream it came from)


class Listeners:
    """`add(topic, callback)`; `emit(topic, *args)` calls each of the topic's callbacks in turn, from the
    calling thread. A callback that raises is logged and the others still run."""

    def __init__(self) -> None:
        self._callbacks: dict[str, list[Callable[..., Any]]] = defaultdict(list)

    def add(self, topic: str, callback: Callable[..., Any]) -> None:
        self._callbacks[topic].append(callback)

    def emit(self, topic: str, *args: Any) -> None:
        for callback in list(self._callbacks[topic]):
            try:
                callback(*args)
            except Exception:
                log.exception("%s listener failed", topic)
