"""Progress of a run for the person waiting on it: cases done and time left, epochs done and time left.

* :class:`CaseProgress` follows the iterations (cases, where the batch size is 1) of an evaluator or
  inference run: a progress bar updated in place on a terminal, plain log lines (at the first case, every
  10 % and every 30 s, and at the last case) when stderr is not a terminal, so that log files stay readable.
* :class:`EpochProgress` logs one line per training epoch: epoch k/N, its duration, the mean seconds per
  epoch and the time left.

Both write their lines through the ``common.engines.progress`` logger, so that they show in
``python -m monai.bundle run`` output (the bundles' ``logging.conf`` sends INFO to stdout), and only on the
first process of a multi-process run. The line formats are parsed back by :func:`parse_progress`
(``scripts/demo.py`` follows a bundle's log with it); change both together.

In a bundle config, last in the handler lists (so that the epoch time counts the validation)::

    "train#handlers":    {"_target_": "common.engines.EpochProgress"}
    "handlers" (infer):  {"_target_": "common.engines.CaseProgress", "desc": "inference"}

``ignite.handlers.ProgressBar`` is not used: it only draws tqdm bars (a file gets every redraw, joined by
carriage returns), clears its bar when done unless told, and has no time left per epoch.
"""

from __future__ import annotations

import logging
import math
import re
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from typing import IO

from ignite import distributed as idist
from ignite.engine import Engine, Events
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

__all__ = ["CaseProgress", "EpochProgress", "ProgressLine", "format_duration", "parse_progress"]

logger = logging.getLogger(__name__)

#: the clock of both handlers (the tests replace it with a fake one)
_now = time.perf_counter


def format_duration(seconds: float | None) -> str:
    """``MM:SS`` or ``H:MM:SS`` (tqdm's format, so bar and log lines read alike); ``?`` when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    return tqdm.format_interval(max(0.0, seconds))


def _parse_duration(text: str) -> float | None:
    if text == "?":
        return None
    seconds = 0.0
    for part in text.split(":"):
        seconds = 60 * seconds + float(part)
    return seconds


def _check_word(**names: str) -> None:
    # parse_progress reads one word for each
    for key, value in names.items():
        if not value or len(value.split()) != 1 or value != value.strip():
            raise ValueError(f"{key} must be one word, got {value!r}")


def _plural(unit: str) -> str:
    return unit + ("es" if unit.endswith(("s", "x", "ch", "sh")) else "s")


class CaseProgress:
    """Progress over the iterations of each epoch of an engine; meant for evaluators and inference runs.

    One iteration is one batch: a case where the batch size is 1 (the bundles' inference dataloaders and
    BraTS evaluation); pass ``unit="batch"`` otherwise. Log lines read
    ``inference 5/14 cases (36%), elapsed 00:10, time left 00:18``.

    Args:
        desc: one word naming the run, first word of the bar and of the log lines.
        unit: one word naming one iteration (``case``, ``batch``); the bar shows its rate (``2.1s/case``).
        mode: ``"bar"`` (tqdm bar on ``file``), ``"log"`` (log lines) or ``"auto"``: a bar when ``file`` is
            a terminal, else log lines.
        log_fraction: in log mode, log each time another this fraction of the total is done.
        log_interval_s: in log mode, log at least this often (seconds) while cases complete.
        file: where the bar goes; ``sys.stderr`` (looked up when the run starts) by default.
    """

    def __init__(
        self,
        desc: str = "cases",
        unit: str = "case",
        mode: str = "auto",
        log_fraction: float = 0.1,
        log_interval_s: float = 30.0,
        file: IO[str] | None = None,
    ):
        if mode not in ("auto", "bar", "log"):
            raise ValueError(f"mode must be 'auto', 'bar' or 'log', got {mode!r}")
        _check_word(desc=desc, unit=unit)
        self.desc = desc
        self.unit = unit
        self.mode = mode
        self.log_fraction = log_fraction
        self.log_interval_s = log_interval_s
        self.file = file
        self.bar: tqdm | None = None
        self._redirect = ExitStack()
        self.done = 0
        self.total: int | None = None
        self._start = self._last_log = 0.0
        self._next_log = 0
        self._running = False

    def attach(self, engine: Engine) -> None:
        # the other processes of a multi-process run would only repeat the first one's progress
        if idist.get_rank() != 0:
            return
        engine.add_event_handler(Events.EPOCH_STARTED, self.start)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.step)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self.finish)
        engine.add_event_handler(Events.TERMINATE, self.close)

    def _use_bar(self) -> bool:
        if self.mode != "auto":
            return self.mode == "bar"
        stream = self.file or sys.stderr
        return bool(getattr(stream, "isatty", lambda: False)())

    def start(self, engine: Engine) -> None:
        self.close()
        self.done = 0
        self.total = engine.state.epoch_length
        self._start = self._last_log = _now()
        self._running = True
        self._next_log = 1  # log the first case: the user sees the total and a first estimate early
        if self._use_bar():
            self.bar = tqdm(
                total=self.total,
                desc=self.desc,
                unit=self.unit,
                file=self.file or sys.stderr,
                dynamic_ncols=True,
                leave=True,
            )
            # log lines written while the bar is drawn would land on the bar's line: route them through it
            self._redirect.enter_context(logging_redirect_tqdm())

    def elapsed(self) -> float:
        return _now() - self._start

    def time_left(self) -> float | None:
        """Seconds left at the mean time per case so far; ``None`` before the first case or with no total."""
        if not self.done or self.total is None:
            return None
        return self.elapsed() / self.done * max(0, self.total - self.done)

    def message(self) -> str:
        total = "?" if self.total is None else str(self.total)
        percent = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        return (
            f"{self.desc} {self.done}/{total} {_plural(self.unit)}{percent}, "
            f"elapsed {format_duration(self.elapsed())}, time left {format_duration(self.time_left())}"
        )

    def step(self, engine: Engine) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)
            if self.total is not None and self.done >= self.total:
                # close on the last case, before the epoch-end handlers (metrics, StatsHandler) print
                self.finish(engine)
            return
        now = _now()
        if self.done >= self._next_log or now - self._last_log >= self.log_interval_s:
            self._last_log = now
            if self.total:
                step = max(1, math.ceil(self.total * self.log_fraction))
                self._next_log = (self.done // step + 1) * step
            else:
                self._next_log = math.inf
            if self.done != self.total:  # the last line comes from finish()
                logger.info(self.message())

    def finish(self, engine: Engine | None = None) -> None:
        """Close the bar, log the final line (once per epoch, in both modes: log files get the summary)."""
        if not self._running:
            return
        self._running = False
        if self.total is None:
            self.total = self.done  # data without a length: now the count is known
        self.close()
        logger.info(self.message())

    def close(self, engine: Engine | None = None) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        self._redirect.close()


class EpochProgress:
    """Log epoch k/N of a training run, how long it took, the mean seconds per epoch and the time left.

    The mean runs from the start of this run's first epoch (a resumed run does not count the epochs of the
    earlier one) to now, so it counts the time between epochs too: the validations (this epoch's as well
    when ``ValidationHandler`` comes before this handler in the list) and checkpoints.
    Lines read ``training epoch 3/25 done in 4.1 s, 4.3 s/epoch, time left 01:35``.

    Args:
        desc: one word, first of the log lines.
    """

    def __init__(self, desc: str = "training"):
        _check_word(desc=desc)
        self.desc = desc
        self.first_epoch: int | None = None
        self._run_start = self._epoch_start = 0.0
        self.last_message = ""

    def attach(self, engine: Engine) -> None:
        if idist.get_rank() != 0:
            return
        engine.add_event_handler(Events.STARTED, self.reset)
        engine.add_event_handler(Events.EPOCH_STARTED, self.epoch_started)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self.epoch_completed)

    def reset(self, engine: Engine | None = None) -> None:
        self.first_epoch = None

    def epoch_started(self, engine: Engine) -> None:
        now = _now()
        if self.first_epoch is None:
            # ignite counts the epoch before firing EPOCH_STARTED; a resumed run starts past 1
            self.first_epoch = engine.state.epoch
            self._run_start = now
        self._epoch_start = now

    def epoch_completed(self, engine: Engine) -> None:
        now = _now()
        epoch, max_epochs = engine.state.epoch, engine.state.max_epochs
        done = epoch - (self.first_epoch or epoch) + 1
        per_epoch = (now - self._run_start) / done
        left = per_epoch * max(0, (max_epochs or epoch) - epoch)
        self.last_message = (
            f"{self.desc} epoch {epoch}/{max_epochs} done in {now - self._epoch_start:.1f} s, "
            f"{per_epoch:.1f} s/epoch, time left {format_duration(left)}"
        )
        logger.info(self.last_message)


@dataclass
class ProgressLine:
    """What :func:`parse_progress` read from one line: ``kind`` is ``"epoch"`` or ``"case"``."""

    kind: str
    desc: str
    done: int
    total: int | None
    time_left: float | None
    elapsed: float | None = None
    seconds_per_epoch: float | None = None
    unit: str = ""  # of a case line, as logged: "cases", "batches"


_DURATION = r"(\?|[\d:]+)"
_EPOCH_LINE = re.compile(
    rf"(\S+) epoch (\d+)/(\d+) done in [\d.]+ s, ([\d.]+) s/epoch, time left {_DURATION}\s*$"
)
_CASE_LINE = re.compile(
    rf"(\S+) (\d+)/(\d+|\?) (\S+)(?: \(\d+%\))?, elapsed {_DURATION}, time left {_DURATION}\s*$"
)


def parse_progress(line: str) -> ProgressLine | None:
    """Read back a line logged by :class:`EpochProgress` or :class:`CaseProgress` (with any log prefix)."""
    if match := _EPOCH_LINE.search(line):
        desc, epoch, total, per_epoch, left = match.groups()
        return ProgressLine(
            "epoch", desc, int(epoch), int(total), _parse_duration(left), seconds_per_epoch=float(per_epoch)
        )
    if match := _CASE_LINE.search(line):
        desc, done, total, unit, elapsed, left = match.groups()
        return ProgressLine(
            "case",
            desc,
            int(done),
            None if total == "?" else int(total),
            _parse_duration(left),
            elapsed=_parse_duration(elapsed),
            unit=unit,
        )
    return None
