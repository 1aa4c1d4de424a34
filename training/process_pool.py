"""A process pool that knows which task each worker runs, so a worker's death fails only that task.

``multiprocessing.Pool`` waits for ever when a worker is killed, and
``concurrent.futures.ProcessPoolExecutor`` breaks as a whole (every pending task fails and
none is named). Here each worker takes one task at a time over its own pipe; when its
process ends without answering (a signal, ``os._exit``, the OOM killer) the task it held is
reported with how the process ended, a fresh worker replaces it, and the rest go on. With
``task_timeout`` a task that runs longer is reported the same way after its worker is killed.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

log = logging.getLogger(__name__)


@dataclass
class TaskOutcome:
    payload: Any
    result: Any = None
    death: str | None = None  # how the worker died while running this task ("killed by SIGSEGV", ...)


def describe_exit(exitcode: int | None) -> str:
    if exitcode is None:
        return "ended without an exit status"
    if exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exited with status {exitcode}"


class _RemoteError:
    """An exception raised inside a worker, sent back to be raised again in the parent."""

    def __init__(self, exc: BaseException):
        try:
            import pickle

            pickle.dumps(exc)
            self.exc: BaseException = exc
        except Exception:  # an exception that cannot cross the pipe travels as its text
            self.exc = RuntimeError(f"{type(exc).__name__}: {exc}")


_STARTED = "started"


def _serve(conn: Connection, initializer: Callable[[], None] | None) -> None:
    if initializer is not None:
        initializer()
    while True:
        try:
            message = conn.recv()
        except (EOFError, KeyboardInterrupt):
            return
        if message is None:
            return
        function, payload = message
        conn.send(_STARTED)  # the task's clock starts now, not while this worker was still starting
        try:
            reply = function(payload)
        except Exception as exc:
            reply = _RemoteError(exc)
        conn.send(reply)


class _Worker:
    def __init__(self, context: Any, initializer: Callable[[], None] | None):
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child, initializer), daemon=True)
        self.process.start()
        child.close()
        self.payload: Any = None
        self.busy = False
        self.since: float | None = None  # monotonic time the worker began the current task

    def stop(self, wait_s: float) -> None:
        try:
            self.conn.send(None)
        except (OSError, ValueError):
            pass
        self.process.join(wait_s)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(wait_s)
        self.conn.close()


class ProcessPool:
    """`workers` spawned processes (none when 1 unless `isolate`: tasks then run in this process).

    task_timeout: seconds a task may run before its worker is killed and the task reported as timed out.
    """

    def __init__(self, workers: int, initializer: Callable[[], None] | None = None, isolate: bool = False,
                 task_timeout: float | None = None):
        self.size = max(1, int(workers))
        self.initializer = initializer
        self.isolate = isolate
        self.task_timeout = task_timeout
        self._context = multiprocessing.get_context("spawn")
        self._workers: list[_Worker] = []

    def imap_unordered(self, function: Callable[[Any], Any], payloads: Iterable[Any]) -> Iterator[TaskOutcome]:
        """Each payload's outcome, in completion order; a task whose worker died has `death` set."""
        todo = deque(payloads)
        if not self.isolate and (self.size == 1 or len(todo) <= 1):
            for payload in todo:
                yield TaskOutcome(payload, function(payload))
            return
        while len(self._workers) < min(self.size, len(todo)):
            self._workers.append(_Worker(self._context, self.initializer))
        running = 0
        while todo or running:
            for worker in self._workers:
                if not worker.busy and todo:
                    worker.payload, worker.busy, worker.since = todo.popleft(), True, None
                    try:
                        worker.conn.send((function, worker.payload))
                    except (OSError, ValueError):  # died while idle: its sentinel reports it below
                        pass
                    running += 1
            busy = [w for w in self._workers if w.busy]
            timeout = None
            started = [w.since for w in busy if w.since is not None]
            if self.task_timeout is not None and started:
                timeout = max(0.0, min(started) + self.task_timeout - time.monotonic())
            ready = set(wait([w.conn for w in busy] + [w.process.sentinel for w in busy], timeout))
            for worker in busy:
                if worker.conn in ready and worker.since is None and self._started(worker):
                    ready.discard(worker.conn)  # only the "started" note was there
                overdue = (self.task_timeout is not None and worker.conn not in ready and worker.since is not None
                           and time.monotonic() - worker.since >= self.task_timeout)
                if overdue:
                    worker.process.kill()
                elif worker.conn not in ready and worker.process.sentinel not in ready:
                    continue
                outcome = self._collect(worker, f"timed out after {self.task_timeout:g} s" if overdue else None)
                running -= 1
                worker.busy = False
                if isinstance(outcome.result, _RemoteError):
                    raise outcome.result.exc
                yield outcome

    @staticmethod
    def _started(worker: _Worker) -> bool:
        """Read the worker's "started" note; False when what arrived is something else (or nothing)."""
        try:
            if worker.conn.poll():
                if worker.conn.recv() == _STARTED:
                    worker.since = time.monotonic()
                    return not worker.conn.poll()
        except (EOFError, OSError):
            pass
        return False

    def _collect(self, worker: _Worker, timed_out: str | None = None) -> TaskOutcome:
        try:
            if timed_out is None and worker.conn.poll():
                return TaskOutcome(worker.payload, worker.conn.recv())
        except (EOFError, OSError):
            pass
        worker.process.join(5.0)
        death = timed_out or describe_exit(worker.process.exitcode)
        log.debug("worker %s %s", worker.process.pid, death)
        worker.conn.close()
        self._workers[self._workers.index(worker)] = _Worker(self._context, self.initializer)
        return TaskOutcome(worker.payload, None, death)

    def close(self, wait_s: float = 5.0) -> None:
        for worker in self._workers:
            worker.stop(wait_s)
        self._workers = []

    def terminate(self) -> None:
        for worker in self._workers:
            worker.process.terminate()
        self.close(1.0)

    def __enter__(self) -> ProcessPool:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.terminate()  # interrupted: completed work is already published
