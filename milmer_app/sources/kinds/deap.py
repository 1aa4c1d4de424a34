"""`--eeg deap:DIR:SUBJECT:TRIAL` and `--video deap`: a DEAP trial replayed with its own face video
(the sources themselves: `milmer_app.sources.deap_replay`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from milmer_app.sources.registry import BuildContext, OptionError, Options, SourceKind, SourceSpec, option, register
from models.errors import DataError, SourceError


@dataclass(frozen=True, kw_only=True)
class DeapOptions(Options):
    path: Path = option(help="DEAP folder (with data_preprocessed_python/ or data_preprocessed_matlab/)",
                        metavar="DIR")
    subject: int = option(help="subject number", low=1, high=999)
    trial: int = option(help="presentation trial (1-based)", low=1, high=999)


def split_deap(rest: str) -> dict[str, str]:
    parts = rest.rsplit(":", 2)
    if len(parts) != 3 or not parts[0]:
        raise OptionError("deap", "expects deap:DIR:SUBJECT:TRIAL")
    return {"path": parts[0], "subject": parts[1].strip().lower().lstrip("s") or parts[1],
            "trial": parts[2].strip().lower().lstrip("s") or parts[2]}


def unsplit_deap(options: DeapOptions) -> str:
    return f"{options.path}:{options.subject}:{options.trial}"


def check_deap(spec: SourceSpec, eeg: SourceSpec) -> None:
    """The DEAP folder, subject and presentation trial exist (the index scan reads only names and ratings)."""
    from training.deap import scan_deap

    o: DeapOptions = spec.options
    try:
        index = scan_deap(o.path)
    except DataError as exc:
        raise SourceError(f"DEAP replay: {exc}", hint=exc.hint) from None
    if o.subject not in index.subjects:
        raise SourceError(f"DEAP replay: {o.path} has no EEG for subject {o.subject} (have {index.subjects})")
    trials = sorted(t.presentation_trial for t in index.trials if t.subject == o.subject and t.presentation_trial)
    if o.trial not in trials:
        raise SourceError(f"DEAP replay: subject {o.subject} in {o.path} has no presentation trial "
                          f"{o.trial} (have {trials[:5]}{' ...' if len(trials) > 5 else ''})")


def build_deap(spec: SourceSpec, context: BuildContext):
    from milmer_app.sources.deap_replay import DeapEEGSource, DeapReplay

    o: DeapOptions = spec.options
    return DeapEEGSource(DeapReplay(o.path, o.subject, o.trial, speed=context.speed, label_rule=context.label_rule,
                                    video_offset=context.video_offset))


NEEDS_DEAP_EEG = "video spec 'deap' needs a DEAP EEG source (--eeg deap:DIR:SUBJECT:TRIAL or demo)"


def check_deap_video(spec: SourceSpec, eeg: SourceSpec) -> None:
    if eeg.kind not in ("deap", "demo"):
        raise SourceError(NEEDS_DEAP_EEG)


def build_deap_video(spec: SourceSpec, context: BuildContext):
    deap = getattr(context.eeg, "playback", None)
    if deap is None:
        raise SourceError(NEEDS_DEAP_EEG)
    from milmer_app.sources.deap_replay import DeapVideoSource

    return DeapVideoSource(deap)


register(SourceKind("deap", "eeg", "DEAP trial",
                    "a DEAP subject's presentation trial replayed in real time (or --speed); predictions carry "
                    "the true quadrant", DeapOptions, build_deap, "milmer_app.gui.source_pages:DeapPage",
                    grammar="deap:DIR:SUBJECT:TRIAL", example="deap:/data/DEAP:1:3", split=split_deap,
                    unsplit=unsplit_deap, replayed=True, check=check_deap, order=40))
register(SourceKind("deap", "video", "DEAP trial video", "the replayed DEAP trial's own face video",
                    build=build_deap_video, check=check_deap_video, order=30))
