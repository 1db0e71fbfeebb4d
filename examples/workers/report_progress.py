"""A worker that reports its progress to crew-operator (README, "Reporting progress"); standard library only.

Reporting is best-effort: progress never decides a step's outcome, so nothing here raises, and a report that
cannot be delivered is retried for a while, then dropped. Copy `Reporter` into your worker. What it does with
each answer (README, "The worker contract"):

  202                            taken
  503, 429, other 5xx            wait Retry-After (else back off), with jitter, and retry: a standby, caches not
                                 listed yet, the attempt not visible yet, too many reports
  connection refused / reset,    back off with jitter and retry: the operator is restarting or being upgraded
  timeout
  409 "not visible yet"          (or any 409 with Retry-After) retry like a 503
  409, 403                       the attempt is finished, a later attempt exists, or this pod is no worker: stop
                                 reporting for good (the work itself carries on)
  401                            re-read the token (the kubelet renews it) and retry twice, then drop the report
  400, 413, 422, other 4xx       this report is wrong: drop it, keep reporting
"""

import http.client
import json
import os
import random
import sys
import time
import urllib.error
import urllib.request


def log(message):
    try:
        print(f"progress: {message}", file=sys.stderr, flush=True)
    except Exception:  # no stderr: stay quiet rather than fail
        pass


class Reporter:
    """Best-effort progress reports of one step attempt to $CREW_PROGRESS_URL."""

    def __init__(self, url=None, token_file=None, budget_seconds=60.0, timeout_seconds=5.0):
        self.url = url if url is not None else os.environ.get("CREW_PROGRESS_URL", "")
        self.token_file = token_file if token_file is not None else os.environ.get("CREW_PROGRESS_TOKEN_FILE", "")
        # How long one report is retried before it is dropped (the work waits for it meanwhile).
        self.budget_seconds = budget_seconds
        self.timeout_seconds = timeout_seconds
        # Without a URL the operator runs without the progress endpoint: nothing to report to.
        self.stopped = not (self.url and self.token_file)

    def report(self, **fields):
        """Sends percent, message, metrics={name: number}, warnings=[text]; no fields: a heartbeat.

        Returns True when the operator took the report. Never raises."""
        if self.stopped:
            return False
        try:
            return self._deliver(json.dumps(fields).encode())
        except Exception as e:  # a bug here must not fail the work either
            log(f"report dropped: {e!r}")
            return False

    def post_result(self, result):
        """Posts the step's full result (README, "Step results"): a dict or list as JSON, anything else as text;
        at most 1 MiB. Call it once, before exiting: the last result posted before the attempt ends is the step's
        result, and later steps read it from $CREW_RESULTS_DIR/<this step>. Retried like a report; returns True
        once the operator kept it. Never raises."""
        if self.stopped:
            return False
        try:
            if isinstance(result, (dict, list)):
                body, content_type = json.dumps(result).encode(), "application/json"
            else:
                body, content_type = str(result).encode(), "text/plain; charset=utf-8"
            url = self.url[: -len("/progress")] + "/result" if self.url.endswith("/progress") else self.url
            return self._deliver(body, url, content_type)
        except Exception as e:  # a bug here must not fail the work either
            log(f"result not posted: {e!r}")
            return False

    def _deliver(self, body, url=None, content_type="application/json"):
        deadline = time.monotonic() + self.budget_seconds
        failures = 0
        while True:
            verdict, wait, why = self._post(body, failures, url or self.url, content_type)
            if verdict == "taken":
                return True
            if verdict == "stop":
                self.stopped = True
                log(f"stopped reporting: {why}")
                return False
            if verdict == "drop":
                log(f"report dropped: {why}")
                return False
            failures += 1
            if time.monotonic() + wait > deadline:
                log(f"report dropped after {failures} tries: {why}")
                return False
            log(f"{why}; retrying in {wait:.1f} s")
            time.sleep(wait)

    def _post(self, body, failures, url, content_type):
        """One try: ("taken" | "retry" | "drop" | "stop", seconds to wait before a retry, why)."""
        try:
            with open(self.token_file) as f:  # read for every try: the kubelet renews the token
                token = f.read().strip()
        except OSError as e:
            return "retry", backoff(failures), f"cannot read the token ({e.strerror})"
        request = urllib.request.Request(url, data=body, method="POST", headers={
            "Authorization": f"Bearer {token}", "Content-Type": content_type})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_seconds):
                return "taken", 0, ""
        except urllib.error.HTTPError as e:
            return judge(e.code, e.headers.get("Retry-After"), error_message(e), failures)
        except (OSError, http.client.HTTPException) as e:  # refused, reset, timed out, cut short, no such host
            return "retry", backoff(failures), f"operator unreachable ({getattr(e, 'reason', e)})"


def judge(code, retry_after, message, failures):
    """What to do with an HTTP error answer (see the table at the top)."""
    why = f"HTTP {code}: {message}"
    wait = retry_delay(retry_after, failures)
    if code in (429, 503) or code >= 500:
        return "retry", wait, why
    if code == 409:
        if retry_after is not None or "not visible yet" in message.lower():
            return "retry", wait, why
        return "stop", 0, why
    if code == 403:
        return "stop", 0, why
    if code == 401 and failures < 2:  # a token being renewed; one that stays refused will not improve
        return "retry", wait, why
    return "drop", 0, why


def backoff(failures, base=0.5, cap=10.0):
    """Exponential backoff with jitter: 0.25-0.5 s, 0.5-1 s, 1-2 s, ... up to 5-10 s."""
    return min(cap, base * 2 ** failures) * random.uniform(0.5, 1.0)


def retry_delay(retry_after, failures):
    """Retry-After (seconds) plus up to half a second of jitter, else the backoff."""
    try:
        seconds = float(retry_after)
    except (TypeError, ValueError):  # absent, or an HTTP date
        return backoff(failures)
    return min(max(seconds, 0.0), 60.0) + random.uniform(0.0, 0.5)


def error_message(error):
    try:
        text = error.read(4096).decode("utf-8", "replace")
    except Exception:
        return ""
    try:
        return str(json.loads(text).get("error", text))
    except Exception:
        return text


def earlier_results():
    """The results of the steps before this one: {step: text}, from $CREW_RESULTS_DIR (README, "Step results")."""
    directory = os.environ.get("CREW_RESULTS_DIR", "")
    try:
        names = sorted(os.listdir(directory)) if directory else []
    except OSError:  # no earlier step has a result yet
        return {}
    results = {}
    for name in names:
        try:
            with open(os.path.join(directory, name), encoding="utf-8") as f:
                results[name] = f.read()
        except OSError:
            continue
    return results


def main():
    reporter = Reporter()
    records = int(os.environ.get("EXAMPLE_RECORDS", "1000"))
    seconds_per_chunk = float(os.environ.get("EXAMPLE_SECONDS_PER_CHUNK", "1"))
    for done in range(0, records + 1, 100):
        time.sleep(seconds_per_chunk)  # the real work
        reporter.report(percent=100 * done / records, message=f"{done}/{records} records",
                        metrics={"records_processed": done})
    print(f"processed {records} records")


if __name__ == "__main__":
    main()
