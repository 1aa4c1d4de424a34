"""`--video webcam:INDEX`: a camera through OpenCV (the source itself: `milmer_app.sources.camera`)."""

from __future__ import annotations

from dataclasses import dataclass

from milmer_app.sources.registry import BuildContext, Options, SourceKind, SourceSpec, option, register


@dataclass(frozen=True, kw_only=True)
class WebcamOptions(Options):
    index: int = option(0, "camera index", low=0, high=255)
    width: int | None = option(None, "requested frame width", above=0, high=16384, metavar="W")
    height: int | None = option(None, "requested frame height", above=0, high=16384, metavar="H")
    fps: float | None = option(None, "requested frame rate", above=0.0, high=1000.0, metavar="F")


def build_webcam(spec: SourceSpec, context: BuildContext):
    from milmer_app.sources.camera import WebcamSource

    o: WebcamOptions = spec.options
    return WebcamSource(o.index, width=o.width, height=o.height, fps=o.fps)


register(SourceKind("webcam", "video", "Camera", "a camera through OpenCV", WebcamOptions, build_webcam,
                    grammar="webcam:INDEX[,width=W,height=H,fps=F]", head="index", example="webcam:0,width=640",
                    order=10))
