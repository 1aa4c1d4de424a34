"""The live engine: sources -> ring buffers -> bags -> model -> outputs, with plain callbacks.

No Qt here: the GUI wraps these callbacks in signals; `milmer_app.headless`
runs the engine without a window. Threads: one per source, a scheduler that
assembles a bag every `hop` seconds, the inference worker, a status thread
(stream monitors every 0.2 s, status callbacks every 0.5 s) and, while
recording, the recorder's writer.
"""

from __future__ import annotations

import argparse
import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from milmer_app.bag_dump import BagDumper
from milmer_app.bags import BagAssembler, CropCache, live_cropper
from milmer_app.buffers import Frame
from models.pipeline.channels import map_channels
from milmer_app.clock import local_clock
from milmer_app.model_load import BackgroundModelLoad, read_contract
from milmer_app.outputs import JsonlWriter, LslPredictionOutlet
from milmer_app.prediction import Prediction
from models.pipeline.streaming import StreamingEEG
from milmer_app.recording import Recorder, RecordingStatus
from milmer_app.repeats import RepeatLimiter
from milmer_app.replay import ReplayControl
from milmer_app.sources.base import EEGSource, Source, VideoSource
from milmer_app.sources.channel_options import channel_options
from milmer_app.specs import SourceSpec, as_spec
from models.config import FROZEN_BACKBONE_LABEL
from models.contract import InputContract
from models.errors import MilmerError, SourceError

log = logging.getLogger(__name__)

__all__ = ["Engine", "EngineConfig", "Prediction", "RecordingStatus", "ReplayControl", "StreamStatus"]

STATUS_INTERVAL = 0.5
MONITOR_INTERVAL = 0.2   # with the monitors' 1.25 s threshold, a lost stream is reported within 1.5 s


@dataclass
class EngineConfig:
    """What the engine runs: typed source specs (from the registry), the model and the outputs.

    `eeg` and `video` accept spec text ("lsl:type=EEG") or a parsed `SourceSpec`; text is parsed
    here, so a bad spec fails before any model loads. The GUI builds this directly from the
    registry's option dataclasses (`spec_from_options`); the command line through `from_args`.
    """

    eeg: SourceSpec | str = "none"          # see `milmer-app --help` for every kind and option
    video: SourceSpec | str = "none"
    markers: SourceSpec | str = "none"      # a marker stream (recorded and shown beside the EEG)
    checkpoint: str = "demo"      # path to NAME(.safetensors|.json) or "demo"
    hop: float = 1.0
    device: str = "auto"
    predictions: Path | None = None
    record: Path | None = None
    lsl_outlet: str | None = None
    speed: float = 1.0
    min_channels: float = 0.25    # fraction of the model's EEG channels that must be found by label and usable
    embedding_cache: bool = True
    dump_bags: Path | None = None  # write every bag fed to the model as DIR/bag-NNNNNN.npz

    def __post_init__(self) -> None:
        for name in ("hop", "speed"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise MilmerError(f"--{name} must be positive, got {value}")
        if not 0 < self.min_channels <= 1:
            raise MilmerError(f"min_channels must be a fraction in (0, 1], got {self.min_channels}")
        self.eeg = as_spec("eeg", self.eeg)
        self.video = as_spec("video", self.video)
        self.markers = as_spec("markers", self.markers)
        self.predictions = Path(self.predictions) if self.predictions else None
        self.record = Path(self.record) if self.record else None
        self.dump_bags = Path(self.dump_bags) if self.dump_bags else None

    @property
    def eeg_spec(self) -> SourceSpec:
        assert isinstance(self.eeg, SourceSpec)
        return self.eeg

    @property
    def video_spec(self) -> SourceSpec:
        assert isinstance(self.video, SourceSpec)
        return self.video

    @staticmethod
    def output_options(args: argparse.Namespace) -> dict:
        """The output settings of milmer-app's command line (the window keeps them across reconnects)."""
        return {"markers": getattr(args, "markers", None) or "none",
                "predictions": getattr(args, "predictions", None), "record": getattr(args, "record", None),
                "lsl_outlet": getattr(args, "lsl_outlet", None), "dump_bags": getattr(args, "dump_bags", None)}

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> EngineConfig:
        """From milmer-app's options; `--demo` fills in the demo subject, its video and the demo model."""
        if args.demo:
            eeg, video, checkpoint = args.eeg or "demo", args.video or "deap", args.checkpoint or "demo"
        else:
            if not args.eeg and not args.video:
                raise MilmerError("no source given", hint="use --eeg SPEC and/or --video SPEC, or --demo")
            eeg, video = args.eeg or "none", args.video or "none"
            checkpoint = args.checkpoint or "demo"
            if not args.checkpoint:
                log.warning("no --checkpoint given: using the DEMO model")
        return cls(eeg=eeg, video=video, checkpoint=checkpoint, hop=args.hop, device=args.device,
                   speed=args.speed, **cls.output_options(args))


@dataclass
class StreamStatus:
    name: str
    kind: str                     # "eeg" | "video"
    connected: bool
    lost: bool
    nominal_rate: float
    effective_rate: float
    gaps: int
    dropped: int
    seconds_since_last: float
    ended: bool = False            # a replay or a video file that has played to its end
    late: int = 0                  # chunks that arrived more than 1 s after their timestamp
    masked: dict[str, str] = field(default_factory=dict)   # EEG: channels masked for their signal, and why
    problem: str = ""              # EEG: why no prediction can be made now ("no usable EEG: ..."), else ""
    delay: float = 0.0             # EEG: the pipeline's delay (window end before the newest sample), seconds
    unit: str = ""                 # EEG: the unit the device's samples arrived in, e.g. "µV", "V (assumed)"
    rate_off: bool = False         # the measured rate is more than 5 % off the nominal one
    paused: bool = False           # a replay on pause (its silence is not a loss)
    error: str | None = None       # why the source could not connect or stopped (connected is then False)


PredictionListener = Callable[[Prediction], None]
StatusListener = Callable[[list[StreamStatus]], None]
EventListener = Callable[[str, str], None]
MarkerListener = Callable[[str, float, str], None]   # (text, LSL time, the stream it came from)


@dataclass
class _Listeners:
    predictions: list[PredictionListener] = field(default_factory=list)
    status: list[StatusListener] = field(default_factory=list)
    events: list[EventListener] = field(default_factory=list)
    markers: list[MarkerListener] = field(default_factory=list)


def describe_model(preset: str, provenance: dict, demo: bool = False) -> str:
    """A model named by what it is: preset, protocol, fold, training data, and "LEAKY" where its
    provenance says test data leaked into training. Any provenance key may be missing or odd."""
    parts = ["demo" if demo else "", f"{preset} preset" if preset else ""]
    protocol = provenance.get("protocol")
    if isinstance(protocol, str) and protocol:
        parts.append(f"{protocol} protocol")
    fold, fold_name = provenance.get("fold"), provenance.get("fold_name")
    if isinstance(fold_name, str) and fold_name:
        parts.append(fold_name if "fold" in fold_name.lower() else f"fold {fold_name}")
    elif isinstance(fold, int) and not isinstance(fold, bool):
        parts.append(f"fold {fold + 1}")
    if provenance.get("face_backbone") == FROZEN_BACKBONE_LABEL:
        parts.append(FROZEN_BACKBONE_LABEL)
    calibration = provenance.get("calibration")
    if isinstance(calibration, dict):
        created = calibration.get("created_utc")
        parts.append(f"calibrated {created[:10]}" if isinstance(created, str) and created else "calibrated")
    else:
        parts.append(_dataset_text(provenance.get("dataset")))
    # Paper-protocol checkpoints written before the flag existed are leaky all the same.
    if provenance.get("leaky") or protocol == "paper":
        parts.append("LEAKY")
    return " · ".join(p for p in parts if p) or "no provenance"


def _dataset_text(dataset: object) -> str:
    if isinstance(dataset, dict):
        root, subjects = dataset.get("root"), dataset.get("subjects")
        text = Path(str(root)).name if root else str(dataset.get("source") or "")
        if isinstance(subjects, list) and subjects:
            text += f" ({len(subjects)} subject{'s' if len(subjects) > 1 else ''})"
        dataset = text
    if not isinstance(dataset, str) or not dataset:
        return ""
    return "trained on " + (dataset if len(dataset) <= 40 else dataset[:39] + "…")


def _checkpoint_path(spec: str) -> Path:
    if spec == "demo":
        from milmer_app.demo import demo_checkpoint

        return demo_checkpoint()
    return Path(spec).expanduser()


def _is_demo_checkpoint(path: Path) -> bool:
    from milmer_app.demo import DEMO_CHECKPOINT
    from models.checkpoint import checkpoint_paths

    return checkpoint_paths(path)[1].resolve() == checkpoint_paths(DEMO_CHECKPOINT)[1].resolve()


class Engine:
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
        self._listeners = _Listeners()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._assembler: BagAssembler | None = None
        self._crops: CropCache | None = None
        self._jsonl: JsonlWriter | None = None
        self._outlet: LslPredictionOutlet | None = None
        self._dumper: BagDumper | None = None
        self._recorder: Recorder | None = None
        self._last_recording_status: RecordingStatus | None = None
        self._record_lock = threading.Lock()
        self._retry_lock = threading.Lock()
        self._ended: set[str] = set()        # names of sources that have played to their end
        self._specs: dict[str, SourceSpec] = {}
        self.provenance: dict = {}
        self.preset = ""
        self._uses_eeg = True
        self._uses_face = True
        self.checkpoint_path: Path | None = None
        self._started = False

    # -- listeners ------------------------------------------------------------------------
    def add_prediction_listener(self, cb: PredictionListener) -> None:
        self._listeners.predictions.append(cb)

    def add_status_listener(self, cb: StatusListener) -> None:
        self._listeners.status.append(cb)

    def add_event_listener(self, cb: EventListener) -> None:
        self._listeners.events.append(cb)

    def add_marker_listener(self, cb: MarkerListener) -> None:
        self._listeners.markers.append(cb)

    def _event(self, level: str, message: str, marker: str | None = None, truth: int | None = None) -> None:
        """Log, record (as `marker`, default "LEVEL: message") and hand an event to the listeners."""
        shown = self._repeats.admit(message) if level == "warning" else message
        if shown is not None:
            {"error": log.error, "warning": log.warning}.get(level, log.info)(shown)
        recorder = self._recorder
        if recorder is not None:
            recorder.add_marker(marker or f"{level}: {message}", truth=truth)
        for cb in list(self._listeners.events):
            try:
                cb(level, message)
            except Exception:
                log.exception("event listener failed")

    def _time_text(self, lsl_time: float) -> str:
        """A moment as a person lines it up: seconds into a replayed file or trial, else the LSL clock."""
        replay = self.replay
        if replay is not None:
            return f"{replay.media_time(lsl_time):.2f} s"
        return f"LSL {lsl_time:.3f}"

    def add_marker(self, text: str, timestamp: float | None = None, stream: str = "milmer") -> None:
        """A marker made by the app itself (the calibration wizard), treated as a source's marker."""
        self._marker(text, local_clock() if timestamp is None else timestamp, stream)

    def _marker(self, text: str, timestamp: float, stream: str) -> None:
        """A marker in a source's data: into the recording at its own time, its text unchanged, and to
        the listeners."""
        log.info("marker from %s at %s: %s", stream, self._time_text(timestamp), text)
        recorder = self._recorder
        if recorder is not None:
            recorder.add_marker(text, timestamp=timestamp, stream=stream)
        for marker_cb in list(self._listeners.markers):
            try:
                marker_cb(text, timestamp, stream)
            except Exception:
                log.exception("marker listener failed")
        for cb in list(self._listeners.events):
            try:
                cb("marker", f"marker at {self._time_text(timestamp)}: {text}")
            except Exception:
                log.exception("event listener failed")

    # -- life cycle -------------------------------------------------------------------------
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
        path = _checkpoint_path(cfg.checkpoint)
        log.info("loading checkpoint %s", path)
        self._stage("loading the model…")
        # The model loads while the sources connect: a stream that is not there is reported at once.
        model_load = BackgroundModelLoad(path, cfg.device)
        early_contract = read_contract(path)
        if early_contract is not None and eeg_spec.kind == "demo":
            self._write_demo_data()
        try:
            if early_contract is not None:
                self._stage(f"connecting {eeg_spec.text or eeg_spec.kind}… (the model loads meanwhile)")
                self._open_sources(eeg_spec, video_spec, early_contract)
                self._open_markers()
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
        self.provenance = provenance = dict(loaded.provenance or {})
        self.preset = str(loaded.config.preset)
        self._uses_eeg = loaded.config.uses_eeg
        self._uses_face = loaded.config.uses_face
        self.checkpoint_path = Path(path)
        marked_demo = bool(provenance.get("demo_model") or provenance.get("demo"))
        self.is_demo_model = cfg.checkpoint == "demo" or marked_demo or _is_demo_checkpoint(path)
        self.model_name = "demo" if self.is_demo_model else Path(path).with_suffix("").name
        self.device = str(device)
        if self.is_demo_model:
            from milmer_app.demo import DEMO_NOTICE

            log.warning(DEMO_NOTICE)
        log.info("model %s (%s) on %s", self.model_name, self.model_description, self.device)

        try:
            if early_contract is None:   # the JSON could not be read ahead; the load has checked it since
                self._open_sources(eeg_spec, video_spec, contract)
                self._open_markers()
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
            self._open_outputs(contract)
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
        for cb in list(self._listeners.events):
            try:
                cb("progress", message)
            except Exception:
                log.exception("event listener failed")

    def _write_demo_data(self) -> None:
        """The demo subject is written on first use (seconds); say so, with the trials written."""
        from milmer_app.demo import demo_data_dir

        demo_data_dir(progress=lambda done, total: self._stage(
            f"writing the demo subject (first start only): trial {done}/{total}…"))

    def _open_outputs(self, contract: InputContract) -> None:
        cfg = self.config
        if cfg.predictions is not None:
            self._jsonl = JsonlWriter(cfg.predictions)
        if cfg.lsl_outlet:
            self._outlet = LslPredictionOutlet(cfg.lsl_outlet, list(contract.class_names), self.model_name,
                                               self.is_demo_model)
        if cfg.dump_bags is not None:
            self._dumper = BagDumper(cfg.dump_bags, list(contract.eeg_channels),
                                     self.eeg_source.srate if self.eeg_source is not None else 0.0)
        if cfg.record is not None:
            self.start_recording(cfg.record)

    @property
    def uses_eeg(self) -> bool:
        return self._uses_eeg

    @property
    def uses_face(self) -> bool:
        return self._uses_face

    @property
    def eeg_problem(self) -> str | None:
        """Why no window can be made from the EEG now ("no usable EEG: ..."), None when one can."""
        assembler = self._assembler
        return assembler.problem if assembler is not None else None

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
        path = _checkpoint_path(str(checkpoint))
        loaded = load_checkpoint(path, device=self.device)
        if loaded.contract != self.contract:
            raise MilmerError(f"{path}: its input contract differs from the running model's",
                              hint="connect with it as the checkpoint instead")
        if (loaded.config.uses_eeg, loaded.config.uses_face) != (self._uses_eeg, self._uses_face):
            raise MilmerError(f"{path}: uses other modalities ({loaded.config.modalities}) than the running model",
                              hint="connect with it as the checkpoint instead")
        provenance = dict(loaded.provenance or {})
        demo = bool(provenance.get("demo_model") or provenance.get("demo")) or _is_demo_checkpoint(path)
        name = "demo" if demo else Path(path).with_suffix("").name
        self.worker.use(Predictor(loaded.model, list(self.contract.class_names), name, demo,
                                  use_cache=self.config.embedding_cache))
        self.model_name, self.provenance, self.preset = name, provenance, str(loaded.config.preset)
        self.is_demo_model, self.checkpoint_path = demo, Path(path)
        self._event("info", f"model switched to {name} ({self.model_description})")

    @property
    def model_description(self) -> str:
        """What the model is, from its checkpoint's provenance (read defensively: any key may be absent)."""
        return describe_model(self.preset, self.provenance, self.is_demo_model)

    def _eeg_preprocessor(self) -> StreamingEEG | None:
        """The live transform for the connected EEG source (MilmerError when its channels do not fit)."""
        source, contract, spec = self.eeg_source, self.contract, self._specs["eeg"]
        if source is None or contract is None or not self._uses_eeg:
            return None
        band = contract.filter_band
        if band is not None and not source.srate > 2 * band[1]:
            raise SourceError(f"{source.name}: {source.srate:g} Hz cannot carry the model's {band[0]:g}-{band[1]:g} Hz "
                              f"band (it needs more than {2 * band[1]:g} Hz)")
        mapping = channel_options(spec)
        channels = map_channels(source.channel_names, list(contract.eeg_channels), source.name,
                                min_fraction=mapping.min_channels or self.config.min_channels,
                                by_position=mapping.by_position, montage=mapping.montage)
        preprocessor = StreamingEEG(contract, channels, source.srate, already_filtered=source.already_filtered,
                                    already_referenced=source.already_referenced)
        log.info("%s: EEG pipeline delay %.3f s (windows end that long before the newest sample)",
                 source.name, preprocessor.delay)
        return preprocessor

    def _open_sources(self, eeg_spec: SourceSpec, video_spec: SourceSpec, contract: InputContract) -> None:
        """Build both sources and connect each on its own: one that fails is reported and kept (not
        connected, its `error` set) as long as the other one runs; if none can run, the first error is raised."""
        from milmer_app.sources import build_sources
        from models.pipeline.labels import LabelRule

        self.eeg_source, self.video_source = build_sources(eeg_spec, video_spec, self.config.speed,
                                                           LabelRule.from_dict(contract.label_rule),
                                                           video_offset=contract.video_offset)
        for source in self.sources:
            source.add_event_sink(self._event)
            source.add_marker_sink(lambda text, stamp, source=source: self._marker(text, stamp, source.name))
        failures: list[MilmerError] = []
        for source in self.sources:
            try:
                self._connect(source)
            except MilmerError as exc:
                failures.append(exc)
        if len(failures) == len(self.sources):
            raise failures[0]
        for source in self.sources:
            if not source.connected:
                other = "EEG" if source.kind == "video" else "video"
                self._event("warning", f"{source.kind} not connected: {source.error}; going on with {other} alone")
        self.replay = next((s.replay for s in self.sources if s.replay is not None), None)

    def _connect(self, source: Source) -> None:
        """Connect one source; on failure remember why on the source and re-raise."""
        try:
            source.connect()
        except MilmerError as exc:
            source.error = str(exc) + (f" ({exc.hint})" if exc.hint else "")
            raise
        source.error = None

    def retry(self, kind: str) -> None:
        """Reconnect only the EEG or only the video source (the other one keeps running).
        MilmerError (the source's error) when it still cannot connect."""
        source = self.eeg_source if kind == "eeg" else self.video_source
        if source is None:
            raise MilmerError(f"no {kind} source to reconnect")
        with self._retry_lock:
            if not self._started:
                raise MilmerError("the engine is not running")
            source.disconnect()
            self._connect(source)
            if kind == "eeg" and self._assembler is not None:
                try:
                    self._assembler.preprocessor = self._eeg_preprocessor()
                except MilmerError as exc:
                    source.disconnect()
                    source.error = str(exc)
                    raise
            self._ended.discard(source.name)
            recorder = self._recorder
            described = recorder is not None and (recorder.eeg_info if kind == "eeg" else recorder.video_info)
            if described and source.buffer is not None:   # a recording started without it stays without it
                listener = recorder.add_eeg if isinstance(source, EEGSource) else recorder.add_frame
                source.buffer.remove_listener(listener)
                source.buffer.add_listener(listener)
        self._event("info", f"{kind} reconnected: {source.name}")

    def connect_markers(self, spec: SourceSpec | str) -> None:
        """Open a marker stream on the running engine, replacing the one it had (the wizard's external
        stimuli); MilmerError when it cannot be opened, and the engine keeps what it had."""
        spec = as_spec("markers", spec)
        if not self._started:
            raise MilmerError("the engine is not running: connect first")
        old, old_spec = self.marker_source, self.config.markers
        self.config.markers = spec
        try:
            self._open_markers()
        except BaseException:
            self.config.markers = old_spec
            raise
        if old is not None and old is not self.marker_source:
            old.disconnect()
        self._event("info", f"markers from {self.marker_source.name if self.marker_source else 'none'}")

    def _open_markers(self) -> None:
        """Connect the marker stream, if any (MilmerError when it cannot: the markers were asked for)."""
        from milmer_app.sources.registry import BuildContext, kind_of

        spec = as_spec("markers", self.config.markers)
        build = kind_of(spec).builder()
        source = build(spec, BuildContext()) if build is not None else None
        if source is None:
            return
        source.add_event_sink(self._event)
        source.add_marker_sink(lambda text, stamp: self._marker(text, stamp, source.name))
        source.connect()
        self.marker_source = source

    def stop(self) -> None:
        """Stop threads, flush outputs and the recording, release the sources. Idempotent."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10.0)
        self._threads = []
        if self.worker is not None:
            self.worker.stop()
        self.stop_recording()
        with self._retry_lock:   # a Retry running on another thread must not reopen a source after this
            self._started = False
            self._disconnect_sources()
        self._ended.clear()
        if self._jsonl is not None:
            self._jsonl.close()
            self._jsonl = None
        if self._outlet is not None:
            self._outlet.close()
            self._outlet = None
        self._dumper = None
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
        """Every hop: a bag of the latest window. In between: crop and prefetch settled frames.

        For a replay the hop is in recording time: at --speed 10 with a 1 s hop, ten bags per second,
        so a replay gives the same predictions at any speed that the machine keeps up with."""
        assembler, worker = self._assembler, self.worker
        assert assembler is not None and worker is not None
        hop = self._wall_hop()
        prefetch = self.config.embedding_cache and self._crops is not None
        poll = min(hop, 0.1) if prefetch else hop
        next_tick = local_clock() + hop
        settled: float | None = None
        last_end: float | None = None
        failures = 0
        while not self._stop.wait(max(0.0, min(next_tick - local_clock(), poll))):
            try:
                if prefetch:
                    frames, settled = assembler.settled_instances(settled)
                    for frame in frames:
                        crop = self._crops.get(frame)
                        if crop is not None and crop.usable:
                            worker.prefetch(frame.key, crop.image)
                now = local_clock()
                if now < next_tick:
                    continue
                hop = self._wall_hop()
                next_tick = max(next_tick + hop, now + hop / 2)   # never a burst of missed ticks
                bag = assembler.assemble()
            except Exception:
                failures += 1
                if failures == 1 or failures % 100 == 0:   # keep the log readable if it repeats
                    log.exception("assembling a bag failed (%d time(s))", failures)
                next_tick = max(next_tick, local_clock() + hop / 2)
                continue
            if bag is None or bag.window_end == last_end:
                continue
            last_end = bag.window_end
            worker.submit(bag)

    def _wall_hop(self) -> float:
        """Wall-clock seconds between bags: the hop, in recording time for a replay."""
        replay = self.replay
        return self.config.hop / replay.speed if replay is not None else self.config.hop

    def _watch(self) -> None:
        ended = self._ended
        last_status = 0.0
        replay = self.replay
        replayed = replay.description if replay is not None else None
        state = replay.snapshot() if replay is not None else None
        while not self._stop.wait(MONITOR_INTERVAL):
            if replay is not None:
                state, replayed = self._note_replay_events(replay, state, replayed)
            statuses = []
            for source in self.sources:
                paused = source.replay is not None and source.replay.paused
                if source.finished.is_set() and source.name not in ended:
                    ended.add(source.name)
                    if source.error is None:
                        self._event("info", f"stream ended: {source.name}")
                    if self._run_is_over(source):
                        self.finished.set()
                report, transition = source.monitor.check()
                if transition and not paused and source.name not in ended:
                    if transition == "lost":
                        self._event("warning", f"stream lost: {source.name} (no data for "
                                               f"{report.seconds_since_last:.1f} s)")
                    else:
                        self._event("info", f"stream back: {source.name}")
                status = StreamStatus(source.name, source.kind, source.connected and source.error is None,
                                      report.lost and not paused, report.nominal_rate, report.effective_rate,
                                      report.gaps, report.dropped, report.seconds_since_last,
                                      source.name in ended and source.error is None, report.late,
                                      rate_off=report.rate_off, paused=paused, error=source.error)
                if isinstance(source, EEGSource):
                    status.unit = source.unit_text()
                assembler = self._assembler
                if source is self.eeg_source and assembler is not None and assembler.preprocessor is not None:
                    status.masked = dict(assembler.signal_problems)
                    status.problem = assembler.problem or ""
                    status.delay = assembler.preprocessor.delay
                statuses.append(status)
            now = local_clock()
            if now - last_status >= STATUS_INTERVAL:
                last_status = now
                for cb in list(self._listeners.status):
                    try:
                        cb(statuses)
                    except Exception:
                        log.exception("status listener failed")

    def _run_is_over(self, source: Source) -> bool:
        """A replay or a video file played to its end ends the run; a failed source ends it only when
        no other source is still delivering (EEG and video fail independently)."""
        if source.error is None:
            return source.replay is not None or isinstance(source, VideoSource)
        return not any(s is not source and s.connected and s.error is None and not s.finished.is_set()
                       for s in self.sources)

    def _note_replay_events(self, replay: ReplayControl, state: tuple, replayed: str | None) -> tuple:
        """Pause, resume, seek and trial changes are events of the replay (logged and recorded as markers),
        not gaps in the streams."""
        now = replay.snapshot()
        generation, _, position, _, paused = now
        if replay.description != replayed:
            replayed = replay.description
            self._event("info", f"replay: {replayed}", marker=f"replay: {replayed}", truth=replay.truth)
        elif generation != state[0]:
            self._event("info", f"replay: seek to {position:.1f} s")
        if paused != state[4]:
            self._event("info", "replay paused" if paused else "replay resumed")
        return now, replayed

    def _on_prediction(self, prediction: Prediction) -> None:
        if self._dumper is not None:
            self._dumper.write(prediction)
        if self._jsonl is not None:
            self._jsonl.write(prediction)
        if self._outlet is not None:
            self._outlet.write(prediction)
        recorder = self._recorder
        if recorder is not None:
            recorder.add_prediction(prediction.to_json())
        for cb in list(self._listeners.predictions):
            try:
                cb(prediction)
            except Exception:
                log.exception("prediction listener failed")

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
        box = None
        if self._crops is not None and self._crops.last_box is not None:
            stamp, last = self._crops.last_box
            if abs(frame.timestamp - stamp) <= 1.0:
                box = last
        return frame.image, frame.timestamp, box

    # -- recording ----------------------------------------------------------------------------
    def start_recording(self, folder: Path) -> None:
        """Record EEG, frames, events and predictions into `folder` (DataError if it cannot)."""
        with self._record_lock:
            if self._recorder is not None and self._recorder.active:
                raise MilmerError(f"already recording to {self._recorder.folder}")
            eeg = self.eeg_source if self.eeg_source is not None and self.eeg_source.connected else None
            video = self.video_source if self.video_source is not None and self.video_source.connected else None
            eeg_info = None if eeg is None else {
                "channels": list(eeg.channel_names), "srate": eeg.srate, "units": "uV", "source": eeg.name,
                "source_unit": eeg.unit, "source_unit_origin": eeg.unit_origin,
                "already_filtered": list(eeg.already_filtered) if eeg.already_filtered else None,
                "already_referenced": eeg.already_referenced}
            video_info = None if video is None else {"source": video.name, "fps": video.fps}
            model_info = {"name": self.model_name, "demo_model": self.is_demo_model}
            recorder = Recorder(Path(folder), eeg_info, video_info, model_info, on_stopped=self._recording_stopped)
            recorder.start()
            if eeg is not None and eeg.buffer is not None:
                eeg.buffer.add_listener(recorder.add_eeg)
            if video is not None and video.buffer is not None:
                video.buffer.add_listener(recorder.add_frame)
            if self.replay is not None:
                recorder.add_marker(f"replay: {self.replay.description}", truth=self.replay.truth)
            self._recorder = recorder
        self._event("info", f"recording started: {folder}")

    def _recording_stopped(self, error: str | None) -> None:
        if error is not None:
            self._event("error", f"recording stopped: {error}")
        self._detach_recorder()

    def _detach_recorder(self) -> None:
        recorder = self._recorder
        if recorder is None:
            return
        for source in self.sources:
            if source.buffer is not None:
                listener = recorder.add_eeg if isinstance(source, EEGSource) else recorder.add_frame
                source.buffer.remove_listener(listener)

    def stop_recording(self) -> None:
        with self._record_lock:
            recorder = self._recorder
            if recorder is None:
                return
            self._detach_recorder()
            recorder.stop()
            self._last_recording_status = recorder.status()
            self._recorder = None
        if recorder.error is None:
            self._event("info", f"recording saved: {recorder.folder}")

    def recording_status(self) -> RecordingStatus:
        recorder = self._recorder
        if recorder is not None:
            return recorder.status()
        if self._last_recording_status is not None:
            status = self._last_recording_status
            return RecordingStatus(False, status.path, status.elapsed_s, status.free_bytes, status.error)
        return RecordingStatus(False, None, 0.0, 0, None)
