"""Test-wide settings.

One thread for torch/OpenMP/BLAS (children inherit it through the environment): on a 2-core CPU
the default worker pools spin against each other, and the LM tests measured 10-20x slower.
"""

import os

for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(var, "1")
