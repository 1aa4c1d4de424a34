"""Personal calibration: adapt a base checkpoint to one person from their calibration recordings.

`inputs` checks the recordings, their channels and their calibration trials (read with
`models.calibration_protocol`) before anything heavy loads, `windows` cuts the trials' windows
through the contract's transform, `split` holds test trials out, `adapt` trains, `judge` scores
both models and decides, `report` writes the report and `run` ties them together for
`milmer-train calibrate`.
"""
