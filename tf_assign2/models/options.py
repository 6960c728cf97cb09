"""The values of the model settings ``cell`` and ``init``: read by the schema (their choices) and by the
builders, so that neither imports the other."""

CELLS = ("rnn", "lstm", "gru")  # BasicRNNCell, BasicLSTMCell, GRUCell
INITS = ("starter", "keras")  # the starters' truncated/random normal weights, or Keras' Glorot
