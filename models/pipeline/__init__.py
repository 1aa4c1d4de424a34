"""The one input pipeline: raw EEG and video frames -> model input, as the input contract says.

Training (`training/`) and the live app (`milmer_app/`) both import from here,
so a checkpoint's input is reproduced by the same code wherever it runs:
`eeg` (filters, resampling, reference), `channels` (label matching, aliases,
montages), `faces` (detection and cropping), `labels` (the label rule) and
`streaming` (the stateful live transform). Modules are imported on demand:
this package stays light.
"""
