"""The live engine: sources -> ring buffers -> bags -> model -> outputs, with plain callbacks.

No Qt here: the GUI wraps these callbacks in signals; `milmer_app.headless` runs the engine without
a window. Threads: one per source, a scheduler that assembles a bag every `hop` seconds
(`bags.schedule_bags`), the inference worker, a status thread (stream monitors every 0.2 s, status
callbacks every 0.5 s) and, while recording, the recorder's writer (`recording.LiveRecording`).
What it runs is an `EngineConfig` (`milmer_app.engine_config`).
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import replace
from pathlib import Path
from typing import Self

import numpy as np

from milmer_app.bags import BagAssembler, CropCache, eeg_preprocessor, live_cropper, schedule_bags
from milmer_app.buffers import Frame
from milmer_app.clock import local_clock
from milmer_app.demo import DEMO_NOTICE, demo_data_dir
from milmer_app.engine_config import EngineConfig
from milmer_app.listeners import EventListener, Listeners, MarkerListener, PredictionListener, StatusListener
from milmer_app.model_load import BackgroundModelLoad, checkpoint_path, model_identity, read_contract
from milmer_app.outputs import PredictionOutputs
from milmer_app.prediction import Prediction
from milmer_app.recording import LiveRecording, RecordingStatus
from milmer_app.repeats import RepeatLimiter
from milmer_app.replay import ReplayControl, ReplayWatch, moment_text
from milmer_app.sources.base import EEGSource, Source, VideoSource
from milmer_app.sources.channel_options import channel_options
from milmer_app.sources.registry import build_source, build_sources
from milmer_app.specs import SourceSpec, as_spec
from milmer_app.stopping import join_or_warn
from milmer_app.stream_status import StreamStatus, ends_the_run
from models.contract import InputContract
from models.errors import MilmerError
from models.pipeline.streaming import StreamingEEG
from models.provenance import describe_model

log = logging.getLogger(__name__)

__all__ = ["Engine", "EngineConfig", "Prediction", "RecordingStatus", "ReplayControl", "StreamStatus"]

STATUS_INTERVAL = 0.5
MONITOR_INTERVAL = 0.2   # with the monitors' 1.25 s threshold, a lost stream is reported within 1.5 s


class Engine:
    """Use as `with Engine(config) as engine:` (start, then stop on the way out; a stop before that is fine)."""

    def __init__(self, config: EngineConfig):
        self.config = config
        self.model_name = ""
        self.device = ""
        self.is_demo_model = False
        self.contract: InputContract | None = None
        self.replay: ReplayControl | None = None
        self._repeats = RepeatLimiter()            # a repeated warning is logged once per interval, with a count
        self.eeg_source: EEGSource | None = None
        self.video_source: VideoSource | None = None
        self.marker_source: Source | None = None
        self.finished = threading.Event()     # set when a replayed source has played to its end or a source failed
        self.worker = None                    # the InferenceWorker, once started (milmer_app.inference: torch)
        self._listeners = Listeners()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._assembler: BagAssembler | None = None
        self._crops: CropCache | None = None
        self._outputs = PredictionOutputs()
        self._recording = LiveRecording(self._event)
        self._retry_lock = threading.Lock()
        self._ended: set[str] = set()        # names of sources that have played to their end
        self._specs: dict[str, SourceSpec] = {}
        self.provenance: dict = {}
        self.preset = ""
        self.uses_eeg = True
        self.uses_face = True
        self.checkpoint_path: Path | None = None
        self._started = False

    # -- listeners ------------------------------------------------------------------------
    def add_prediction_listener(self, cb: PredictionListener) -> None:
        self._listeners.add("prediction", cb)

    def add_status_listener(self, cb: StatusListener) -> None:
        self._listeners.add("status", cb)

    def add_event_listener(self, cb: EventListener) -> None:
        """`cb(level, message)`: level "info", "warning", "error", "marker" or "progress" (start-up stages)."""
        self._listeners.add("event", cb)

    def add_marker_listener(self, cb: MarkerListener) -> None:
        self._listeners.add("marker", cb)

    def _event(self, level: str, message: str, marker: str | None = None, truth: int | None = None) -> None:
        """Log, record (as `marker`, default "LEVEL: message") and hand an event to the listeners."""
        shown = self._repeats.admit(message) if level == "warning" else message
        if shown is not None:
            {"error": log.error, "warning": log.warning}.get(level, log.info)(shown)
        self._recording.add_marker(marker or f"{level}: {message}", truth=truth)
        self._listeners.emit("event", level, message)

    def add_marker(self, text: str, timestamp: float | None = None, stream: str = "milmer") -> None:
        """A marker made by the app itself (the calibration wizard), treated as a source's marker."""
        self._marker(text, local_clock() if timestamp is None else timestamp, stream)

    def _marker(self, text: str, timestamp: float, stream: str) -> None:
        """A marker in a source's data: into the recording at its own time, its text unchanged, and to
        the listeners."""
        log.info("marker from %s at %s: %s", stream, moment_text(self.replay, timestamp), text)
        self._recording.add_marker(text, timestamp=timestamp, stream=stream)
        self._listeners.emit("marker", text, timestamp, stream)
        self._listeners.emit("event", "marker", f"marker at {moment_text(self.replay, timestamp)}: {text}")

    # -- life cycle -------------------------------------------------------------------------
    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        """Check the paths, load the model, connect the sources, start the threads. MilmerError for
        unusable input; a source that cannot connect while the other can is reported and left for `retry`."""
        if self._started:
            return
        from milmer_app.preflight import check_checkpoint, check_source_paths

        cfg = self.config
        self.finished.clear()
        self._crops = None
        eeg_spec, video_spec = cfg.eeg_spec, cfg.video_spec
        self._specs = {"eeg": eeg_spec, "video": video_spec}
        check_source_paths(eeg_spec, video_spec)   # before the model loads: a wrong path fails at once
        check_checkpoint(cfg.checkpoint)
        path = checkpoint_path(cfg.checkpoint)
        log.info("loading checkpoint %s", path)
        self._stage("loading the model…")
        # The model loads while the sources connect: a stream that is not there is reported at once.
        model_load = BackgroundModelLoad(path, cfg.device)
        early_contract = read_contract(path)
        if early_contract is not None and eeg_spec.kind == "demo":   # written on first use: say so, trial by trial
            demo_data_dir(progress=lambda done, total: self._stage(
                f"writing the demo subject (first start only): trial {done}/{total}…"))
        try:
            if early_contract is not None:
                self._stage(f"connecting {eeg_spec.text or eeg_spec.kind}… (the model loads meanwhile)")
                self._open_sources(eeg_spec, video_spec, early_contract)
                self._open_markers(cfg.markers)
                self._stage("loading the model…")
            # A replay waits for the model (it would otherwise play on unseen while the model loads).
            held = self.replay if self.replay is not None and not self.replay.paused else None
            if held is not None:
                held.pause()
            loaded, device = model_load.result()
        except BaseException:
            self.stop()
            raise
        self.contract = contract = loaded.contract
        self.uses_eeg, self.uses_face = loaded.config.uses_eeg, loaded.config.uses_face
        self._take_model(loaded, path)
        self.device = str(device)
        if self.is_demo_model:
            log.warning(DEMO_NOTICE)
        log.info("model %s (%s) on %s", self.model_name, self.model_description, self.device)

        try:
            if early_contract is None:   # the JSON could not be read ahead; the load has checked it since
                self._open_sources(eeg_spec, video_spec, contract)
                self._open_markers(cfg.markers)
                held = None
            min_fraction = channel_options(eeg_spec).min_channels or cfg.min_channels
            preprocessor = self._eeg_preprocessor() if self.eeg_source is not None and self.eeg_source.connected \
                else None
            if self.video_source is not None and loaded.config.uses_face:
                cropper, detector_note = live_cropper(contract)
                if detector_note is not None:
                    self._event("warning", detector_note)
                self._crops = CropCache(cropper, capacity=8 * contract.num_instances, on_event=self._event)
            min_usable = math.ceil(min_fraction * len(contract.eeg_channels))
            self._assembler = BagAssembler(contract, self.eeg_source, preprocessor, self.video_source, self._crops,
                                           min_usable=min_usable, on_event=self._event)
            from milmer_app.inference import InferenceWorker, Predictor  # torch: loaded by now, on the load's thread

            predictor = Predictor(loaded.model, list(contract.class_names), self.model_name, self.is_demo_model,
                                  use_cache=cfg.embedding_cache)
            self.worker = InferenceWorker(predictor, self._on_prediction)
            self._outputs.open(cfg, contract, self.model_name, self.is_demo_model,
                               self.eeg_source.srate if self.eeg_source is not None else 0.0)
            if cfg.record is not None:
                self.start_recording(cfg.record)
        except BaseException:
            self.stop()
            raise
        self._stop.clear()
        if held is not None:
            held.resume()
        self.worker.start()
        for target, name in ((self._schedule, "scheduler"), (self._watch, "monitor")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        self._started = True

    def _stage(self, message: str) -> None:
        """What the start is doing now, for a window's empty panes (level "progress", not logged)."""
        self._listeners.emit("event", "progress", message)

    @property
    def eeg_problem(self) -> str | None:
        """Why no window can be made from the EEG now ("no usable EEG: ..."), None when one can."""
        return self._assembler.problem if self._assembler is not None else None

    def use_checkpoint(self, checkpoint: str | Path) -> None:
        """Predict with another checkpoint from the next window on, without reconnecting the sources
        (a person's calibrated model). It must take the same input (contract and modalities) as the
        running one; MilmerError otherwise, and the running model stays."""
        from milmer_app.inference import Predictor
        from milmer_app.preflight import check_checkpoint
        from models.checkpoint import load_checkpoint

        if not self._started or self.worker is None or self.contract is None:
            raise MilmerError("the engine is not running: connect first")
        check_checkpoint(str(checkpoint))
        path = checkpoint_path(str(checkpoint))
        loaded = load_checkpoint(path, device=self.device)
        other = ("its input contract differs from the running model's" if loaded.contract != self.contract
                 else f"uses other modalities ({loaded.config.modalities}) than the running model"
                 if (loaded.config.uses_eeg, loaded.config.uses_face) != (self.uses_eeg, self.uses_face) else None)
        if other is not None:
            raise MilmerError(f"{path}: {other}", hint="connect with it as the checkpoint instead")
        self._take_model(loaded, path)
        self.worker.use(Predictor(loaded.model, list(self.contract.class_names), self.model_name,
                                  self.is_demo_model, use_cache=self.config.embedding_cache))
        self._event("info", f"model switched to {self.model_name} ({self.model_description})")

    def _take_model(self, loaded, path: Path) -> None:
        """The running model's name, provenance and preset from its checkpoint."""
        self.provenance, self.preset = dict(loaded.provenance or {}), str(loaded.config.preset)
        self.model_name, self.is_demo_model = model_identity(path, self.provenance)
        self.checkpoint_path = Path(path)

    @property
    def model_description(self) -> str:
        """What the model is, from its checkpoint's provenance (read defensively: any key may be absent)."""
        return describe_model(self.preset, self.provenance, self.is_demo_model)

    def _eeg_preprocessor(self) -> StreamingEEG | None:
        """The live transform for the connected EEG source (MilmerError when its channels do not fit)."""
        source, contract = self.eeg_source, self.contract
        if source is None or contract is None or not self.uses_eeg:
            return None
        return eeg_preprocessor(source, contract, channel_options(self._specs["eeg"]), self.config.min_channels)

    def _open_sources(self, eeg_spec: SourceSpec, video_spec: SourceSpec, contract: InputContract) -> None:
        """Build both sources and connect each on its own: one that fails is reported and kept (not
        connected, its `error` set) as long as the other one runs; if none can run, the first error is raised."""
        from models.pipeline.labels import LabelRule

        self.eeg_source, self.video_source = build_sources(eeg_spec, video_spec, self.config.speed,
                                                           LabelRule.from_dict(contract.label_rule),
                                                           video_offset=contract.video_offset)
        failures: list[MilmerError] = []
        for source in self.sources:
            self._listen_to(source)
            try:
                self._connect(source)
            except MilmerError as exc:
                failures.append(exc)
        if len(failures) == len(self.sources):
            raise failures[0]
        for source in self.sources:
            if not source.connected:
                other = "EEG" if source.role == "video" else "video"
                self._event("warning", f"{source.role} not connected: {source.error}; going on with {other} alone")
        self.replay = next((s.replay for s in self.sources if s.replay is not None), None)

    def _connect(self, source: Source) -> None:
        """Connect one source; on failure remember why on the source and re-raise."""
        try:
            source.connect()
        except MilmerError as exc:
            source.error = str(exc) + (f" ({exc.hint})" if exc.hint else "")
            raise
        source.error = None

    def retry(self, role: str) -> None:
        """Reconnect only the EEG or only the video source (the other one keeps running).
        MilmerError (the source's error) when it still cannot connect."""
        source = self.eeg_source if role == "eeg" else self.video_source
        if source is None:
            raise MilmerError(f"no {role} source to reconnect")
        with self._retry_lock:
            if not self._started:
                raise MilmerError("the engine is not running")
            source.disconnect()
            self._connect(source)
            if role == "eeg" and self._assembler is not None:
                try:
                    self._assembler.preprocessor = self._eeg_preprocessor()
                except MilmerError as exc:
                    source.disconnect()
                    source.error = str(exc)
                    raise
            self._ended.discard(source.name)
            self._recording.reattach(source)
        self._event("info", f"{role} reconnected: {source.name}")

    def _listen_to(self, source: Source) -> None:
        source.add_event_sink(self._event)
        source.add_marker_sink(lambda text, stamp: self._marker(text, stamp, source.name))

    def _open_markers(self, spec: SourceSpec) -> None:
        """Connect the marker stream, if any (MilmerError when it cannot: the markers were asked for)."""
        source = build_source(spec)
        if source is not None:
            self._listen_to(source)
            source.connect()
            self.marker_source = source

    def connect_markers(self, spec: SourceSpec | str) -> None:
        """Open a marker stream on the running engine, replacing the one it had (the wizard's external
        stimuli); MilmerError when it cannot be opened, and the engine keeps what it had."""
        spec = as_spec("markers", spec)
        if not self._started:
            raise MilmerError("the engine is not running: connect first")
        old = self.marker_source
        self._open_markers(spec)
        self.config = replace(self.config, markers=spec)
        if old is not None and old is not self.marker_source:
            old.disconnect()
        self._event("info", f"markers from {self.marker_source.name if self.marker_source else 'none'}")

    def stop(self) -> None:
        """Stop threads, flush outputs and the recording, release the sources. Idempotent."""
        self._stop.set()
        for thread in self._threads:
            join_or_warn(thread, 10.0, f"engine thread {thread.name}")
        self._threads = []
        if self.worker is not None:
            self.worker.stop()
        self.stop_recording()
        with self._retry_lock:   # a Retry running on another thread must not reopen a source after this
            self._started = False
            self._disconnect_sources()
        self._ended.clear()
        self._outputs.close()
        self._started = False
        for line in self._repeats.held_back():
            log.warning("%s", line)

    def _disconnect_sources(self) -> None:
        for source in (self.marker_source, self.video_source, self.eeg_source):
            if source is not None:
                source.disconnect()

    @property
    def sources(self) -> list[Source]:
        return [s for s in (self.eeg_source, self.video_source) if s is not None]

    @property
    def source_errors(self) -> list[str]:
        """Why sources stopped delivering, for those whose worker failed (a live source only ends so)."""
        return [s.error for s in self.sources if s.error is not None]

    # -- threads ---------------------------------------------------------------------------
    def _schedule(self) -> None:
        assert self._assembler is not None and self.worker is not None
        schedule_bags(self._assembler, self.worker, self._crops, self._wall_hop, self._stop,
                      prefetch=self.config.embedding_cache)

    def _wall_hop(self) -> float:
        """Wall-clock seconds between bags: the hop, in recording time for a replay."""
        replay = self.replay
        return self.config.hop / replay.speed if replay is not None else self.config.hop

    def _watch(self) -> None:
        ended = self._ended
        last_status = 0.0
        replay = ReplayWatch(self.replay) if self.replay is not None else None
        while not self._stop.wait(MONITOR_INTERVAL):
            for message, marker, truth in (replay.changes() if replay is not None else ()):
                self._event("info", message, marker=marker, truth=truth)
            statuses = []
            for source in self.sources:
                paused = source.replay is not None and source.replay.paused
                if source.finished.is_set() and source.name not in ended:
                    ended.add(source.name)
                    if source.error is None:
                        self._event("info", f"stream ended: {source.name}")
                    if ends_the_run(source, self.sources):
                        self.finished.set()
                report, transition = source.monitor.check()
                if transition and not paused and source.name not in ended:
                    if transition == "lost":
                        self._event("warning", f"stream lost: {source.name} (no data for "
                                               f"{report.seconds_since_last:.1f} s)")
                    else:
                        self._event("info", f"stream back: {source.name}")
                status = StreamStatus.of(source, report, source.name in ended, paused)
                assembler = self._assembler
                if source is self.eeg_source and assembler is not None and assembler.preprocessor is not None:
                    status.masked = dict(assembler.signal_problems)
                    status.problem = assembler.problem or ""
                    status.delay = assembler.preprocessor.delay
                statuses.append(status)
            now = local_clock()
            if now - last_status >= STATUS_INTERVAL:
                last_status = now
                self._listeners.emit("status", statuses)

    def _on_prediction(self, prediction: Prediction) -> None:
        self._outputs.write(prediction)
        self._recording.add_prediction(prediction.to_json())
        self._listeners.emit("prediction", prediction)

    # -- views for the GUI -------------------------------------------------------------------
    def eeg_snapshot(self, seconds: float) -> tuple[np.ndarray, np.ndarray, list[str], float]:
        """A copy of the last `seconds` of raw EEG (microvolts): (C, n), (n,), names, rate."""
        source = self.eeg_source
        if source is None or source.buffer is None:
            return np.zeros((0, 0), np.float32), np.zeros(0), [], 0.0
        data, times = source.buffer.latest(int(seconds * source.srate))
        return data, times, list(source.channel_names), source.srate

    def latest_frame(self) -> tuple[np.ndarray, float, tuple[int, int, int, int] | None] | None:
        """The newest frame (BGR), its timestamp, and the latest face box if found within 1 s of it."""
        source = self.video_source
        frame: Frame | None = source.buffer.latest() if source is not None and source.buffer is not None else None
        if frame is None:
            return None
        return frame.image, frame.timestamp, self._crops.box_near(frame.timestamp) if self._crops else None

    # -- recording (milmer_app.recording.LiveRecording) -------------------------------------------
    def start_recording(self, folder: Path) -> None:
        """Record EEG, frames, events and predictions into `folder` (DataError if it cannot)."""
        self._recording.start(folder, self.sources, {"name": self.model_name, "demo_model": self.is_demo_model},
                              self.replay)

    def stop_recording(self) -> None:
        self._recording.stop()

    def recording_status(self) -> RecordingStatus:
        return self._recording.status()
