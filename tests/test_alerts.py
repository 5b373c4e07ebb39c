"""Alerts (diagnostics.judge.alerts) against a local HTTP server on 127.0.0.1: off by default, once per finding,
retried with backoff, never blocking the caller."""

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import numpy as np
import pytest

from diagnostics.judge import alerts
from runformat import open_run


def judgement(*findings):
    return {"verdict": "collapsing", "since": 300, "findings": list(findings)}


def finding(kind="collapsing", severity="critical", start=300):
    return {
        "kind": kind,
        "severity": severity,
        "step_started": start,
        "step_detected": start + 60,
        "message": "The spread fell.",
        "suggestion": "Put the negatives back.",
        "signals": [],
        "step_before": start - 75,
    }


@pytest.fixture
def run(tmp_path):
    from runformat.writer import RunWriter

    with RunWriter(str(tmp_path), name="r", config={}) as w:
        w.log_snapshot(0, embeddings=np.zeros((4, 2), np.float32))
    return open_run(str(tmp_path / "r"))


@pytest.fixture
def server():
    """A webhook on 127.0.0.1 that fails its first `fail` requests with 503, then answers 200."""
    got, state = [], {"fail": 0}

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):
            data = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if state["fail"] > 0:
                state["fail"] -= 1
                self.send_response(503)
            else:
                got.append(data)
                self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    httpd = HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/hook", got, state
    httpd.shutdown()


def test_off_by_default_and_bad_settings_are_named():
    assert not alerts.AlertConfig.from_env({}).enabled
    with pytest.raises(ValueError, match="CONTRASTSCOPE_ALERT_WEBHOOK"):
        alerts.AlertConfig.from_env({"CONTRASTSCOPE_ALERT_WEBHOOK": "file:///etc/passwd"})
    with pytest.raises(ValueError, match="SEVERITY"):
        alerts.AlertConfig.from_env({"CONTRASTSCOPE_ALERT_SEVERITY": "loud"})


def test_posts_a_slack_compatible_body_once_per_finding(run, server):
    url, got, _ = server
    config = alerts.AlertConfig.from_env({"CONTRASTSCOPE_ALERT_WEBHOOK": url})
    a = alerts.Alerter(config, sleep=lambda s: None)
    j = judgement(finding(), finding("knn_falling", "warning"), finding("complete_collapse", "info", 0))
    assert a.notify(run, j) == 1  # critical only by default; info is history
    a.wait()
    assert a.notify(run, j) == 0  # sent already: kept in <run>/.cache/alerts.json
    assert alerts.Alerter(config).notify(run, j) == 0  # a restarted worker does not repeat it
    assert len(got) == 1 and got[0]["run"] == "r" and got[0]["finding"] == "collapsing" and got[0]["onset"] == 300
    assert got[0]["text"].startswith("ContrastScope: r: collapsing (critical) since step 300.")
    assert got[0]["link"] == "http://127.0.0.1:8501/live?runs=r"
    warn = alerts.Alerter(alerts.AlertConfig(webhook=url, severity="warning"), sleep=lambda s: None)
    assert warn.notify(run, j) == 1  # the warning, not the critical one again
    warn.wait()
    assert [g["finding"] for g in got] == ["collapsing", "knn_falling"]


def test_retries_with_backoff_and_never_blocks(run, server):
    url, got, state = server
    state["fail"] = 2
    waits = []
    a = alerts.Alerter(alerts.AlertConfig(webhook=url, backoff_s=0.5), sleep=waits.append)
    t = time.perf_counter()
    a.notify(run, judgement(finding()))
    assert time.perf_counter() - t < 0.5  # queued, not sent, on the caller's thread
    a.wait()
    assert waits == [0.5, 1.0] and len(got) == 1  # 2 failures, backoff 0.5 then 1.0, then delivered


def test_a_finding_that_never_gets_through_is_tried_again_later(run, server):
    url, got, state = server
    state["fail"] = 4
    a = alerts.Alerter(alerts.AlertConfig(webhook=url, attempts=4), sleep=lambda s: None)
    a.notify(run, judgement(finding()))
    a.wait()
    assert got == [] and a.notify(run, judgement(finding())) == 1  # not recorded as sent
    a.wait()
    assert len(got) == 1


def test_a_command_gets_the_json_on_stdin(run, tmp_path):
    out = tmp_path / "alert.json"
    script = f"import sys; open({str(out)!r}, 'w').write(sys.stdin.read())"
    command = f'{sys.executable} -c "{script}"'
    a = alerts.Alerter(alerts.AlertConfig(command=command), sleep=lambda s: None)
    assert a.notify(run, judgement(finding("nonfinite", start=20))) == 1
    a.wait()
    assert json.loads(out.read_text())["finding"] == "nonfinite"
