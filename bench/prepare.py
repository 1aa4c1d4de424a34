"""Throughput of ``prepare`` on synthetic DEAP at the real sizes: EEG windows/s and face frames/s.

EEG: subjects x 40 trials x 63 s x 40 channels at 128 Hz (DEAP's .dat size), no video.
Faces: trials of 720 x 576 video at 50 fps (DEAP's face video size), MJPG-coded.
Prints wall-clock rates of ``prepare`` with N workers and the projected time for all of
DEAP (32 subjects' EEG; 22 subjects x 40 trials of video), plus the CPU time per window
and per face frame measured in one process, which projects the same work onto N cores
that nobody else is using (wall-clock rates suffer when the machine is shared). Compares
seeking to every wanted frame with grabbing through the frames in between, side by side.

    .venv/bin/python bench/prepare.py [--subjects 2] [--video-trials 2] [--workers 2]
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path

import cv2

from training.deap import scan_deap
from training.prepare import FaceJob, FaceSpec, PrepareConfig, crop_trial_faces, prepare_cache, window_subject_eeg
from training.synth import write_synthetic_deap
from training.windows import WindowSpec

DEAP_WINDOWS = 32 * 40 * 20
DEAP_FACE_FRAMES = 22 * 40 * 20 * 10
EEG_TARGET_MIN = 2.0
FACE_TARGET_H = 1.0


def _cpu_per_window(root: Path, scratch: Path) -> float:
    index = scan_deap(root)
    started = time.process_time()
    work = window_subject_eeg(index, index.subjects[0], scratch, WindowSpec())
    return (time.process_time() - started) / len(work.meta)


def _cpu_per_face_frame(root: Path, face: FaceSpec) -> float:
    """CPU time of one trial's face work in this process, per frame."""
    from training.deap import load_subject_eeg

    cv2.setNumThreads(1)
    index = scan_deap(root)
    record = index.trials[0]
    spec = WindowSpec()
    starts = spec.window_starts(load_subject_eeg(index, record.subject).shape[-1])
    job = FaceJob(record.subject, record.experiment_id, record.video, 0, tuple(float(s) for s in starts))
    started = time.process_time()
    result = crop_trial_faces(job, spec, face, seek_gap=30)
    return (time.process_time() - started) / result.counts["frames_requested"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subjects", type=int, default=2, help="subjects of EEG (40 trials x 63 s each)")
    parser.add_argument("--video-trials", type=int, default=2, help="trials of 720x576 50 fps video")
    parser.add_argument("--video-seconds", type=float, default=30.0, help="seconds per video trial after the baseline")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--face-size", type=int, default=224)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # the DEAP scan warns that bench data has no video: expected
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start; {args.workers} worker(s)")

    with tempfile.TemporaryDirectory(prefix="milmer-bench-") as tmp:
        tmp = Path(tmp)
        write_synthetic_deap(tmp / "eeg", subjects=args.subjects, trials=40, seconds=60.0, video_subjects=0)
        started = time.perf_counter()
        eeg = prepare_cache(tmp / "eeg", tmp / "cache-eeg", PrepareConfig(workers=args.workers), progress=False)
        elapsed = time.perf_counter() - started
        rate = eeg.summary["windows"] / elapsed
        cpu = _cpu_per_window(tmp / "eeg", tmp / "scratch")
        print(f"EEG: {eeg.summary['windows']} windows in {elapsed:.1f} s = {rate:.0f} windows/s wall; "
              f"all 32 DEAP subjects: {DEAP_WINDOWS / rate / 60:.1f} min wall (target < {EEG_TARGET_MIN:.0f} min)")
        print(f"EEG: {cpu * 1e3:.2f} ms CPU per window -> {DEAP_WINDOWS * cpu / args.workers / 60:.1f} min "
              f"on {args.workers} free core(s)")

        write_synthetic_deap(tmp / "video", subjects=1, trials=args.video_trials, seconds=args.video_seconds,
                             video_size=(720, 576), fps=50.0)
        face = FaceSpec(size=args.face_size)
        rates = {}
        for label, seek_gap in (("seek to every wanted frame", 0), ("grab through the frames between", 1_000_000)):
            config = PrepareConfig(face=face, workers=args.workers, seek_gap=seek_gap)
            started = time.perf_counter()
            faces = prepare_cache(tmp / "video", tmp / f"cache-{seek_gap}", config, progress=False)
            elapsed = time.perf_counter() - started
            frames = faces.summary["face_frames_requested"]
            rates[label] = frames / elapsed
            print(f"faces ({label}): {frames} frames in {elapsed:.1f} s = {rates[label]:.1f} frames/s wall, "
                  f"{faces.summary['faces_found']} faces found; 22 DEAP subjects: "
                  f"{DEAP_FACE_FRAMES / rates[label] / 3600:.2f} h wall (target < {FACE_TARGET_H:.0f} h)")
        seek, grab = rates.values()
        print(f"faces: seek / grab-through throughput ratio {seek / grab:.2f}")
        cpu = _cpu_per_face_frame(tmp / "video", face)
        print(f"faces: {cpu * 1e3:.1f} ms CPU per frame (decode + detect + crop) -> "
              f"{DEAP_FACE_FRAMES * cpu / args.workers / 3600:.2f} h on {args.workers} free core(s)")


if __name__ == "__main__":
    main()
