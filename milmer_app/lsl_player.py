"""Play an array as an LSL EEG outlet at real time: for trying a set-up without a headset, the tests and the bench.

The player loops over its data, pushing chunks stamped on the LSL clock at the
nominal rate. `stop()` destroys the outlet (receivers see the stream go away);
`start()` again creates a fresh outlet with the same name and source_id.
"""

from __future__ import annotations

import logging
import threading
from typing import Self

import numpy as np
import pylsl

from milmer_app.clock import local_clock
from milmer_app.stopping import join_or_warn

log = logging.getLogger(__name__)


class LslPlayer:
    def __init__(self, data: np.ndarray, srate: float, labels: list[str], name: str = "MilmerPlayer",
                 stream_type: str = "EEG", source_id: str | None = None, unit: str = "microvolts",
                 chunk_seconds: float = 0.02):
        if data.ndim != 2 or data.shape[0] != len(labels):
            raise ValueError(f"data {data.shape} must be (channels, samples) with one label per channel")
        self.data = np.ascontiguousarray(data.T, dtype=np.float32)   # (samples, channels) for pushing
        self.srate = float(srate)
        self.labels = list(labels)
        self.name = name
        self.stream_type = stream_type
        self.source_id = source_id or f"milmer-player-{name}"
        self.unit = unit
        self.chunk_seconds = chunk_seconds
        self.pushed = 0                  # samples pushed by the current outlet
        self.last_timestamp: float | None = None
        self._outlet: pylsl.StreamOutlet | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def _make_outlet(self) -> pylsl.StreamOutlet:
        info = pylsl.StreamInfo(self.name, self.stream_type, len(self.labels), self.srate, pylsl.cf_float32,
                                self.source_id)
        channels = info.desc().append_child("channels")
        for label in self.labels:
            channel = channels.append_child("channel")
            channel.append_child_value("label", label)
            channel.append_child_value("unit", self.unit)
            channel.append_child_value("type", "EEG")
        return pylsl.StreamOutlet(info, chunk_size=0, max_buffered=60)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        if self._thread is not None:
            return
        self._outlet = self._make_outlet()
        self.pushed = 0
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"lsl-player:{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is None:
            return
        self._stop.set()
        join_or_warn(self._thread, 5.0, f"LSL player {self.name}")
        self._thread = None
        self._outlet = None       # dropping the last reference destroys the outlet

    def wait_for_consumers(self, timeout: float) -> bool:
        if self._outlet is None:
            raise RuntimeError(f"LSL player {self.name}: wait_for_consumers() called before start(); start the "
                               "player first (or use it in a 'with' block)")
        return self._outlet.wait_for_consumers(timeout)

    def _run(self) -> None:
        assert self._outlet is not None
        start = local_clock()
        total = len(self.data)
        while not self._stop.wait(self.chunk_seconds):
            now = local_clock()
            due = int((now - start) * self.srate)
            if due <= self.pushed:
                continue
            index = np.arange(self.pushed, due) % total
            stamps = start + np.arange(self.pushed, due) / self.srate
            self._outlet.push_chunk(self.data[index], float(stamps[-1]))
            self.pushed = due
            self.last_timestamp = float(stamps[-1])
