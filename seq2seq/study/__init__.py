"""``python -m seq2seq.study``: RNN vs GRU vs LSTM, directions, depth, clipping, residuals and
attention, trained on the same data at the same budget, with gradient flow through time,
gate saturation and a long-dependency probe. See ``seq2seq.study.run`` for the folder layout.
"""
