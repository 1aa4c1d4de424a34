"""Video from a webcam (OpenCV index) or a video file played at its own frame rate.

Each frame is stamped with the LSL clock when it is grabbed, before decoding.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2

from milmer_app.clock import local_clock
from milmer_app.library_logs import configure_opencv
from milmer_app.sources.base import VideoSource
from milmer_app.sources.paths import check_video_file
from models.errors import SourceError

log = logging.getLogger(__name__)
configure_opencv(cv2)   # every video source imports this module before it opens anything


def open_video_file(path: Path) -> tuple[cv2.VideoCapture, float]:
    """An open capture of a video file and its frame rate; a clear error if OpenCV cannot read it."""
    capture = cv2.VideoCapture(str(path))
    fps = capture.get(cv2.CAP_PROP_FPS)
    if not capture.isOpened() or not fps or fps <= 0:
        capture.release()
        raise SourceError(f"{path}: OpenCV cannot read this video (or it has no frame rate)")
    return capture, float(fps)


class WebcamSource(VideoSource):
    """Camera `index`; `width`, `height`, `fps`: what to ask the camera for (None: its own)."""

    def __init__(self, index: int = 0, *, width: int | None = None, height: int | None = None,
                 fps: float | None = None):
        self.index = int(index)
        super().__init__(f"webcam {self.index}")
        self.requested = {key: float(value) for key, value in (("width", width), ("height", height), ("fps", fps))
                          if value is not None}
        self._capture: cv2.VideoCapture | None = None
        self._failing = False

    def _open(self) -> None:
        capture = cv2.VideoCapture(self.index)
        if not capture.isOpened():
            capture.release()
            raise SourceError(f"webcam {self.index}: cannot open the camera",
                              hint="check the index (webcam:0, webcam:1, ...) and that no other program uses it")
        for key, prop in (("width", cv2.CAP_PROP_FRAME_WIDTH), ("height", cv2.CAP_PROP_FRAME_HEIGHT),
                          ("fps", cv2.CAP_PROP_FPS)):
            if key in self.requested:
                capture.set(prop, self.requested[key])
        self.fps = float(capture.get(cv2.CAP_PROP_FPS) or 0) or self.requested.get("fps", 30.0)
        self._capture = capture
        log.info("webcam %d: %dx%d at %g fps", self.index, int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
                 int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)), self.fps)

    def _pull(self) -> bool:
        assert self._capture is not None
        if not self._capture.grab():
            if not self._failing:
                self._failing = True
                self.emit_event("warning", f"{self.name}: the camera delivers no frames")
            self._stop.wait(0.2)
            return True
        stamp = local_clock()
        ok, image = self._capture.retrieve()
        if ok:
            self._failing = False
            self.push(image, stamp)
        return True

    def _close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


class VideoFileSource(VideoSource):
    """A video file played once at its frame rate, as if it were a camera."""

    def __init__(self, path: Path):
        self.path = Path(path)
        super().__init__(f"video {self.path.name}")
        self._capture: cv2.VideoCapture | None = None
        self._start = 0.0
        self._index = 0

    def _open(self) -> None:
        check_video_file(self.path)
        self._capture, self.fps = open_video_file(self.path)
        self._start = local_clock()
        self._index = 0

    def _pull(self) -> bool:
        assert self._capture is not None
        due = self._start + self._index / self.fps
        wait = due - local_clock()
        if wait > 0:
            self._stop.wait(min(wait, 0.1))
            return True
        if not self._capture.grab():
            log.info("%s: end of file", self.name)
            return False
        stamp = local_clock()
        ok, image = self._capture.retrieve()
        if ok:
            self.push(image, stamp)
        self._index += 1
        return True

    def _close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None
