"""milmer-app window figures: redraws per second and sample-to-screen latency under full load.

Load: a real 32-channel LSL stream at 128 Hz (Geneva labels) pushed from a thread, a
640 x 480 video file played at 30 fps as the camera (a face the detector finds), and
inference every second. The window runs offscreen unless QT_QPA_PLATFORM says otherwise.

Figures:
- redraws/s: paint events of the EEG trace plot and of the camera view, per second of wall time;
- latency: at each EEG paint, LSL clock now minus the LSL timestamp of the newest sample drawn
  (median and 95th percentile), i.e. from a sample's LSL timestamp to its appearance on screen;
- CPU: process CPU seconds per wall second (2.0 = both cores of a 2-core machine busy).

Usage: .venv/bin/python bench/gui.py [--seconds 20] [--warmup 5] [--checkpoint demo|PATH]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("LSLAPICFG", str(ROOT / "resources" / "lsl_api.cfg"))

import numpy as np

SRATE = 128.0
CHUNK = 4            # samples per push: a chunk every 31 ms, like a typical amplifier driver
FPS = 30.0


def write_face_video(path: Path, seconds: float, size=(640, 480)) -> None:
    """A face (scikit-image's astronaut portrait) drifting slowly over a grey background."""
    import cv2
    from skimage import data

    portrait = cv2.cvtColor(np.ascontiguousarray(data.astronaut()[0:260, 120:340]), cv2.COLOR_RGB2BGR)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, size)
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {path}")
    height, width = portrait.shape[:2]
    for index in range(int(seconds * FPS)):
        frame = np.full((size[1], size[0], 3), 110, np.uint8)
        x = int(200 + 30 * np.sin(index / 40.0))
        frame[100:100 + height, x:x + width] = portrait
        writer.write(frame)
    writer.release()


class EegOutlet:
    """A real LSL outlet with 32 Geneva-labelled channels, fed at the nominal rate from a thread."""

    def __init__(self, name: str):
        import pylsl

        from models.pipeline.eeg import GENEVA_CHANNELS

        info = pylsl.StreamInfo(name, "EEG", len(GENEVA_CHANNELS), SRATE, pylsl.cf_float32, f"{name}-id")
        channels = info.desc().append_child("channels")
        for label in GENEVA_CHANNELS:
            channels.append_child("channel").append_child_value("label", label).append_child_value("unit", "microvolts")
        self.source_id = f"{name}-id"
        self.outlet = pylsl.StreamOutlet(info, CHUNK)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-eeg", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import pylsl

        rng = np.random.default_rng(0)
        start = pylsl.local_clock()
        sent = 0
        while not self._stop.is_set():
            due = start + (sent + CHUNK) / SRATE
            self._stop.wait(max(0.0, due - pylsl.local_clock()))
            t = (sent + np.arange(CHUNK)) / SRATE
            chunk = rng.normal(scale=8.0, size=(CHUNK, 32)) + 20 * np.sin(2 * np.pi * 10 * t)[:, None]
            self.outlet.push_chunk(chunk.astype(np.float32).tolist(), pylsl.local_clock())
            sent += CHUNK

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def tiny_checkpoint(folder: Path) -> Path:
    import torch

    from models.checkpoint import save_checkpoint
    from models.config import MilmerConfig
    from models.contract import InputContract
    from models.milmer import Milmer

    torch.manual_seed(0)
    config = MilmerConfig.tiny()
    tensors, _ = save_checkpoint(folder / "tiny_untrained", Milmer(config), InputContract.for_deap(config))
    return tensors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds after the first prediction before measuring")
    parser.add_argument("--checkpoint", default="demo",
                        help="'demo' (falls back to an untrained tiny model when the demo model is missing) or a path")
    parser.add_argument("--screenshot", type=Path, help="save the window as PNG at the end of the measurement")
    options = parser.parse_args()

    import pylsl
    from PySide6 import QtCore

    from milmer_app.cli import build_parser
    from milmer_app.demo import DEMO_CHECKPOINT
    from milmer_app.gui.app import application, open_window
    from milmer_app.gui.main_window import grab_png

    workdir = Path(tempfile.mkdtemp(prefix="milmer-bench-gui-"))
    QtCore.QSettings.setPath(QtCore.QSettings.Format.IniFormat, QtCore.QSettings.Scope.UserScope, str(workdir))
    checkpoint = options.checkpoint
    if checkpoint == "demo" and not DEMO_CHECKPOINT.with_suffix(".safetensors").is_file():
        checkpoint = str(tiny_checkpoint(workdir))
        print("note: demo model missing; using an untrained tiny-preset model (same architecture and cost)")
    video = workdir / "face.avi"
    write_face_video(video, options.seconds + options.warmup + 60.0)

    app = application()
    outlet = EegOutlet("milmer-bench-eeg")
    args = build_parser().parse_args(["--eeg", f"lsl:source_id={outlet.source_id}", "--video", f"file:{video}",
                                      "--checkpoint", checkpoint, "--device", "cpu"])
    window = open_window(args)

    eeg_paints: list[float] = []
    frame_paints = [0]
    latencies: list[float] = []
    measuring = [False]

    class PaintCounter(QtCore.QObject):
        def eventFilter(self, obj, event):
            if measuring[0] and event.type() == QtCore.QEvent.Type.Paint:
                if obj is eeg_viewport and window.eeg_view.drawn_until is not None:
                    now = pylsl.local_clock()
                    eeg_paints.append(now)
                    latencies.append(now - window.eeg_view.drawn_until)
                elif obj is window.face_view.frame:
                    frame_paints[0] += 1
            return False

    draw_costs: list[float] = []

    def timed_draw() -> None:
        start = time.perf_counter()
        window.draw_fast()
        if measuring[0]:
            draw_costs.append(time.perf_counter() - start)

    window.draw_timer.timeout.disconnect(window.draw_fast)
    window.draw_timer.timeout.connect(timed_draw)
    eeg_viewport = window.eeg_view.plot.viewport()
    counter = PaintCounter()
    eeg_viewport.installEventFilter(counter)
    window.face_view.frame.installEventFilter(counter)

    def run_until(condition, timeout: float) -> bool:
        """Run the Qt event loop (as app.exec does) until `condition()` holds or `timeout` passes."""
        loop = QtCore.QEventLoop()
        poll = QtCore.QTimer()
        poll.timeout.connect(lambda: condition() and loop.quit())
        poll.start(50)
        QtCore.QTimer.singleShot(int(timeout * 1000), loop.quit)
        loop.exec()
        poll.stop()
        return bool(condition())

    try:
        if not run_until(lambda: window.emotion_view.predictions_shown > 0 or window.last_error is not None, 120):
            print("error: no prediction within 120 s")
            return 1
        if window.last_error:
            print(f"error: {window.last_error}")
            return 1
        run_until(lambda: False, options.warmup)
        predictions_before = window.emotion_view.predictions_shown
        cpu_before, wall_before = time.process_time(), time.monotonic()
        measuring[0] = True
        run_until(lambda: False, options.seconds)
        measuring[0] = False
        if options.screenshot is not None:
            grab_png(window, options.screenshot)
        wall = time.monotonic() - wall_before
        cpu = time.process_time() - cpu_before
        predictions = window.emotion_view.predictions_shown - predictions_before
    finally:
        window.close()
        outlet.stop()

    print(f"machine: {os.cpu_count()} CPU core(s), Qt platform {app.platformName()}, model {Path(checkpoint).stem}, "
          f"{options.seconds:g} s measured")
    print(f"EEG trace redraws/s (32 ch x 128 Hz): {len(eeg_paints) / wall:6.1f}   (target >= 30)")
    print(f"camera view redraws/s (30 fps file):  {frame_paints[0] / wall:6.1f}")
    if latencies:
        ms = sorted(1000 * x for x in latencies)
        print(f"sample -> screen latency, ms:         median {statistics.median(ms):6.1f}   "
              f"p95 {ms[int(0.95 * (len(ms) - 1))]:6.1f}   (target median < 100)")
    if draw_costs:
        print(f"draw ticks/s: {len(draw_costs) / wall:6.1f}   GUI-thread cost per tick: median "
              f"{1000 * statistics.median(draw_costs):.1f} ms, max {1000 * max(draw_costs):.1f} ms")
    print(f"predictions/s: {predictions / wall:.2f}   process CPU: {cpu / wall:.2f} core(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
