"""How many threads numpy's BLAS uses in a MUSUBI process: a deliberate number, set once.

OpenBLAS starts one thread per core and spins them for every matrix product. The numpy
models run here (MiniLM's encoder, the offline model's decoder) multiply modest matrices,
where extra threads gain little on a quiet machine and, on a busy one, spend their time
waiting for each other (docs/knowledge.md and docs/gateway.md give the measurements). So
the commands that run them (``serve``, ``worker``, ``index``, ``search``, ``context``) set
the count from ``Settings.blas_threads`` at start, before numpy is imported.

Once, process-wide, and not per call: OpenBLAS has no per-thread limit, and threadpoolctl
lets only the first thread that sets one change it while that thread lives, so a limit set
and restored around each call from worker threads would be silently ignored.
"""

from __future__ import annotations

import os
import sys

__all__ = ["BLAS_VARIABLES", "set_blas_threads"]

# What OpenBLAS (numpy's wheels), MKL and OpenMP builds read when they load.
BLAS_VARIABLES = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS")


def set_blas_threads(count: int) -> None:
    """BLAS on ``count`` threads in this process (and the processes it starts).

    A variable the user set in the environment is kept. If numpy is already loaded, its
    BLAS is limited now as well (threadpoolctl, from the calling thread: call this from the
    main thread).
    """
    for name in BLAS_VARIABLES:
        os.environ.setdefault(name, str(count))
    if "numpy" in sys.modules:
        from threadpoolctl import ThreadpoolController  # type: ignore[import-untyped]

        ThreadpoolController().limit(limits=count, user_api="blas")
