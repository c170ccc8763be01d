"""Shared set-up of the reference's tests: `pixelzoo_ref` importable from any working directory,
one thread (the tests are sized for a 2-core machine)."""
import os
import sys

import torch

REFERENCE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REFERENCE not in sys.path:
    sys.path.insert(0, REFERENCE)

torch.set_num_threads(1)
