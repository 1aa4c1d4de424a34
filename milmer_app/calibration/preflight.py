"""Whether a calibration session can start on the running engine, and if not, why (one line)."""

from __future__ import annotations


def calibration_problem(engine, last_prediction=None) -> str | None:
    """Why calibrating now would record nothing usable; None when it can start.

    `last_prediction`: the engine's latest Prediction (it says how many EEG channels the model got
    and whether a face was found), None when none has come yet."""
    if engine is None or engine.contract is None:
        return "no stream: connect the EEG (and camera) in the Sources panel first"
    eeg, video = engine.eeg_source, engine.video_source
    uses_eeg, uses_face = engine.uses_eeg, engine.uses_face
    if uses_eeg:
        if eeg is None or not eeg.connected or eeg.error is not None:
            why = f" ({eeg.error})" if eeg is not None and eeg.error else ""
            return f"no EEG stream{why}: calibration needs the person's EEG"
        if eeg.replay is not None:
            return f"{eeg.name} is a replay: calibrate on a live stream of the person"
        if engine.eeg_problem:
            return f"too few usable EEG channels: {engine.eeg_problem}"
    if uses_face and (video is None or not video.connected or video.error is not None):
        return "the model uses the face and no camera is connected"
    if last_prediction is None:
        return "no prediction yet: wait until the first window has filled (a few seconds)"
    if uses_eeg and last_prediction.eeg_channels_used == 0:
        return "too few usable EEG channels: the model got none in the last window"
    if uses_face and not any(last_prediction.face_mask):
        return "no face found in the camera image: sit facing the camera, with light on your face"
    return None
