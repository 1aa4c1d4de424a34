"""`--eeg demo`: the built-in synthetic subject, replayed with its face video."""

from __future__ import annotations

from milmer_app.sources.registry import BuildContext, SourceKind, SourceSpec, register


def build_demo(spec: SourceSpec, context: BuildContext):
    from milmer_app.demo import DEMO_SUBJECT, demo_data_dir
    from milmer_app.sources.deap_replay import DeapEEGSource, DeapReplay

    replay = DeapReplay(demo_data_dir(), DEMO_SUBJECT, 1, speed=context.speed, label_rule=context.label_rule,
                        advance=True, video_offset=context.video_offset)
    return DeapEEGSource(replay)


register(SourceKind("demo", "eeg", "Demo (synthetic subject)",
                    "the built-in demo: a synthetic subject replayed with its face video (use with --video deap "
                    "and the demo model, or just --demo)", build=build_demo, replayed=True, order=10))
