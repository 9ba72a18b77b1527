"""Recurrent cells as pure step functions: `cells.LSTM`, `cells.GRU`, `cells.LTMT`, `cells.get`.

base.py holds the `Cell` value and the registry; lstm.py, gru.py and ltmt.py one cell each.
"""
from ltmjax.cells.base import CELLS, GRU, LSTM, LTMT, Cell, get, make_ltmt

__all__ = ['CELLS', 'GRU', 'LSTM', 'LTMT', 'Cell', 'get', 'make_ltmt']
