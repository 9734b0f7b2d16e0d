"""Training tier: model building, training, QAT, parity. May import TensorFlow.

Import :mod:`ich_edge.training.keras` (directly or through the other modules here) to get
TensorFlow with Keras 2 (tf_keras) selected; nothing in the runtime tier imports this package.
"""
