"""Checks of milmer-app's options, source specs and paths that need no heavy import.

Run by the command line before torch, Qt or liblsl load (so a typo is reported
in well under a second), and by the engine before it loads a model. Only
what can be known from the file system is checked here: whether an LSL stream
or a camera is there is found out when the source connects.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

from milmer_app.specs import SourceSpec, parse_eeg_spec, parse_spec, parse_video_spec
from models.errors import CheckpointError, MilmerError, SourceError

MIN_SPEED, MAX_SPEED = 0.01, 100.0   # --speed: a replay that can still give predictions
RECORDING_META = "meta.json"   # milmer_app.recording.META_FILE, repeated here to keep this module light


def checkpoint_files(spec: str) -> tuple[Path, Path]:
    """NAME, NAME.safetensors or NAME.json -> (NAME.safetensors, NAME.json), as models.checkpoint names them."""
    path = Path(spec).expanduser()
    if path.suffix in (".safetensors", ".json"):
        path = path.with_suffix("")
    return path.with_name(path.name + ".safetensors"), path.with_name(path.name + ".json")


def check_checkpoint(spec: str) -> None:
    """CheckpointError naming the file when a checkpoint's two files are not both there."""
    if spec == "demo":
        return
    tensors, meta = checkpoint_files(spec)
    if not meta.is_file():
        raise CheckpointError(f"{meta}: checkpoint metadata file not found",
                              hint="a checkpoint is NAME.safetensors plus NAME.json side by side")
    if not tensors.is_file():
        raise CheckpointError(f"{tensors}: checkpoint tensor file not found")


def check_recording(folder: Path) -> None:
    if not folder.is_dir() or not (folder / RECORDING_META).is_file():
        raise SourceError(f"{folder}: not a recording (no {RECORDING_META})",
                          hint="pass a folder written by milmer-app --record or the Record button")


def check_deap(spec: SourceSpec) -> None:
    """The DEAP folder, subject and presentation trial exist (the index scan reads only names and ratings)."""
    from training.deap import scan_deap
    from models.errors import DataError

    assert spec.path is not None
    try:
        index = scan_deap(spec.path)
    except DataError as exc:
        raise SourceError(f"DEAP replay: {exc}", hint=exc.hint) from None
    if spec.subject not in index.subjects:
        raise SourceError(f"DEAP replay: {spec.path} has no EEG for subject {spec.subject} (have {index.subjects})")
    trials = sorted(t.presentation_trial for t in index.trials if t.subject == spec.subject and t.presentation_trial)
    if spec.trial not in trials:
        raise SourceError(f"DEAP replay: subject {spec.subject} in {spec.path} has no presentation trial "
                          f"{spec.trial} (have {trials[:5]}{' ...' if len(trials) > 5 else ''})")


def check_brainflow_board(board: str) -> None:
    """A BrainFlow board given by name must be one BrainFlow knows (only its enum is imported, not the
    board library itself, to stay fast; milmer_app.sources.brainflow_board resolves the name the same way)."""
    if board.strip().lower() == "synthetic" or board.strip().lstrip("-").isdigit():
        return
    with warnings.catch_warnings():   # brainflow finds its library through the deprecated pkg_resources
        warnings.simplefilter("ignore")
        from brainflow.board_shim import BoardIds
    name = board.strip().upper().replace("-", "_")
    if name not in BoardIds.__members__ and f"{name}_BOARD" not in BoardIds.__members__:
        raise SourceError(f"unknown BrainFlow board '{board}'", hint="use a BoardIds number or name, e.g. board=synthetic")


def check_spec_paths(spec: SourceSpec, eeg: SourceSpec) -> None:
    """The files and folders one spec names exist and are of the right kind: its kind's own `check`
    from the source registry (`eeg`: the session's EEG spec, which some video kinds depend on)."""
    check = spec.descriptor.checker()
    if check is not None:
        check(spec, eeg)


def check_source_paths(eeg: SourceSpec, video: SourceSpec) -> None:
    """Every folder and file the two specs name exists and is of the right kind (and a BrainFlow
    board's name is known)."""
    for spec in (eeg, video):
        check_spec_paths(spec, eeg)
    if eeg.kind == "none" and video.kind == "none":
        raise SourceError("no source: both --eeg and --video are 'none'")


# -- the built-in kinds' checks (named in milmer_app/sources/kinds.py) ----------------------------
def check_deap_spec(spec: SourceSpec, eeg: SourceSpec) -> None:
    check_deap(spec)


def check_brainflow_spec(spec: SourceSpec, eeg: SourceSpec) -> None:
    check_brainflow_board(spec.typed.board)


def check_recording_spec(spec: SourceSpec, eeg: SourceSpec) -> None:
    check_recording(Path(spec.typed.path))


def check_eeg_file_spec(spec: SourceSpec, eeg: SourceSpec) -> None:
    path = Path(spec.typed.path)
    if not path.exists():
        raise SourceError(f"{path}: EEG file not found")
    if not path.is_file() and path.suffix.lower() not in (".ds", ".mff"):   # those two formats are folders
        raise SourceError(f"{path}: not an EEG file (not a regular file)")


def check_video_file_spec(spec: SourceSpec, eeg: SourceSpec) -> None:
    path = Path(spec.typed.path)
    if not path.exists():
        raise SourceError(f"{path}: video file not found")
    if not path.is_file():
        raise SourceError(f"{path}: not a video file (not a regular file)")
    aligned = getattr(spec.typed, "offset", None) is not None or getattr(spec.typed, "xdf_stream", None)
    if aligned and eeg.kind != "file":
        raise SourceError(f"video spec '{spec.text}': offset= and xdf_stream= align the video to an EEG "
                          "file; use them with --eeg file:PATH")


def check_deap_video_spec(spec: SourceSpec, eeg: SourceSpec) -> None:
    if eeg.kind not in ("deap", "demo"):
        raise SourceError("video spec 'deap' needs a DEAP EEG source (--eeg deap:DIR:SUBJECT:TRIAL)")


def check_output_path(path: Path, what: str) -> None:
    """An output path whose nearest existing ancestor is a folder (so it can be created) and that is
    not itself something else than expected."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if probe != path and not probe.is_dir():
        raise MilmerError(f"{what} {path}: {probe} is not a folder")


def check_args(args: argparse.Namespace) -> None:
    """Every option and spec of a milmer-app command line, and the paths they name."""
    for option, minimum in (("hop", None), ("speed", None), ("duration", None), ("quit_after", 0.0)):
        value = getattr(args, option, None)
        if value is None:
            continue
        flag = "--" + option.replace("_", "-")
        if minimum is None and value <= 0:
            raise MilmerError(f"{flag} must be positive, got {value:g}")
        if minimum is not None and value < minimum:
            raise MilmerError(f"{flag} must be {minimum:g} or more, got {value:g}")
    speed = getattr(args, "speed", None)
    if speed is not None and not MIN_SPEED <= speed <= MAX_SPEED:
        raise MilmerError(f"--speed must be between {MIN_SPEED:g} and {MAX_SPEED:g}, got {speed:g}",
                          hint="faster, a replay outruns the model and ends before any prediction; slower, it "
                               "hardly moves")
    if getattr(args, "export", None):
        return
    demo = bool(getattr(args, "demo", False))
    named = demo or bool(args.eeg or args.video)
    if args.headless and not named:
        raise MilmerError("no source given", hint="use --eeg SPEC and/or --video SPEC, or --demo")
    if named:
        eeg = parse_eeg_spec(args.eeg or ("demo" if demo else "none"))
        video = parse_video_spec(args.video or ("deap" if demo else "none"))
        check_source_paths(eeg, video)
    if getattr(args, "markers", None):
        parse_spec("markers", args.markers)
    if args.checkpoint:
        check_checkpoint(args.checkpoint)
    if args.record:
        record = Path(args.record).expanduser()
        if record.exists() and not record.is_dir():
            raise MilmerError(f"--record {record}: exists and is not a folder")
        if (record / RECORDING_META).exists():
            raise MilmerError(f"--record {record}: already holds a recording",
                              hint="choose a new folder for each recording")
        check_output_path(record, "--record")
    dump = getattr(args, "dump_bags", None)
    if dump:
        dump = Path(dump).expanduser()
        if dump.exists() and not dump.is_dir():
            raise MilmerError(f"--dump-bags {dump}: exists and is not a folder")
        check_output_path(dump, "--dump-bags")
    if args.predictions:
        predictions = Path(args.predictions).expanduser()
        if predictions.is_dir():
            raise MilmerError(f"--predictions {predictions}: is a folder, expected a file name")
        check_output_path(predictions, "--predictions")
