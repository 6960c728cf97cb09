"""tf-assign2: a Keras 3 / TensorFlow 2 port of the Rice ELEC/COMP 576 Assignment 2 starters.

Importing the package does not import TensorFlow, so CLIs can reject bad flags instantly.
"""

__version__ = "0.1.0"
