"""pytest plumbing for the interop suite: the ``net`` fixture (a :class:`harness.Netns`
torn down after each test, logs kept and their tails printed on failure) and the
scenario table (``report`` fixture + ``pytest_terminal_summary``)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

import harness


@dataclass
class Row:
    scenario: str
    result: str
    detail: str
    test: str


ROWS: list[Row] = []
_T0 = time.monotonic()
REPORT_FILE = harness.BASE_DIR / "last-report.txt"


class ScenarioReport:
    """Handed to tests by the ``report`` fixture: ``report.row(scenario, result,
    detail)`` adds a line to the table printed at the end of the session. A test
    that fails gets a FAIL row with the error after its own rows."""

    def __init__(self, test: str) -> None:
        self.test = test
        self.rows: list[Row] = []

    def row(self, scenario: str, result: str = "PASS", detail: str = "") -> None:
        r = Row(scenario, result, detail, self.test)
        self.rows.append(r)
        ROWS.append(r)


@pytest.fixture
def report(request: pytest.FixtureRequest) -> ScenarioReport:
    r = ScenarioReport(request.node.name)
    request.node._scenario_report = r
    return r


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    rep = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, "rep_" + rep.when, rep)
    if rep.failed:
        msg = ""
        if call.excinfo is not None:
            msg = call.excinfo.exconly().splitlines()[0] if call.excinfo.exconly() else ""
        r: ScenarioReport | None = getattr(item, "_scenario_report", None)
        scen = r.rows[-1].scenario + " (then)" if r and r.rows else item.name
        ROWS.append(Row(scen, "FAIL", f"[{rep.when}] {msg}"[:160], item.name))
    elif rep.when == "call" and rep.passed:
        r = getattr(item, "_scenario_report", None)
        if r is None or not r.rows:
            ROWS.append(Row(item.name, "PASS", "", item.name))


@pytest.fixture
def net(request: pytest.FixtureRequest) -> Iterator[harness.Netns]:
    """A fresh :class:`harness.Netns` per test; on failure the work dir (configs,
    charon/bird logs) is kept and the tails of its logs are printed."""
    n = harness.Netns()
    n.__enter__()
    try:
        yield n
    finally:
        failed = any(getattr(getattr(request.node, f"rep_{w}", None), "failed", False) for w in ("setup", "call"))
        if failed:
            n.keep_workdir = True
            for log in sorted(Path(n.workdir).rglob("*")):
                if log.is_file() and log.suffix in (".log", ".stdout", ".jsonl"):
                    print(f"----- {log} (tail)\n{harness.tail(log, 30)}")
            print(f"work dir kept: {n.workdir}")
        n.close()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not ROWS:
        return
    w1 = max(len("scenario"), *(len(r.scenario) for r in ROWS))
    w2 = max(len("result"), *(len(r.result) for r in ROWS))
    lines = [f"{'scenario':<{w1}}  {'result':<{w2}}  detail", f"{'-' * w1}  {'-' * w2}  {'-' * 40}"]
    lines += [f"{r.scenario:<{w1}}  {r.result:<{w2}}  {r.detail}" for r in ROWS]
    lines.append(f"({len(ROWS)} rows, {time.monotonic() - _T0:.1f}s)")
    terminalreporter.write_sep("=", "interop scenarios")
    for line in lines:
        terminalreporter.write_line(line)
    try:
        REPORT_FILE.parent.mkdir(parents=True, exist_ok=True)
        REPORT_FILE.write_text("\n".join(lines) + "\n")
    except OSError:
        pass
