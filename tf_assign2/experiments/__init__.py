"""Experiments: keras-tuner searches (``tune``), sweeps of runs (``sweep``) and the assignment report (``report``).

Each trains only through ``training.trainer.Trainer`` (directly, or through the training command
line for sweep entries); none writes a run's recipe of its own.
"""
