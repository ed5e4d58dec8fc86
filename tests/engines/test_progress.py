"""CaseProgress and EpochProgress on tiny ignite engines: what they show and log, read back by parse_progress.

A fake clock that each iteration moves on by 2 s makes the times exact (and the tests fast).
"""

import io
import logging
import math

import pytest
from ignite.engine import Engine, Events

from common.engines import CaseProgress, EpochProgress, progress
from common.engines.progress import format_duration, parse_progress

LOGGER = "common.engines.progress"
SECONDS_PER_ITERATION = 2.0


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(progress, "_now", fake)
    return fake


@pytest.fixture
def logs(caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    return caplog


def engine_on(clock: FakeClock) -> Engine:
    def step(engine, batch):
        clock.now += SECONDS_PER_ITERATION

    return Engine(step)


def own_records(caplog) -> list:
    """The records of the progress logger only (ignite logs too once a bundle test configured logging)."""
    return [r for r in caplog.records if r.name == LOGGER]


def progress_lines(caplog) -> list:
    records = own_records(caplog)
    assert all(r.levelno == logging.INFO for r in records)
    lines = [parse_progress(r.getMessage()) for r in records]
    assert None not in lines  # every line the handlers log can be read back
    return lines


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_case_progress_log_mode_every_fraction_and_final(clock, logs):
    stderr = io.StringIO()  # not a terminal: "auto" picks log lines
    engine = engine_on(clock)
    CaseProgress(desc="inference", log_fraction=0.25, log_interval_s=1e9, file=stderr).attach(engine)
    engine.run(range(20))

    assert stderr.getvalue() == ""  # no bar
    lines = progress_lines(logs)
    assert [line.done for line in lines] == [1, 5, 10, 15, 20]  # the first case, every 25 %, the last
    assert all(line.kind == "case" and line.desc == "inference" and line.total == 20 for line in lines)
    assert all(line.unit == "cases" for line in lines)
    # 2 s per case: elapsed 2 s x done, time left 2 s x cases left
    assert [line.elapsed for line in lines] == [2, 10, 20, 30, 40]
    assert [line.time_left for line in lines] == [38, 30, 20, 10, 0]
    first, *_, last = (r.getMessage() for r in own_records(logs))
    assert first == "inference 1/20 cases (5%), elapsed 00:02, time left 00:38"
    assert last == "inference 20/20 cases (100%), elapsed 00:40, time left 00:00"


def test_case_progress_log_interval(clock, logs):
    # every 5 s of the 2 s cases, whatever the fraction: cases 1 (the first), 4 (8 s > 5 s after case 1),
    # 7 and 10 (the last)
    engine = engine_on(clock)
    CaseProgress(mode="log", log_fraction=1.0, log_interval_s=5).attach(engine)
    engine.run(range(10))
    assert [line.done for line in progress_lines(logs)] == [1, 4, 7, 10]


def test_case_progress_bar_mode_on_a_terminal(clock, logs):
    terminal = FakeTerminal()
    root_handlers = list(logging.root.handlers)
    engine = engine_on(clock)
    handler = CaseProgress(desc="inference", file=terminal)  # "auto" on a terminal: a bar
    handler.attach(engine)
    time_left = []
    engine.add_event_handler(Events.ITERATION_COMPLETED, lambda e: time_left.append(handler.time_left()))
    engine.run(range(7))

    # the bar redraws one line in place (carriage returns) and ends on 7/7 with a newline
    frames = [frame for frame in terminal.getvalue().split("\r") if frame.strip()]
    assert len(frames) > 1
    assert frames[0].startswith("inference:") and "0/7" in frames[0]
    assert "7/7" in frames[-1] and "100%" in frames[-1] and frames[-1].endswith("\n")
    assert handler.bar is None
    assert time_left[:6] == [12, 10, 8, 6, 4, 2]  # the last one ran after the bar closed: 0 left
    assert logging.root.handlers == root_handlers  # the redirection of log lines through the bar is undone
    # the log gets a single summary line
    lines = progress_lines(logs)
    assert [(line.done, line.total, line.elapsed, line.time_left) for line in lines] == [(7, 7, 14, 0)]


def test_case_progress_restarts_each_epoch(clock, logs):
    engine = engine_on(clock)
    CaseProgress(mode="log", log_interval_s=1e9).attach(engine)
    engine.run(range(3), max_epochs=2)
    lines = progress_lines(logs)
    assert [(line.done, line.total, line.elapsed) for line in lines] == [(1, 3, 2), (2, 3, 4), (3, 3, 6)] * 2


def test_case_progress_without_a_length(clock, logs):
    engine = engine_on(clock)
    CaseProgress(mode="log", log_interval_s=5).attach(engine)
    engine.run(iter(range(5)), epoch_length=None)
    lines = progress_lines(logs)
    # no estimate while the total is unknown; at the end, the count is the total
    assert [(line.done, line.total, line.time_left) for line in lines] == [
        (1, None, None),
        (4, None, None),
        (5, 5, 0),
    ]


def test_case_progress_counts_batches(clock, logs):
    engine = engine_on(clock)
    CaseProgress(desc="evaluation", unit="batch", mode="log").attach(engine)
    engine.run(range(2))
    last = own_records(logs)[-1].getMessage()
    assert last == "evaluation 2/2 batches (100%), elapsed 00:04, time left 00:00"
    assert progress_lines(logs)[-1].unit == "batches"


def test_arguments_are_checked():
    with pytest.raises(ValueError, match="mode"):
        CaseProgress(mode="fancy")
    # the log lines are read back word by word
    with pytest.raises(ValueError, match="desc must be one word"):
        CaseProgress(desc="test cases")
    with pytest.raises(ValueError, match="unit must be one word"):
        CaseProgress(unit="")
    with pytest.raises(ValueError, match="desc must be one word"):
        EpochProgress(desc="my training")


def test_epoch_progress_logs_epoch_and_time_left(clock, logs):
    engine = engine_on(clock)
    handler = EpochProgress()
    handler.attach(engine)
    engine.run(range(4), max_epochs=3)  # 8 s per epoch

    lines = progress_lines(logs)
    assert [(line.kind, line.desc, line.done, line.total) for line in lines] == [
        ("epoch", "training", k, 3) for k in (1, 2, 3)
    ]
    assert [line.seconds_per_epoch for line in lines] == [8, 8, 8]
    assert [line.time_left for line in lines] == [16, 8, 0]
    assert handler.last_message == "training epoch 3/3 done in 8.0 s, 8.0 s/epoch, time left 00:00"


def test_epoch_progress_mean_includes_time_between_epochs(clock, logs):
    # validation runs on EPOCH_COMPLETED, between one epoch and the next: the time left counts it
    engine = engine_on(clock)
    EpochProgress().attach(engine)

    @engine.on(Events.EPOCH_COMPLETED)
    def validate(engine):
        clock.now += 4.0

    engine.run(range(3), max_epochs=3)  # 6 s of training and 4 s of validation per epoch
    lines = progress_lines(logs)
    # epoch 1 has not been validated yet when its line is logged; epoch 2's mean has one validation in it
    assert [line.seconds_per_epoch for line in lines] == [6, 8, pytest.approx(8.7, abs=0.05)]
    assert [line.time_left for line in lines] == [12, 8, 0]


def test_epoch_progress_resumed_run_counts_only_its_own_epochs(clock, logs):
    engine = engine_on(clock)
    EpochProgress(desc="train").attach(engine)
    engine.load_state_dict({"epoch": 2, "max_epochs": 5, "epoch_length": 2})
    engine.run(range(2))
    lines = progress_lines(logs)
    assert [line.done for line in lines] == [3, 4, 5]
    # the mean is over this run's epochs (4 s each), not over all epochs since epoch 1
    assert [line.seconds_per_epoch for line in lines] == [4, 4, 4]
    assert [line.time_left for line in lines] == [8, 4, 0]


def test_parse_progress_ignores_other_lines():
    assert parse_progress("2026-01-01 - INFO - Epoch: 1/2, Iter: 1/1 -- train_loss: 0.9613") is None
    assert parse_progress("run 3/? cases , elapsed 00:02, time left ?") is None
    line = parse_progress(
        "2026-01-01 - common.engines.progress - INFO - run 3/? cases, elapsed 00:02, time left ?"
    )
    assert (line.kind, line.desc, line.done, line.total) == ("case", "run", 3, None)
    assert (line.elapsed, line.time_left) == (2.0, None)
    line = parse_progress("training epoch 2/5 done in 1.0 s, 1.5 s/epoch, time left 1:02:05")
    assert (line.kind, line.done, line.total, line.time_left) == ("epoch", 2, 5, 3725)
    assert format_duration(None) == "?" and format_duration(math.inf) == "?"
    assert format_duration(65) == "01:05"
