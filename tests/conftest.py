"""Shared test set-up: Keras runs on the torch backend (the oracle extra installs no TensorFlow)."""
import os

os.environ.setdefault("KERAS_BACKEND", "torch")
