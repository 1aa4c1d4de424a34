"""Where predictions go besides the callbacks: a JSON-lines file and an LSL outlet."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pylsl

from milmer_app.demo import DEMO_NOTICE
from milmer_app.prediction import Prediction
from models import strict_json
from models.errors import DataError

log = logging.getLogger(__name__)


class JsonlWriter:
    """Appends one JSON object per prediction, flushed line by line."""

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = self.path.open("a", encoding="utf-8")
        except OSError as exc:
            raise DataError(f"predictions file {self.path}: cannot open for writing ({exc.strerror or exc})") from exc
        self._lock = threading.Lock()
        self.error: str | None = None

    def write(self, prediction: Prediction) -> None:
        if self.error is not None:
            return
        with self._lock:
            try:
                self._handle.write(strict_json.dumps(prediction.to_json()) + "\n")
                self._handle.flush()
            except OSError as exc:
                self.error = f"predictions file {self.path}: {exc.strerror or exc}"
                log.error("%s; no more predictions are written to it", self.error)

    def close(self) -> None:
        with self._lock:
            try:
                self._handle.close()
            except OSError:
                log.warning("predictions file %s did not close cleanly", self.path, exc_info=True)


class LslPredictionOutlet:
    """An LSL stream (type "Emotion", irregular rate) with one sample per prediction.

    Channels: class index, one probability per class, latency, window start and end;
    the sample's timestamp is the window's end, so recorders line it up with the EEG
    it was computed from.
    """

    def __init__(self, name: str, class_names: list[str], model_name: str, demo_model: bool):
        self.labels = ["class", *[f"p_{c}" for c in class_names], "latency", "window_start", "window_end"]
        info = pylsl.StreamInfo(name, "Emotion", len(self.labels), pylsl.IRREGULAR_RATE, pylsl.cf_double64,
                                f"milmer-{name}")
        channels = info.desc().append_child("channels")
        for label in self.labels:
            channel = channels.append_child("channel")
            channel.append_child_value("label", label)
            channel.append_child_value("unit", "s" if label in ("latency", "window_start", "window_end") else "")
        model = info.desc().append_child("model")
        model.append_child_value("name", model_name)
        model.append_child_value("classes", ",".join(class_names))
        model.append_child_value("demo_model", "true" if demo_model else "false")
        if demo_model:
            model.append_child_value("note", DEMO_NOTICE)
        self._outlet = pylsl.StreamOutlet(info)

    def write(self, prediction: Prediction) -> None:
        sample = [float(prediction.quadrant), *prediction.probabilities, prediction.latency,
                  prediction.window_start, prediction.window_end]
        self._outlet.push_sample(sample, prediction.window_end)

    def close(self) -> None:
        del self._outlet


class PredictionOutputs:
    """Every output a run was asked for: `--predictions` (JSON lines), `--lsl-outlet`, `--dump-bags`."""

    def __init__(self) -> None:
        self.jsonl: JsonlWriter | None = None
        self.outlet: LslPredictionOutlet | None = None
        self.dumper = None

    def open(self, config, contract, model_name: str, demo_model: bool, source_rate: float) -> None:
        """Open what `config` (an EngineConfig) names, for a model with input `contract`."""
        if config.predictions is not None:
            self.jsonl = JsonlWriter(config.predictions)
        if config.lsl_outlet:
            self.outlet = LslPredictionOutlet(config.lsl_outlet, list(contract.class_names), model_name, demo_model)
        if config.dump_bags is not None:
            from milmer_app.bag_dump import BagDumper

            self.dumper = BagDumper(config.dump_bags, list(contract.eeg_channels), source_rate)

    def write(self, prediction: Prediction) -> None:
        for output in (self.dumper, self.jsonl, self.outlet):
            if output is not None:
                output.write(prediction)

    def close(self) -> None:
        for output in (self.jsonl, self.outlet):
            if output is not None:
                output.close()
        self.jsonl = self.outlet = self.dumper = None
