"""What long work shows where there is no terminal (CI logs): lines on `retrieval_ft.progress`."""

from __future__ import annotations

import functools
import logging

import pytest

from retrieval_ft import _progress
from retrieval_ft._progress import Ticker, duration, share_line
from retrieval_ft.config import EncodeConfig
from retrieval_ft.encode import Encoder


def test_durations_and_shares_are_written_one_way():
    assert duration(62.4) == "1m02s" and duration(4000) == "1h06m"
    assert share_line(40, 400, 62.0) == "40/400 (10%), elapsed 1m02s, eta 9m18s"
    assert share_line(0, 10, 5.0) == "0/10 (0%), elapsed 0m05s"


def test_a_ticker_reports_only_once_its_interval_has_passed(caplog: pytest.LogCaptureFixture):
    with caplog.at_level(logging.INFO, logger="retrieval_ft.progress"):
        quiet = Ticker("encoding documents", 100, every=3600)
        quiet.update(50)
        quiet.update(50)
        assert not caplog.records
        loud = Ticker("encoding documents", 100, every=0)
        loud.update(30)
    assert [r.getMessage().split(", elapsed")[0] for r in caplog.records] == ["encoding documents: 30/100 (30%)"]


@pytest.mark.parametrize("progress,lines", [(None, True), (False, False)])
def test_encoding_without_a_terminal_logs_progress_unless_switched_off(tiny_model, monkeypatch, caplog, progress,
                                                                      lines):
    """Before, encoding a large corpus in CI printed nothing until it was done."""
    monkeypatch.setattr(_progress, "Ticker", functools.partial(Ticker, every=0))
    monkeypatch.setattr("sys.stderr.isatty", lambda: False, raising=False)
    encoder = Encoder(tiny_model, EncodeConfig(progress=progress, batch_size=4))
    with caplog.at_level(logging.INFO, logger="retrieval_ft.progress"):
        encoder.encode_documents([f"document number {i}" for i in range(40)])
    shown = [r.getMessage() for r in caplog.records if r.name == "retrieval_ft.progress"]
    assert bool(shown) is lines
    if lines:
        assert shown[-1].startswith("encoding documents: 40/40 (100%)")
