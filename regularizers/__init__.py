"""Regularizers for any PyTensor graph."""
