"""Recurrent layers: Keras' layers with faster CPU schedules."""

from kerasdl.layers.recurrent.gru import GRU
from kerasdl.layers.recurrent.lstm import LSTM

__all__ = ["GRU", "LSTM"]
