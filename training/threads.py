"""CPU threads for training on a machine that other processes share.

Two things made an epoch 20-30x slower when other processes kept the cores busy: OpenMP's
worker threads spin-wait between parallel regions (each spinning thread steals a core from the
thread it waits for), and intra-op threads plus data-loader workers could outnumber the cores.
`prefer_passive_waiting` must run before torch is imported (OpenMP reads the variable once, when
it loads); `configure_cpu_threads` then sizes torch's intra-op pool.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)


def prefer_passive_waiting() -> None:
    """OMP_WAIT_POLICY=PASSIVE unless the user chose a policy: idle OpenMP threads sleep instead of spinning."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, which containers and taskset restrict)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def configure_cpu_threads(data_workers: int, processes_per_machine: int = 1) -> int:
    """Set torch's intra-op threads to the cores left after data-loader workers, shared among the
    training processes of this machine; an explicit OMP_NUM_THREADS wins. Returns the thread count."""
    import torch

    if os.environ.get("OMP_NUM_THREADS"):
        return torch.get_num_threads()
    spare = available_cores() - max(0, data_workers) * processes_per_machine
    threads = max(1, spare // max(1, processes_per_machine))
    torch.set_num_threads(threads)
    log.debug("%d intra-op thread(s), %d data-loader worker(s)", threads, data_workers)
    return threads
