"""DEAP files: safe readers, video pairing through the ratings CSV, and a scan of what is there."""

from training.deap.index import (
    DeapIndex,
    TrialData,
    TrialRecord,
    find_ratings_file,
    get_trial,
    load_subject,
    load_subject_eeg,
    load_trial_eeg,
    scan_deap,
)
from training.deap.readers import (
    DEAP_CHANNELS,
    DEAP_RATE,
    EEG_CHANNELS,
    RatingProblem,
    RatingRow,
    RatingsTable,
    SubjectArrays,
    read_bdf_trials,
    read_dat,
    read_mat,
    read_ratings,
    read_ratings_table,
    read_subject_file,
)
from training.deap.safe_pickle import load_numpy_pickle

__all__ = [
    "DEAP_CHANNELS", "DEAP_RATE", "EEG_CHANNELS", "DeapIndex", "RatingProblem", "RatingRow", "RatingsTable",
    "SubjectArrays", "TrialData",
    "TrialRecord", "find_ratings_file", "get_trial", "load_numpy_pickle", "load_subject", "load_subject_eeg",
    "load_trial_eeg", "read_bdf_trials", "read_dat", "read_mat", "read_ratings", "read_ratings_table",
    "read_subject_file", "scan_deap",
]
