"""The names of the evaluation protocols, which `training.splits` implements.

Kept apart from the splits themselves so that the command line can offer and check them
without importing numpy (`milmer-train --help` and argument errors stay fast).
"""

PROTOCOLS = ("paper", "trial", "loso")
PAPER_LEAKY_LABEL = "paper (leaky: windows of one trial in train and test)"
