"""What a failing integration test prints of a process's log."""

from __future__ import annotations

from pathlib import Path

from devtools.processes import Service


def test_the_tail_comes_after_the_warnings_and_errors_long_before_it(tmp_path: Path):
    log = tmp_path / "worker.log"
    log.write_text("\n".join(["[INFO] started", "[WARNING] offset 1 is not acknowledged", *["[INFO] step"] * 50,
                              "[ERROR] stalled", "[INFO] last"]), encoding="utf-8")
    service = Service("worker", process=None, web_port=0, log_path=log)

    assert service.log_tail(2).splitlines() == ["[WARNING] offset 1 is not acknowledged", "[…]", "[ERROR] stalled",
                                                "[INFO] last"]
    assert service.log_tail(100).splitlines()[0] == "[INFO] started"  # all of it: nothing repeated before
    assert Service("api", process=None, web_port=0, log_path=tmp_path / "none.log").log_tail() == ""
