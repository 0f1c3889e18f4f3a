"""Test-wide settings.

One thread for torch/OpenMP/BLAS (children inherit it through the environment): on a 2-core CPU
the default worker pools spin against each other, and the LM tests measured 10-20x slower.
"""

import os

import pytest

for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(var, "1")


@pytest.fixture(scope="module")
def java_cache(tmp_path_factory):
    """One A* cache folder per test module, so FastAstar is compiled once for all its tests."""
    folder = tmp_path_factory.mktemp("rlcreate-cache")
    old = os.environ.get("RLCREATE_CACHE")
    os.environ["RLCREATE_CACHE"] = str(folder)
    yield folder
    if old is None:
        os.environ.pop("RLCREATE_CACHE", None)
    else:
        os.environ["RLCREATE_CACHE"] = old
