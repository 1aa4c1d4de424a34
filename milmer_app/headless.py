"""milmer-app --headless: run the engine without a window until --duration, the end of a replay, or a signal."""

from __future__ import annotations

import argparse
import logging
import signal
import threading

from milmer_app.clock import local_clock
from milmer_app.engine import Engine, EngineConfig
from milmer_app.prediction import Prediction
from models.console import run_interruptible
from models.errors import SourceError

log = logging.getLogger(__name__)


class _Tally:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
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
        log.info("%s", progress_line(prediction, self._class_names()))

    def _class_names(self) -> list[str]:
        contract = self.engine.contract
        return list(contract.class_names) if contract is not None else []

    def summary(self) -> str:
        text = f"{self.count} prediction(s)"
        if self.latencies:
            ordered = sorted(self.latencies)
            text += f", latency median {ordered[len(ordered) // 2]:.3f} s"
        if self.with_truth:
            text += f", {self.correct}/{self.with_truth} match the replayed truth"
        return text


def progress_line(prediction: Prediction, class_names: list[str]) -> str:
    """One prediction as a log line: classes and the replayed truth by name, e.g.
    `[12.00, 16.00] HAHV  HAHV 0.91 LAHV 0.05 ... faces 8/8 latency 0.120 s truth HAHV`."""
    names = class_names if len(class_names) == len(prediction.probabilities) else \
        [f"class{i}" for i in range(len(prediction.probabilities))]
    probabilities = " ".join(f"{name} {p:.2f}" for name, p in zip(names, prediction.probabilities, strict=True))
    # A replay speaks in the replayed item's own time (as its file's annotations do), a live stream in the LSL clock.
    start, end = prediction.media_time or (prediction.window_start, prediction.window_end)
    line = (f"[{start:.2f}, {end:.2f}] {prediction.label}  {probabilities}  "
            f"faces {sum(prediction.face_mask)}/{len(prediction.face_mask)} latency {prediction.latency:.3f} s")
    if prediction.truth is not None:
        truth = names[prediction.truth] if 0 <= prediction.truth < len(names) else str(prediction.truth)
        line += f" truth {truth}"
    return line + (" [DEMO model]" if prediction.demo_model else "")


def run(args: argparse.Namespace) -> int:
    config = EngineConfig.from_args(args)
    engine = Engine(config)
    tally = _Tally(engine)
    engine.add_prediction_listener(tally)
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        run_interruptible(engine.start, "starting (model, sources)", "milmer-app")
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
    non_finite = engine.worker.non_finite if engine.worker is not None else 0
    model = " (DEMO model)" if engine.is_demo_model else ""
    withheld = f", {non_finite} window(s) withheld: the model's output was not finite" if non_finite else ""
    print(f"milmer-app: {tally.summary()}, {dropped} stale window(s) dropped{withheld}{model}")
    replay = engine.replay
    if tally.count == 0 and replay is not None and engine.contract is not None and engine.finished.is_set():
        print(f"milmer-app: no prediction: the replay ended ({replay.duration:.1f} s of data at --speed "
              f"{replay.speed:g}) before the model gave one; a prediction needs "
              f"{engine.contract.window_seconds:g} s of usable data (plus the EEG pipeline's delay) and a machine "
              "that keeps up with the replay")
    eeg = engine.eeg_source
    if eeg is not None and eeg.channel_names:
        converted = "" if eeg.unit == "µV" else ", converted to µV"
        print(f"milmer-app: EEG {eeg.name}: samples in {eeg.unit_text()}{converted}")
    status = engine.recording_status()
    if status.error:
        print(f"milmer-app: recording stopped early: {status.error}")
    errors = engine.source_errors
    if errors:
        # EEG and video fail independently: the run went on with what was left, and says so.
        if tally.count:
            raise SourceError(errors[0], hint=f"{tally.count} prediction(s) came from the other source alone")
        raise SourceError(errors[0])
    return 0
