"""The in-app calibration session: its plan of trials and stimuli, its preflight, the background run.

No Qt here; the wizard (`milmer_app/gui/calibration_wizard.py`) shows it. The marker texts it
writes are `models.calibration_protocol`'s, so a session run from experiment software and one run
by the wizard produce the same recordings.
"""
