"""Checks of milmer-app's options, source specs and paths that need no heavy import.

Run by the command line before torch, Qt or liblsl load (so a typo is reported
in well under a second), and by the engine before it loads a model. Only
what can be known from the file system is checked here: whether an LSL stream
or a camera is there is found out when the source connects.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from milmer_app.sources.paths import RECORDING_META
from milmer_app.sources.registry import check_some_source, kind_of
from milmer_app.specs import SourceSpec, parse_eeg_spec, parse_spec, parse_video_spec
from models.errors import CheckpointError, MilmerError

MIN_SPEED, MAX_SPEED = 0.01, 100.0   # --speed: a replay that can still give predictions


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


def check_spec_paths(spec: SourceSpec, eeg: SourceSpec) -> None:
    """The files and folders one spec names exist and are of the right kind: its kind's own `check`
    from the source registry (`eeg`: the session's EEG spec, which some video kinds depend on)."""
    check = kind_of(spec).checker()
    if check is not None:
        check(spec, eeg)


def check_source_paths(eeg: SourceSpec, video: SourceSpec) -> None:
    """Every folder and file the two specs name exists and is of the right kind (and a BrainFlow
    board's name is known)."""
    for spec in (eeg, video):
        check_spec_paths(spec, eeg)
    check_some_source(eeg, video)


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
