"""Several worker processes, each listening on a socket of its own with ``SO_REUSEPORT``.

uvicorn's ``--workers`` share one listening socket: whichever worker wakes first accepts, and
under a steady load one worker can take every connection while the other idles (3 runs in 8
of the load benchmark). With one socket per worker bound to the same port with
``SO_REUSEPORT`` (Linux), the kernel spreads new connections over the workers by a hash of
their addresses. uvicorn has no such mode, so this small supervisor stands in for its own:
it starts the workers, replaces one that dies, and stops them all on SIGTERM or SIGINT.

Each worker binds its socket itself and listens only once its app has started, so the
kernel never hashes a connection to a worker that cannot answer yet, nor, once it died and
closed its socket, to one that never will.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import socket
import time
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE

logger = logging.getLogger("uvicorn.error")

# How often a dead worker is noticed (uvicorn's own supervisor looks every half second).
CHECK_SECONDS = 0.5
# How long workers get to finish their requests on a stop before they are killed.
STOP_SECONDS = 25.0
# A worker that keeps dying is started at most this often, not in a tight loop.
RESTART_SECONDS = 1.0


def reuse_port_available() -> bool:
    return hasattr(socket, "SO_REUSEPORT")


class PortUnavailableError(Exception):
    """The port cannot be bound (another program listens on it, or no permission)."""


class WorkerStartupError(Exception):
    """A worker's app refused to start (its log says why): starting another would fail too."""


def run_workers(workers: int, host: str, port: int, config: dict[str, Any]) -> None:
    """Serve ``uvicorn.Config(**config)`` from ``workers`` processes on ``host:port`` until
    SIGTERM or SIGINT; the caller has configured logging in this process."""
    # Binding here first fails the start on a port that is taken, before any worker starts.
    try:
        _listening_socket(host, port).close()
    except OSError as exc:
        raise PortUnavailableError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc})"
        ) from exc
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no inherited state
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    processes: list[BaseProcess] = []
    started_at: list[float] = []
    try:
        for _ in range(workers):
            processes.append(_start(context, host, port, config))
            started_at.append(time.monotonic())
        while not stopping:
            wait([process.sentinel for process in processes], timeout=CHECK_SECONDS)
            for index, process in enumerate(processes):
                if stopping or process.is_alive():
                    continue
                if process.exitcode == STARTUP_FAILURE:
                    raise WorkerStartupError(f"worker {process.pid} could not start the app")
                if time.monotonic() - started_at[index] < RESTART_SECONDS:
                    continue
                logger.warning(
                    "Worker %s ended (exit code %s); starting another",
                    process.pid,
                    process.exitcode,
                )
                processes[index] = _start(context, host, port, config)
                started_at[index] = time.monotonic()
    finally:
        _stop_all(processes)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _start(
    context: multiprocessing.context.SpawnContext, host: str, port: int, config: dict[str, Any]
) -> BaseProcess:
    process = context.Process(target=_serve, args=(host, port, config), daemon=False)
    process.start()
    logger.info("Started worker %s", process.pid)
    return process


def _stop_all(processes: list[BaseProcess]) -> None:
    for process in processes:
        if process.is_alive() and process.pid is not None:
            process.terminate()  # SIGTERM: uvicorn finishes the requests it holds
    deadline = time.monotonic() + STOP_SECONDS
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join()


def _serve(host: str, port: int, config: dict[str, Any]) -> None:
    """A worker: one uvicorn server on its own socket; uvicorn handles SIGTERM and SIGINT."""
    server = uvicorn.Server(uvicorn.Config(**config))  # configures this process's logging
    sock = _listening_socket(host, port, listen=False)  # asyncio listens once started
    server.run(sockets=[sock])


def _listening_socket(host: str, port: int, *, listen: bool = True) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    if listen:
        sock.listen()
    return sock
