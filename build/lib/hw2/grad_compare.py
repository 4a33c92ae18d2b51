"""Compatibility name of :mod:`hw2.grad_check` (the original assignment's module).

``from hw2.grad_compare import compare_layer_to_torch`` keeps working.
"""
from hw2.grad_check import compare_layer_to_torch

__all__ = ["compare_layer_to_torch"]
