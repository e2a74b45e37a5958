"""Studies: experiments that measure what the articles claim about training.

One module per study (`regularization.py`: L2, dropout, batch norm and early stopping
on a small training set); each runs with `python -m kerasdl.studies.<name>`.
"""
