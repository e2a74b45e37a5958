"""Recurrent layers: Keras' layers with faster CPU schedules."""

from kerasdl.layers.recurrent.lstm import LSTM

__all__ = ["LSTM"]
