"""SIGTERM and SIGINT heard through the event loop: a stop signal never raises where it lands.

Python runs a signal handler in whatever frame the main thread happens to execute. Prefect's
SIGTERM handler raises ``TerminationSignal`` there; raised inside a garbage collector's weakref
callback (or an event loop callback), the exception is printed ("Exception ignored in ...") and
dropped, and the run goes on to complete and exit 0. While a run is watched (``watch_signals``)
a stop signal instead:

- is recorded (``received()``): the synchronous waits (the tracker's retries, the download's
  promotion) look at it at their safe points (``check()``, ``sleep()``) and raise ``Interrupted``
  there;
- wakes the event loop (``call_soon_threadsafe``, as asyncio's own SIGINT handler does), which
  cancels every watched task (the kernel may give a process's signal to any of its threads, and
  Python runs the handler in the main thread only once that thread runs again: the signal
  wakeup fd, read by the loop, wakes a loop asleep with no timer due, as asyncio's own
  ``add_signal_handler`` does): the run's code sees ``CancelledError`` at its current ``await``,
  the job keeps staging and its done marks, and its ``finally`` blocks release the commit lock
  and the lease;
- is handed on when the watched block ends, in that known frame, to the SIGTERM handler that
  was installed before: Prefect's raises ``TerminationSignal`` there, so its engine records the
  run Crashed (or Cancelled on a worker's cancel) and ends the process by the signal at once.
  SIGINT goes the same way (a ``KeyboardInterrupt`` would make the interpreter wait for threads
  still blocked on a request: 12 s measured under load); without such a handler SIGINT is
  ``KeyboardInterrupt``.

A second signal while the first is being handled goes to the previous handler at once (Ctrl-C
twice forces the old behaviour). A ``Bridge`` lets the previous SIGTERM handler's owner treat
ours as its own while it is installed (``flows.signals``: Prefect acknowledges a worker's cancel
only while its bridge is the installed handler). Only the main thread can install signal handlers: elsewhere
(a flow called from a worker thread) nothing is installed and the previous handlers stay.
No Prefect import here: the tracker and the job check ``received()`` too.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from types import FrameType
from typing import Any, Protocol

SIGNALS: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT)
"""The signals that stop a run: a worker's cancel or an eviction (SIGTERM), Ctrl-C (SIGINT)."""

Handler = Callable[[int, FrameType | None], Any] | int | None


class Bridge(Protocol):
    """The owner of the handler ours replaces, told while ours stands in for it."""

    def lock(self) -> AbstractContextManager[Any]:
        """Held while handlers are swapped (the owner checks them under it)."""
        ...

    def adopt(self, handler: Callable[[int, FrameType | None], None], previous: Handler) -> None:
        """``handler`` now stands in for ``previous`` (installed for SIGTERM)."""
        ...

    def drop(self) -> None:
        """The previous handler is back."""
        ...


class Interrupted(BaseException):
    """A stop signal arrived: raised at a synchronous safe point (a tracker wait, a promotion).

    A ``BaseException`` like ``KeyboardInterrupt``: no ``except Exception`` on the way turns an
    interruption into a failure (a failed file, a rollback)."""

    def __init__(self, signum: int) -> None:
        self.signal = signum
        super().__init__(f"{signal_name(signum)} received: the run stops at its next safe point")


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class _Watch:
    """The process's one set of watched tasks and the handlers they replaced (signals are per process)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.tasks: dict[asyncio.Task[Any], asyncio.AbstractEventLoop] = {}
        self.previous: dict[int, Handler] = {}
        self.received: int | None = None
        self.cancelled: set[asyncio.Task[Any]] = set()  # the tasks this watch cancelled
        self.bridge: Bridge | None = None
        self.installed = self.handler  # one bound method: the object ``signal.getsignal`` returns
        self.wakeup: _Wakeup | None = None

    def handler(self, signum: int, frame: FrameType | None) -> None:
        """The installed handler: record, wake the loops; never raise (a second signal excepted)."""
        if self.received is not None:  # a second signal: the previous handler, at once
            self.restore()
            signal.raise_signal(signum)
            return
        self.received = signum
        for task, loop in list(self.tasks.items()):
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self.cancel, task, signum)

    def cancel(self, task: asyncio.Task[Any], signum: int) -> None:
        """In the task's loop: cancel it (once) so its current ``await`` raises ``CancelledError``."""
        if task in self.tasks and task not in self.cancelled and not task.done():
            self.cancelled.add(task)
            task.cancel(f"{signal_name(signum)} received")

    def install(self) -> None:
        with self.bridge.lock() if self.bridge is not None else contextlib.nullcontext():
            for signum in SIGNALS:
                current = signal.getsignal(signum)
                if current is signal.SIG_IGN:
                    continue  # an ignored signal stays ignored
                self.previous[signum] = current
                signal.signal(signum, self.installed)
                if signum == signal.SIGTERM and self.bridge is not None:
                    self.bridge.adopt(self.installed, current)

    def restore(self) -> None:
        if self.wakeup is not None:
            self.wakeup.close()
            self.wakeup = None
        with self.bridge.lock() if self.bridge is not None else contextlib.nullcontext():
            if self.bridge is not None:
                self.bridge.drop()
            for signum, previous in self.previous.items():
                if signal.getsignal(signum) is self.installed:
                    signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
            self.previous.clear()

    def hand_on(self, signum: int, frame: FrameType | None = None) -> None:
        """Give the signal to the previous SIGTERM handler when it is a function (Prefect's:
        its ``TerminationSignal`` lets the flow engine record the run, then end the process by
        that signal at once, SIGINT too, with no wait for threads stuck on a request); else
        SIGINT is ``KeyboardInterrupt``, SIGTERM ``Interrupted``."""
        previous = self.previous.get(signal.SIGTERM, signal.getsignal(signal.SIGTERM))
        if callable(previous) and previous is not self.installed:
            previous(signum, frame)
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise Interrupted(signum)


class _Wakeup:
    """The signal wakeup fd, read by the loop: any signal, whichever thread the kernel gave it
    to, wakes the loop, so the main thread runs the handler at once."""

    def __init__(self, loop: asyncio.AbstractEventLoop, reader: socket.socket, writer: socket.socket) -> None:
        self.loop, self.reader, self.writer = loop, reader, writer

    @classmethod
    def open(cls, loop: asyncio.AbstractEventLoop) -> _Wakeup | None:
        """Set the wakeup fd and watch it from ``loop``; None where one is already set (asyncio's
        ``add_signal_handler`` wakes its loop the same way) or the loop cannot watch a socket."""
        reader, writer = socket.socketpair()
        for end in (reader, writer):
            end.setblocking(False)
        try:
            previous: int | None = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
        except ValueError:  # not the main thread
            previous = None
        if previous == -1:
            try:
                loop.add_reader(reader.fileno(), cls._drain, reader)
                return cls(loop, reader, writer)
            except NotImplementedError:  # a loop that cannot watch a socket
                signal.set_wakeup_fd(-1)
        elif previous is not None:
            signal.set_wakeup_fd(previous)  # one was set already: theirs stays
        reader.close()
        writer.close()
        return None

    @staticmethod
    def _drain(reader: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while reader.recv(4096):
                pass

    def close(self) -> None:
        with contextlib.suppress(ValueError):  # only the main thread may unset it
            previous = signal.set_wakeup_fd(-1)
            if previous not in (-1, self.writer.fileno()):
                signal.set_wakeup_fd(previous)  # another's since: theirs stays
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            self.loop.remove_reader(self.reader.fileno())
        self.reader.close()
        self.writer.close()


_watch = _Watch()


def received() -> int | None:
    """The stop signal this process received while a run was watched (None: none)."""
    return _watch.received


def check() -> None:
    """A safe point: raise ``Interrupted`` when a stop signal arrived."""
    if (signum := _watch.received) is not None:
        raise Interrupted(signum)


def sleep(seconds: float, step: float = 0.1) -> None:
    """``time.sleep`` for a synchronous wait that a stop signal ends within ``step`` seconds."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        check()
        time.sleep(min(step, left))
    check()


def set_bridge(bridge: Bridge | None) -> None:
    """The ``Bridge`` told when our SIGTERM handler stands in for the previous one (one per process)."""
    _watch.bridge = bridge


@contextlib.contextmanager
def watch_signals() -> Iterator[None]:
    """Watch the current task for SIGTERM and SIGINT (see the module docstring); when the block
    ends after a signal, the signal is handed on (``TerminationSignal``, ``KeyboardInterrupt``)."""
    task = asyncio.current_task()
    if task is None or threading.current_thread() is not threading.main_thread():
        yield
        return
    with _watch.lock:
        if not _watch.tasks:
            _watch.received = None
            _watch.install()
            _watch.wakeup = _Wakeup.open(asyncio.get_running_loop())
        _watch.tasks[task] = asyncio.get_running_loop()
    try:
        yield
    finally:
        with _watch.lock:
            del _watch.tasks[task]
            if task in _watch.cancelled:
                _watch.cancelled.discard(task)
                task.uncancel()  # our cancellation ends here: the signal is handed on instead
            signum = _watch.received
            if not _watch.tasks:
                _watch.restore()
                _watch.received = None
        if signum is not None:
            _watch.hand_on(signum)
