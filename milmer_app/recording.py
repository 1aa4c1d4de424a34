"""Recordings: append-only files that survive a kill -9, and a reader that tolerates a cut tail.

A recording is a folder:

- ``meta.json``: written first, atomically (temporary file + rename):
  ``{"format": "milmer-recording", "version": 1, "created_utc", "created_lsl",
  "eeg": {"channels", "srate", "units": "uV", "source", "source_unit" (what the device sent, converted to uV),
          "source_unit_origin" ("stream" | "spec" | "amplitude" (assumed) | "device" | "source"),
          "already_filtered", "already_referenced"} | null,
  "video": {"source", "fps"} | null, "model": {"name", "demo_model"}}``
- ``eeg.f32``: EEG samples, float32 little-endian, time-major (one row of C values per sample);
- ``eeg_ts.f64``: one float64 LSL timestamp per EEG sample;
- ``frames.mjpg``: video frames as concatenated JPEG images;
- ``frames.idx``: per frame three float64: LSL timestamp, byte offset, byte length in frames.mjpg;
- ``markers.jsonl``: ``{"timestamp", "text"}`` per line: the app's events (a replay's trial changes
  also carry ``"truth"``, which a replay of the recording reports again) and, with ``"kind": "marker"``
  and ``"stream"`` (where it came from), the markers that arrived from a source, their text unchanged
  (calibration markers among them: `models.calibration_protocol`);
- ``predictions.jsonl``: the prediction records, as in the ``--predictions`` file.

A writer thread appends what the sources deliver, flushes and fsyncs every
`flush_interval` (0.5 s), and checks the free space every second. A kill -9
therefore loses at most the last second; the reader keeps every complete
sample, frame and line and ignores a partial tail. A write error (or a disk
running full) stops the recording with a message; acquisition goes on.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import queue
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from milmer_app.buffers import Frame
from milmer_app.clock import local_clock
from milmer_app.stopping import join_or_warn
from models import strict_json
from models.calibration_protocol import MARKER_KIND
from models.errors import DataError, MilmerError

# The reader and the format's names live below the app: training (calibration) reads and writes recordings too.
from training.recording_files import (
    EEG_DTYPE,
    EEG_FILE,
    EEG_TS_FILE,
    FRAMES_FILE,
    FRAMES_INDEX,
    MARKERS_FILE,
    META_FILE,
    PREDICTIONS_FILE,
    STAMP_DTYPE,
    RecordingReader,  # noqa: F401  (re-exported)
    frame_index_row,
    new_meta,
)

log = logging.getLogger(__name__)

DEFAULT_MIN_FREE = 200 * 1024 * 1024


@dataclass
class RecordingStatus:
    active: bool
    path: Path | None
    elapsed_s: float
    free_bytes: int
    error: str | None


class Recorder:
    """Writes one recording folder from the engine's streams on its own thread."""

    def __init__(self, folder: Path, eeg: dict[str, Any] | None, video: dict[str, Any] | None,
                 model: dict[str, Any] | None = None, min_free_bytes: int = DEFAULT_MIN_FREE,
                 flush_interval: float = 0.5, jpeg_quality: int = 85,
                 on_stopped: Callable[[str | None], None] | None = None):
        self.folder = Path(folder)
        self.eeg_info = eeg
        self.video_info = video
        self.model_info = model or {}
        self.min_free_bytes = min_free_bytes
        self.flush_interval = flush_interval
        self.jpeg_quality = jpeg_quality
        self.on_stopped = on_stopped
        self.error: str | None = None
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._active = False
        self._thread: threading.Thread | None = None
        self._started_at = 0.0
        self._ended_at: float | None = None
        self._free = 0
        self._files: dict[str, Any] = {}
        self._frame_offset = 0

    # -- life cycle -------------------------------------------------------------------
    def start(self) -> None:
        """Create the folder, check space, write meta.json and open the files (raises DataError)."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DataError(f"recording folder {self.folder}: cannot create it ({exc.strerror or exc})") from exc
        if (self.folder / META_FILE).exists():
            raise DataError(f"recording folder {self.folder} already holds a recording",
                            hint="choose a new folder for each recording")
        self._free = shutil.disk_usage(self.folder).free
        if self._free < self.min_free_bytes:
            raise DataError(f"recording folder {self.folder}: only {self._free / 1e6:.0f} MB free, "
                            f"need at least {self.min_free_bytes / 1e6:.0f} MB")
        meta = new_meta(_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"), local_clock(), self.eeg_info,
                        self.video_info, self.model_info)
        try:
            strict_json.write_atomic(self.folder / META_FILE, meta)
            names = [MARKERS_FILE, PREDICTIONS_FILE]
            if self.eeg_info is not None:
                names += [EEG_FILE, EEG_TS_FILE]
            if self.video_info is not None:
                names += [FRAMES_FILE, FRAMES_INDEX]
            self._files = {name: open(self.folder / name, "ab") for name in names}
        except OSError as exc:
            self._close_files()
            raise DataError(f"recording folder {self.folder}: cannot write ({exc.strerror or exc})") from exc
        self._started_at = local_clock()
        self._active = True
        self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)
        self._thread.start()
        log.info("recording to %s", self.folder)

    def stop(self) -> None:
        """Write what is queued, close the files. Idempotent."""
        if self._thread is None:
            return
        self._queue.put(None)
        join_or_warn(self._thread, 10.0, f"the recording writer of {self.folder}",
                     "the last queued samples or frames may not be written yet")
        self._thread = None

    @property
    def active(self) -> bool:
        return self._active

    def status(self) -> RecordingStatus:
        end = self._ended_at if self._ended_at is not None else local_clock()
        elapsed = end - self._started_at if self._started_at else 0.0
        return RecordingStatus(self._active, self.folder, elapsed, self._free, self.error)

    # -- producers (any thread) -------------------------------------------------------------
    def add_eeg(self, chunk: np.ndarray, timestamps: np.ndarray) -> None:
        if self._active:
            self._queue.put(("eeg", np.array(chunk.T, dtype=EEG_DTYPE, order="C"), np.asarray(timestamps, STAMP_DTYPE)))

    def add_frame(self, frame: Frame) -> None:
        if self._active:
            self._queue.put(("frame", frame.image, frame.timestamp))

    def add_marker(self, text: str, timestamp: float | None = None, truth: int | None = None,
                   stream: str | None = None) -> None:
        """A line in markers.jsonl; `truth`: the ground-truth class from here on (replays); `stream`: a
        data marker (from a source or the wizard), recorded with "kind": "marker" and where it came from."""
        if self._active:
            record: dict[str, Any] = {"timestamp": local_clock() if timestamp is None else timestamp, "text": text}
            if truth is not None:
                record["truth"] = truth
            if stream is not None:
                record["kind"] = MARKER_KIND
                record["stream"] = stream
            self._queue.put(("line", MARKERS_FILE, record))

    def add_prediction(self, record: dict[str, Any]) -> None:
        if self._active:
            self._queue.put(("line", PREDICTIONS_FILE, record))

    # -- the writer thread -------------------------------------------------------------------
    def _run(self) -> None:
        last_flush = last_space = local_clock()
        try:
            while True:
                try:
                    item = self._queue.get(timeout=self.flush_interval / 2)
                except queue.Empty:
                    item = ()
                if item is None:
                    break
                if item:
                    self._write(item)
                now = local_clock()
                if now - last_flush >= self.flush_interval:
                    self._flush()
                    last_flush = now
                if now - last_space >= 1.0:
                    self._check_space()
                    last_space = now
            self._flush()
        except OSError as exc:
            self._fail(f"{getattr(exc, 'filename', None) or self.folder}: {exc.strerror or exc}")
        except DataError as exc:
            self._fail(str(exc))
        except Exception as exc:  # anything else would end the writer silently while producers still queue
            log.exception("recorder: writing failed")
            self._fail(f"{self.folder}: writing failed ({type(exc).__name__}: {exc})")
        else:
            self._active = False
            self._ended_at = local_clock()
            self._close_files()
            log.info("recording %s closed", self.folder)
            if self.on_stopped is not None:
                self.on_stopped(None)

    def _write(self, item: tuple) -> None:
        kind = item[0]
        if kind == "eeg":
            _, rows, stamps = item
            self._files[EEG_FILE].write(rows.tobytes())
            self._files[EEG_TS_FILE].write(stamps.tobytes())
        elif kind == "frame":
            _, image, stamp = item
            ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
            if not ok:
                log.warning("recorder: JPEG encoding of a frame failed; frame skipped")
                return
            data = jpeg.tobytes()
            self._files[FRAMES_FILE].write(data)
            self._files[FRAMES_INDEX].write(frame_index_row(stamp, self._frame_offset, len(data)))
            self._frame_offset += len(data)
        else:
            _, name, record = item
            self._files[name].write((strict_json.dumps(record) + "\n").encode("utf-8"))

    def _flush(self) -> None:
        # Data files before their indexes, so an index never points past the data.
        for name in (EEG_FILE, FRAMES_FILE, EEG_TS_FILE, FRAMES_INDEX, MARKERS_FILE, PREDICTIONS_FILE):
            handle = self._files.get(name)
            if handle is not None:
                handle.flush()
                os.fsync(handle.fileno())

    def _check_space(self) -> None:
        self._free = shutil.disk_usage(self.folder).free
        if self._free < self.min_free_bytes // 4:
            raise DataError(f"{self.folder}: disk almost full ({self._free / 1e6:.0f} MB left)")

    def _fail(self, message: str) -> None:
        self.error = message
        self._active = False
        self._ended_at = local_clock()
        self._close_files()
        if self.on_stopped is None:
            log.error("recording stopped: %s", message)
        else:  # the listener (the engine) reports it
            self.on_stopped(message)

    def _close_files(self) -> None:
        for handle in self._files.values():
            try:
                handle.close()
            except OSError:
                log.debug("recorder: closing a file failed", exc_info=True)
        self._files = {}


class LiveRecording:
    """A `Recorder` fed by the engine's sources: attached to the buffers of the sources connected when it
    starts, re-attached to one of them that reconnects, detached when it stops or fails. `on_event(level,
    message)` hears that it started, was saved or stopped on an error."""

    def __init__(self, on_event: Callable[[str, str], None]):
        self._on_event = on_event
        self._recorder: Recorder | None = None
        self._sources: list = []
        self._last_status: RecordingStatus | None = None
        self._lock = threading.Lock()

    @property
    def recorder(self) -> Recorder | None:
        return self._recorder

    def start(self, folder: Path, sources: list, model: dict[str, Any], replay=None) -> None:
        """Record the connected ones of `sources` (EEG and video sources) into `folder`; `replay`: the
        replay whose item is noted first."""
        with self._lock:
            if self._recorder is not None and self._recorder.active:
                raise MilmerError(f"already recording to {self._recorder.folder}")
            connected = [s for s in sources if s.connected]
            eeg = next((s for s in connected if s.role == "eeg"), None)
            video = next((s for s in connected if s.role == "video"), None)
            eeg_info = None if eeg is None else {
                "channels": list(eeg.channel_names), "srate": eeg.srate, "units": "uV", "source": eeg.name,
                "source_unit": eeg.unit, "source_unit_origin": eeg.unit_origin,
                "already_filtered": list(eeg.already_filtered) if eeg.already_filtered else None,
                "already_referenced": eeg.already_referenced}
            video_info = None if video is None else {"source": video.name, "fps": video.fps}
            recorder = Recorder(Path(folder), eeg_info, video_info, model, on_stopped=self._stopped)
            recorder.start()
            self._sources = list(sources)
            for source in connected:
                if source.buffer is not None:
                    source.buffer.add_listener(self._listener(recorder, source))
            if replay is not None:
                recorder.add_marker(f"replay: {replay.description}", truth=replay.truth)
            self._recorder = recorder
        self._on_event("info", f"recording started: {folder}")

    @staticmethod
    def _listener(recorder: Recorder, source) -> Callable:
        return recorder.add_eeg if source.role == "eeg" else recorder.add_frame

    def reattach(self, source) -> None:
        """After `source` reconnected: feed it to the recording again, if the recording has its stream
        (one started without it stays without it)."""
        recorder = self._recorder
        described = recorder is not None and (recorder.eeg_info if source.role == "eeg" else recorder.video_info)
        if described and source.buffer is not None:
            listener = self._listener(recorder, source)
            source.buffer.remove_listener(listener)
            source.buffer.add_listener(listener)

    def add_marker(self, text: str, **details: Any) -> None:
        recorder = self._recorder
        if recorder is not None:
            recorder.add_marker(text, **details)

    def add_prediction(self, record: dict[str, Any]) -> None:
        recorder = self._recorder
        if recorder is not None:
            recorder.add_prediction(record)

    def _stopped(self, error: str | None) -> None:
        if error is not None:
            self._on_event("error", f"recording stopped: {error}")
        self._detach()

    def _detach(self) -> None:
        recorder = self._recorder
        if recorder is None:
            return
        for source in self._sources:
            if source.buffer is not None:
                source.buffer.remove_listener(self._listener(recorder, source))

    def stop(self) -> None:
        with self._lock:
            recorder = self._recorder
            if recorder is None:
                return
            self._detach()
            recorder.stop()
            self._last_status = recorder.status()
            self._recorder = None
        if recorder.error is None:
            self._on_event("info", f"recording saved: {recorder.folder}")

    def status(self) -> RecordingStatus:
        recorder = self._recorder
        if recorder is not None:
            return recorder.status()
        if self._last_status is not None:
            status = self._last_status
            return RecordingStatus(False, status.path, status.elapsed_s, status.free_bytes, status.error)
        return RecordingStatus(False, None, 0.0, 0, None)
