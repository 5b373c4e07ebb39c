"""Alerts: when a run's judgement gains a finding at or above a chosen severity, run a command or post JSON to a
webhook (a Slack-compatible body: "text" plus the run, finding, onset and a link to its Live page), once per
finding, retried with backoff on a background thread so the worker never waits on the network.

Off by default: nothing is sent, and no host is contacted, unless one of these is set where the worker runs:

    CONTRASTSCOPE_ALERT_WEBHOOK=https://hooks.slack.com/...   # POST application/json
    CONTRASTSCOPE_ALERT_COMMAND='notify-send ContrastScope'   # the JSON body on stdin, the text as last argument
    CONTRASTSCOPE_ALERT_SEVERITY=critical|warning             # the lowest severity that alerts (default critical)
    CONTRASTSCOPE_DASHBOARD_URL=http://host:8501              # for the link (default http://127.0.0.1:8501)

"Once per finding": a finding is (kind, onset); the keys sent are kept in <run>/.cache/alerts.json, so a
restarted worker does not repeat them. A finding that never got through after every retry is not recorded,
and is tried again the next time the run's judgement is written.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import shlex
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass

from runformat import bounds, layout
from runformat.reader import Run, RunFormatError

log = logging.getLogger("contrastscope.alerts")
SEVERITIES = ("warning", "critical")
SENT_FILE = "alerts.json"  # in the run's CACHE_DIR
MAX_SENT = 1000  # keys kept per run (each a kind and a step)


@dataclass(frozen=True)
class AlertConfig:
    webhook: str | None = None
    command: str | None = None
    severity: str = "critical"
    dashboard_url: str = "http://127.0.0.1:8501"
    attempts: int = 4  # 1 + 3 retries
    backoff_s: float = 2.0  # waits 2, 4, 8 s between attempts
    timeout_s: float = 10.0  # per attempt

    @classmethod
    def from_env(cls, env=None) -> "AlertConfig":
        env = os.environ if env is None else env
        severity = env.get("CONTRASTSCOPE_ALERT_SEVERITY", "critical").strip().lower()
        if severity not in SEVERITIES:
            raise ValueError(f"CONTRASTSCOPE_ALERT_SEVERITY: 'critical' or 'warning', got {severity!r}")
        webhook = env.get("CONTRASTSCOPE_ALERT_WEBHOOK") or None
        if webhook and urllib.parse.urlsplit(webhook).scheme not in ("http", "https"):
            raise ValueError(f"CONTRASTSCOPE_ALERT_WEBHOOK: an http(s) URL, got {webhook!r}")
        return cls(
            webhook,
            env.get("CONTRASTSCOPE_ALERT_COMMAND") or None,
            severity,
            env.get("CONTRASTSCOPE_DASHBOARD_URL", cls.dashboard_url).rstrip("/"),
        )

    @property
    def enabled(self) -> bool:
        return bool(self.webhook or self.command)


def due(judgement: dict | None, level: str) -> list[dict]:
    """The judgement's current findings (not history) at or above `level`."""
    rank = SEVERITIES.index(level)
    return [
        f
        for f in (judgement or {}).get("findings", [])
        if f.get("severity") in SEVERITIES and SEVERITIES.index(f["severity"]) >= rank
    ]


def key(finding: dict) -> str:
    return f"{finding['kind']}@{finding['step_started']}"


def body(run_name: str, finding: dict, config: AlertConfig) -> dict:
    """The JSON sent: Slack's "text" and the fields a script reads."""
    link = f"{config.dashboard_url}/live?{urllib.parse.urlencode({'runs': run_name})}"
    kind = finding["kind"].replace("_", " ")
    text = (
        f"ContrastScope: {run_name}: {kind} ({finding['severity']}) since step {finding['step_started']}. "
        f"{finding['message']} Try: {finding['suggestion']} {link}"
    )
    return {
        "text": text,
        "run": run_name,
        "finding": finding["kind"],
        "severity": finding["severity"],
        "onset": finding["step_started"],
        "detected": finding["step_detected"],
        "message": finding["message"],
        "suggestion": finding["suggestion"],
        "link": link,
    }


def deliver(payload: dict, config: AlertConfig) -> None:
    """One attempt at every configured target; raises on a failure (a non-2xx answer, a non-zero exit)."""
    data = json.dumps(payload).encode()
    if config.webhook:
        request = urllib.request.Request(
            config.webhook, data=data, method="POST", headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=config.timeout_s) as answer:  # noqa: S310 - http(s) only
            if not 200 <= answer.status < 300:
                raise OSError(f"webhook answered {answer.status}")
    if config.command:
        done = subprocess.run(
            shlex.split(config.command) + [payload["text"]],
            input=data,
            capture_output=True,
            timeout=config.timeout_s,
            check=False,
        )
        if done.returncode:
            raise OSError(f"alert command exited {done.returncode}: {done.stderr.decode(errors='replace')[:200]}")


class Alerter:
    """A queue and one daemon thread that delivers with retries; `notify` only enqueues."""

    def __init__(self, config: AlertConfig, sleep=time.sleep):
        self.config, self._sleep = config, sleep
        self._queue: queue.Queue = queue.Queue()
        self._pending: set[tuple[str, str]] = set()  # (run path, key) queued or in flight
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="contrastscope-alerts", daemon=True)
        self._thread.start()

    def notify(self, run: Run, judgement: dict | None) -> int:
        """Queue every due finding of `judgement` not sent before; returns how many were queued."""
        sent = _load_sent(run)
        queued = 0
        for finding in due(judgement, self.config.severity):
            k = (run.path, key(finding))
            with self._lock:
                if k[1] in sent or k in self._pending:
                    continue
                self._pending.add(k)
            self._queue.put((run, finding))
            queued += 1
        return queued

    def _loop(self) -> None:
        while True:
            run, finding = self._queue.get()
            try:
                self._send(run, finding)
            finally:
                with self._lock:
                    self._pending.discard((run.path, key(finding)))
                self._queue.task_done()

    def _send(self, run: Run, finding: dict) -> None:
        payload = body(run.name, finding, self.config)
        for attempt in range(self.config.attempts):
            try:
                deliver(payload, self.config)
            except (OSError, subprocess.SubprocessError, ValueError) as e:
                log.warning(
                    "alert for %s (%s) failed, attempt %d of %d: %s",
                    run.name,
                    key(finding),
                    attempt + 1,
                    self.config.attempts,
                    e,
                )
                if attempt + 1 < self.config.attempts:
                    self._sleep(self.config.backoff_s * 2**attempt)
                continue
            _save_sent(run, key(finding))
            return

    def wait(self) -> None:
        """Block until everything queued has been delivered or given up (tests, a clean shutdown)."""
        self._queue.join()


def _path(run: Run) -> str:
    return run.file(layout.CACHE_DIR, SENT_FILE)


def _load_sent(run: Run) -> set[str]:
    try:
        body_ = bounds.parse_json(
            bounds.read_limited(run.storage, _path(run), 1 << 16, "alerts file"), run.storage.display(_path(run))
        )
    except (FileNotFoundError, RunFormatError, OSError):
        return set()
    sent = body_.get("sent") if isinstance(body_, dict) else None
    return {s for s in sent if isinstance(s, str)} if isinstance(sent, list) else set()


def _save_sent(run: Run, k: str) -> None:
    sent = sorted(_load_sent(run) | {k})[-MAX_SENT:]
    try:
        run.storage.makedirs(run.file(layout.CACHE_DIR))
        run.storage.write_json_atomic(_path(run), {"sent": sent})
    except (OSError, ValueError) as e:  # a read-only run: the alert went out, it may go out once more
        log.warning("could not record the alert sent for %s: %s", run.name, e)


_ALERTER: Alerter | None = None
_CONFIG: AlertConfig | None = None


def notify(run: Run, judgement: dict | None) -> None:
    """The worker's hook, after it writes a run's judgement: a no-op unless alerts are configured; never
    raises (a bad setting is logged once) and never waits on delivery."""
    global _ALERTER, _CONFIG
    if _CONFIG is None:
        try:
            _CONFIG = AlertConfig.from_env()
        except ValueError as e:
            log.error("alerts off: %s", e)
            _CONFIG = AlertConfig()
    if not _CONFIG.enabled or judgement is None:
        return
    if _ALERTER is None:
        _ALERTER = Alerter(_CONFIG)
    try:
        _ALERTER.notify(run, judgement)
    except (OSError, ValueError, KeyError, TypeError) as e:
        log.warning("alerts for %s skipped: %s", run.name, e)
