"""Live engine figures: prediction latency with and without the embedding cache, acquisition latency, CPU use.

Set-up, as the issue asks: 32 EEG channels at 128 Hz from a real LSL outlet on
this machine, plus a 30 fps "camera" (a synthetic-face video file written here,
played at its frame rate). Each configuration runs the whole engine (LSL inlet,
ring buffers, face detection and cropping, model, outputs) for `--seconds`.

- prediction latency: emitted - window end, median and p95;
- acquisition-to-buffer latency: time a chunk enters the EEG ring buffer minus
  the LSL timestamp of its last sample (the outlet stamps samples when it pushes them);
  for video: buffer time minus grab time (decoding);
- CPU: process CPU seconds per wall second (2.0 = both cores busy).

Models are untrained (weights do not change the cost). Nothing is downloaded.

    .venv/bin/python bench/live.py                      # tiny and paper, cache on and off, 25 s each
    .venv/bin/python bench/live.py --presets paper --seconds 40
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import sys
import tempfile
import threading
from pathlib import Path

os.environ.setdefault("LSLAPICFG", str(Path(__file__).resolve().parents[1] / "resources" / "lsl_api.cfg"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from milmer_app.clock import local_clock  # noqa: E402
from milmer_app.engine import Engine, EngineConfig  # noqa: E402
from milmer_app.lsl_player import LslPlayer  # noqa: E402
from models.checkpoint import save_checkpoint  # noqa: E402
from models.contract import GENEVA_CHANNELS, InputContract  # noqa: E402
from models.factory import preset_config  # noqa: E402
from models.milmer import Milmer  # noqa: E402
from training.synth import TrialVideoComposer, write_trial_video  # noqa: E402

EEG_RATE = 128.0
CAMERA_FPS = 30.0


def write_camera_video(path: Path, seconds: float) -> None:
    composer = TrialVideoComposer(quadrant=0, strength=1.0, size=(640, 480), rng=np.random.default_rng(0))
    write_trial_video(path, composer, seconds, CAMERA_FPS)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def run_config(checkpoint: Path, video: Path, seconds: float, cache: bool, player: LslPlayer) -> dict:
    engine = Engine(EngineConfig(eeg=f"lsl:name={player.name}", video=f"file:{video}", checkpoint=str(checkpoint),
                                 hop=1.0, device="cpu", embedding_cache=cache))
    latencies: list[float] = []
    eeg_delays: list[float] = []
    frame_delays: list[float] = []
    lock = threading.Lock()

    def on_prediction(prediction) -> None:
        with lock:
            latencies.append(prediction.latency)

    engine.add_prediction_listener(on_prediction)
    engine.start()
    engine.eeg_source.buffer.add_listener(lambda chunk, times: eeg_delays.append(local_clock() - times[-1]))
    engine.video_source.buffer.add_listener(lambda frame: frame_delays.append(local_clock() - frame.timestamp))
    warm_up = 4.0     # the first window needs 3 s of data
    threading.Event().wait(warm_up)
    with lock:
        latencies.clear()
    usage0, wall0 = resource.getrusage(resource.RUSAGE_SELF), local_clock()
    threading.Event().wait(seconds)
    usage1, wall1 = resource.getrusage(resource.RUSAGE_SELF), local_clock()
    engine.stop()
    cpu = (usage1.ru_utime - usage0.ru_utime + usage1.ru_stime - usage0.ru_stime) / (wall1 - wall0)
    predictor = engine.worker.predictor
    return {
        "predictions": len(latencies),
        "per_second": len(latencies) / (wall1 - wall0),
        "median": percentile(latencies, 50), "p95": percentile(latencies, 95),
        "dropped": engine.worker.dropped,
        "eeg_median_ms": 1000 * percentile(eeg_delays, 50), "eeg_p95_ms": 1000 * percentile(eeg_delays, 95),
        "frame_median_ms": 1000 * percentile(frame_delays, 50),
        "cpu": cpu,
        "hits": predictor.cache.hits if predictor.cache else 0,
        "misses": predictor.cache.misses if predictor.cache else 0,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["tiny", "paper"], choices=["tiny", "paper"])
    parser.add_argument("--seconds", type=float, default=25.0, help="measured seconds per configuration")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    print(f"machine: {os.cpu_count()} CPU core(s), torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"CUDA {'yes' if torch.cuda.is_available() else 'no'} (the engine runs on the CPU here)")
    print(f"set-up: 32 EEG channels x {EEG_RATE:g} Hz over LSL + {CAMERA_FPS:g} fps 640x480 camera (video file), "
          f"hop 1 s, {args.seconds:g} s measured per row")
    with tempfile.TemporaryDirectory(prefix="milmer-bench-") as tmp:
        tmp_path = Path(tmp)
        video = tmp_path / "camera.avi"
        write_camera_video(video, args.seconds + 30)
        rng = np.random.default_rng(0)
        player = LslPlayer((rng.standard_normal((32, int(EEG_RATE * 20))) * 20).astype(np.float32), EEG_RATE,
                           list(GENEVA_CHANNELS), name="MilmerBenchEEG")
        player.start()
        header = (f"{'preset':6} {'cache':5} {'pred/s':>6} {'lat med':>8} {'lat p95':>8} {'dropped':>7} "
                  f"{'eeg acq med/p95 ms':>19} {'frame ms':>8} {'CPU cores':>9} {'cache hit':>9}")
        print(header)
        try:
            for preset in args.presets:
                config = preset_config(preset)
                torch.manual_seed(0)
                checkpoint = tmp_path / preset
                save_checkpoint(checkpoint, Milmer(config), InputContract.for_deap(config))
                for cache in (True, False):
                    r = run_config(checkpoint, video, args.seconds, cache, player)
                    total = r["hits"] + r["misses"]
                    hit = f"{r['hits'] / total:.0%}" if total else "-"
                    print(f"{preset:6} {'on' if cache else 'off':5} {r['per_second']:6.2f} {r['median']:7.3f}s "
                          f"{r['p95']:7.3f}s {r['dropped']:7d} {r['eeg_median_ms']:9.1f}/{r['eeg_p95_ms']:<9.1f} "
                          f"{r['frame_median_ms']:8.1f} {r['cpu']:9.2f} {hit:>9}", flush=True)
        finally:
            player.stop()
    print("target (paper preset, CPU): one prediction per second, p95 latency under 1 s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
