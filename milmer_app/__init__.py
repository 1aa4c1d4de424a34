"""milmer-app: live EEG + face emotion recognition.

Sources (LSL, BrainFlow, DEAP replay, recordings; webcam, video file, DEAP video)
feed ring buffers; every hop the engine cuts the latest EEG window and the face
frames of the same span into a bag, and an inference thread runs the checkpoint
on it. `milmer_app.engine.Engine` is the API the GUI and `--headless` share.
"""
