"""The Milmer network, its configuration, input contract, checkpoints and backbone converter.

Import from the submodules (models.config, models.contract, models.milmer, models.factory,
models.checkpoint, models.convert, models.device); this package imports nothing heavy itself
so that the command-line tools start quickly.
"""
