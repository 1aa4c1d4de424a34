"""milmer-app --headless: run the engine without a window until --duration, the end of a replay, or a signal."""

from __future__ import annotations

import argparse
import logging
import signal
import threading

from milmer_app.clock import local_clock
from milmer_app.engine import Engine, EngineConfig
from milmer_app.prediction import Prediction
from models.errors import SourceError

log = logging.getLogger(__name__)


class _Tally:
    def __init__(self) -> None:
        self.count = 0
        self.with_truth = 0
        self.correct = 0
        self.latencies: list[float] = []

    def __call__(self, prediction: Prediction) -> None:
        self.count += 1
        self.latencies.append(prediction.latency)
        if prediction.truth is not None:
            self.with_truth += 1
            self.correct += int(prediction.truth == prediction.quadrant)
        truth = f" truth {prediction.truth}" if prediction.truth is not None else ""
        log.info("[%.2f, %.2f] %s p=%s faces %d/%d latency %.3f s%s%s",
                 prediction.window_start, prediction.window_end, prediction.label,
                 "/".join(f"{p:.2f}" for p in prediction.probabilities), sum(prediction.face_mask),
                 len(prediction.face_mask), prediction.latency, truth, " [DEMO model]" if prediction.demo_model else "")

    def summary(self) -> str:
        text = f"{self.count} prediction(s)"
        if self.latencies:
            ordered = sorted(self.latencies)
            text += f", latency median {ordered[len(ordered) // 2]:.3f} s"
        if self.with_truth:
            text += f", {self.correct}/{self.with_truth} match the replayed truth"
        return text


def run(args: argparse.Namespace) -> int:
    config = EngineConfig.from_args(args)
    engine = Engine(config)
    tally = _Tally()
    engine.add_prediction_listener(tally)
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        engine.start()
        started = local_clock()
        while not stop.wait(0.1):
            if args.duration is not None and local_clock() - started >= args.duration:
                break
            if engine.finished.is_set():
                log.info("a source has ended")
                break
    except KeyboardInterrupt:
        log.info("interrupted")
    finally:
        engine.stop()
        signal.signal(signal.SIGTERM, previous)
    dropped = engine.worker.dropped if engine.worker is not None else 0
    model = " (DEMO model)" if engine.is_demo_model else ""
    print(f"milmer-app: {tally.summary()}, {dropped} stale window(s) dropped{model}")
    eeg = engine.eeg_source
    if eeg is not None and eeg.channel_names:
        converted = "" if eeg.unit == "µV" else ", converted to µV"
        print(f"milmer-app: EEG {eeg.name}: samples in {eeg.unit_text()}{converted}")
    status = engine.recording_status()
    if status.error:
        print(f"milmer-app: recording stopped early: {status.error}")
    errors = engine.source_errors
    if errors:
        raise SourceError(errors[0])
    return 0
