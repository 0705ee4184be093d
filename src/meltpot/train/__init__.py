"""Training and evaluation of HDNNPs."""
