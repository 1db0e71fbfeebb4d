"""The reference worker (examples/workers/report_progress.py) against a stub progress endpoint.

Progress is best-effort: an operator that restarts, is not ready yet, or answers that the attempt is over must never
fail the work. The example runs as a worker would (a subprocess with CREW_PROGRESS_URL and CREW_PROGRESS_TOKEN_FILE)
against a stub that answers from a script, closes its port for a while to refuse connections, and records every
request. Standard library only: `python3 -m unittest discover -s tests/tools` (or `make example-worker`).
"""

import contextlib
import importlib.util
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "workers" / "report_progress.py"

# A script step: close the port (connections are refused) for StubOperator.refuse_seconds, then listen again.
REFUSE = "refuse"
TAKEN = (202, {}, {"accepted": True})
NOT_VISIBLE_YET = (409, {}, {"error": "step main attempt 1 of team-a/report is not visible yet: retry"})
CACHES_NOT_LISTED = (503, {"Retry-After": "1"}, {"error": "the caches have not listed yet: retry"})
FINISHED = (409, {}, {"error": "step main attempt 1 of team-a/report has finished: nothing to report to"})


def load_example():
    spec = importlib.util.spec_from_file_location("report_progress", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class StubOperator:
    """POST /v1/progress answered from a script, one step per request; every request is recorded.

    After the script every request gets `then`, so a worker that should have stopped shows up in `requests`."""

    def __init__(self, script, then=FINISHED, refuse_seconds=1.5):
        self.script = list(script)
        self.then = then
        self.refuse_seconds = refuse_seconds
        self.requests = []  # (monotonic time, path, headers, body)
        self.answer = then
        self.stopping = False
        self.server = self._listen(0)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1/progress"
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping = True
        self.thread.join(timeout=10)
        self.server.server_close()

    def _listen(self, port):
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                stub.requests.append((time.monotonic(), self.path, dict(self.headers), json.loads(body or b"{}")))
                code, headers, answer = stub.answer
                data = json.dumps(answer).encode()
                self.send_response(code)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        server = HTTPServer(("127.0.0.1", port), Handler)  # SO_REUSEADDR: the same port again after a refusal
        server.timeout = 0.05
        return server

    def _serve_one(self):
        seen = len(self.requests)
        while len(self.requests) == seen and not self.stopping:
            self.server.handle_request()

    def _run(self):
        for step in self.script:
            if step == REFUSE:
                self.server.server_close()
                time.sleep(self.refuse_seconds)
                self.server = self._listen(self.port)
                continue
            self.answer = step
            self._serve_one()
        self.answer = self.then
        while not self.stopping:
            self.server.handle_request()


def run_example(url, token_file, records=1000, seconds_per_chunk=0.05):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREW_")}
    env.update(EXAMPLE_RECORDS=str(records), EXAMPLE_SECONDS_PER_CHUNK=str(seconds_per_chunk))
    if url is not None:
        env.update(CREW_PROGRESS_URL=url, CREW_PROGRESS_TOKEN_FILE=token_file)
    return subprocess.run([sys.executable, str(EXAMPLE)], env=env, capture_output=True, text=True, timeout=120)


def report_body(i, records=1000):
    done = 100 * i
    return {"percent": 100 * done / records, "message": f"{done}/{records} records",
            "metrics": {"records_processed": done}}


class TheExampleWorker(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.token_file = os.path.join(self.dir.name, "token")
        with open(self.token_file, "w") as f:
            f.write("token-1\n")

    def tearDown(self):
        self.dir.cleanup()

    def test_survives_an_operator_restart_and_stops_once_the_attempt_is_finished(self):
        script = [NOT_VISIBLE_YET, TAKEN, CACHES_NOT_LISTED, TAKEN, REFUSE, TAKEN, FINISHED]
        with StubOperator(script) as stub:
            done = run_example(stub.url, self.token_file)
            time.sleep(0.3)  # anything the worker still sent would be recorded by now
            requests = list(stub.requests)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn("processed 1000 records", done.stdout)
        bodies = [body for _, _, _, body in requests]
        # Report 0 retried after "not visible yet", report 1 after the 503, report 2 after the refused connection
        # (none lost); report 3 hears "finished", and reports 4 to 10 are never sent.
        self.assertEqual(bodies, [report_body(0), report_body(0), report_body(1), report_body(1), report_body(2),
                                  report_body(3)], done.stderr)
        for _, path, headers, _ in requests:
            self.assertEqual(path, "/v1/progress")
            self.assertEqual(headers["Authorization"], "Bearer token-1")
            self.assertEqual(headers["Content-Type"], "application/json")
        after_503 = requests[3][0] - requests[2][0]
        self.assertGreaterEqual(after_503, 1.0, "Retry-After: 1 is honoured")
        self.assertLess(after_503, 3.0)
        self.assertIn("unreachable", done.stderr)
        self.assertIn("stopped reporting", done.stderr)

    def test_a_pod_that_is_no_worker_stops_reporting_at_the_first_403(self):
        with StubOperator([(403, {}, {"error": "pod team-a/x is not a step attempt's worker"})]) as stub:
            done = run_example(stub.url, self.token_file, records=300)
            time.sleep(0.3)
            count = len(stub.requests)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(count, 1)

    def test_a_refused_report_is_dropped_and_the_next_one_still_sent(self):
        script = [(422, {}, {"error": "more than 32 metrics"}), TAKEN]
        with StubOperator(script, then=TAKEN) as stub:
            done = run_example(stub.url, self.token_file, records=200)
            time.sleep(0.3)
            bodies = [body for _, _, _, body in stub.requests]
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(bodies, [report_body(i, 200) for i in range(3)])

    def test_without_the_progress_endpoint_the_worker_just_works(self):
        done = run_example(None, None, records=200)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn("processed 200 records", done.stdout)
        self.assertEqual(done.stderr, "")


def readme_shell_snippet():
    """The shell worker's `report` function and its example call, from README "Reporting progress"."""
    readme = (EXAMPLE.parents[2] / "README.md").read_text()
    start = readme.index("```sh\n", readme.index("In a shell worker:")) + len("```sh\n")
    return readme[start:readme.index("```", start)]


@unittest.skipIf(shutil.which("curl") is None or shutil.which("bash") is None, "needs curl and bash")
class TheReadmeShellSnippet(unittest.TestCase):
    def run_snippet(self, url):
        with tempfile.TemporaryDirectory() as dir:
            token_file = os.path.join(dir, "token")
            with open(token_file, "w") as f:
                f.write("token-1\n")
            script = "set -euo pipefail\n" + readme_shell_snippet() + "report ''\necho survived\n"
            env = {k: v for k, v in os.environ.items() if not k.startswith("CREW_")}
            if url is not None:
                env.update(CREW_PROGRESS_URL=url, CREW_PROGRESS_TOKEN_FILE=token_file)
            return subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=120)

    def test_retries_a_refused_connection_and_a_503_and_never_fails_the_script(self):
        with StubOperator([REFUSE, CACHES_NOT_LISTED, TAKEN], then=FINISHED) as stub:
            done = self.run_snippet(stub.url)
            time.sleep(0.3)
            requests = list(stub.requests)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(done.stdout, "survived\n")
        bodies = [body for _, _, _, body in requests]
        example = {"percent": 45, "message": "chapter 4 of 9", "metrics": {"records_processed": 4500},
                   "warnings": ["source 7 timed out"]}
        # The report: refused (not recorded), 503, taken. The heartbeat: 409 finished, not retried.
        self.assertEqual(bodies, [example, example, {}], done.stderr)
        self.assertGreaterEqual(requests[1][0] - requests[0][0], 1.0, "Retry-After: 1 is honoured")
        for _, _, headers, _ in requests:
            self.assertEqual(headers["Authorization"], "Bearer token-1")
            self.assertEqual(headers["Content-Type"], "application/json")

    def test_without_the_progress_endpoint_it_does_nothing(self):
        done = self.run_snippet(None)
        self.assertEqual((done.returncode, done.stdout, done.stderr), (0, "survived\n", ""))


class TheReporter(unittest.TestCase):
    """The retry rules, without a subprocess."""

    @classmethod
    def setUpClass(cls):
        cls.example = load_example()

    def quiet(self):
        return contextlib.redirect_stderr(io.StringIO())

    def test_answers_and_what_the_worker_does(self):
        judge = self.example.judge
        for code, retry_after, message, failures, verdict in [
            (503, "1", "this replica is a standby: retry", 0, "retry"),
            (429, "1", "more than 20 reports a second", 0, "retry"),
            (500, None, "", 3, "retry"),
            (409, None, "step main attempt 1 is not visible yet", 0, "retry"),
            (409, "1", "anything", 0, "retry"),
            (409, None, "step main attempt 1 has finished", 0, "stop"),
            (409, None, "a later attempt (2) exists", 0, "stop"),
            (403, None, "not a worker pod", 0, "stop"),
            (401, None, "token refused", 0, "retry"),
            (401, None, "token refused", 2, "drop"),
            (400, None, "not a report", 0, "drop"),
            (413, None, "", 0, "drop"),
            (422, None, "more than 32 metrics", 0, "drop"),
            (404, None, "", 0, "drop"),
        ]:
            with self.subTest(code=code, message=message, failures=failures):
                self.assertEqual(self.example.judge(code, retry_after, message, failures)[0], verdict)
        _, wait, _ = judge(503, "2", "", 0)
        self.assertTrue(2.0 <= wait <= 2.5, wait)

    def test_backoff_grows_with_jitter_and_is_capped(self):
        backoff = self.example.backoff
        waits = [backoff(0) for _ in range(50)]
        self.assertTrue(all(0.25 <= w <= 0.5 for w in waits), waits)
        self.assertGreater(len(set(waits)), 1, "jittered")
        self.assertTrue(all(5.0 <= backoff(20) <= 10.0 for _ in range(50)))
        self.assertTrue(1.0 <= self.example.retry_delay("Wed, 21 Oct 2026 07:28:00 GMT", 2) <= 2.0)

    def test_an_unreachable_operator_costs_at_most_the_budget(self):
        with socket.socket() as probe:  # a port nobody listens on
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        reporter = self.example.Reporter(url=f"http://127.0.0.1:{port}/v1/progress", token_file=__file__,
                                         budget_seconds=1.0)
        started = time.monotonic()
        with self.quiet() as err:
            self.assertFalse(reporter.report(percent=1))
        self.assertLess(time.monotonic() - started, 2.0)
        self.assertIn("unreachable", err.getvalue())
        self.assertFalse(reporter.stopped, "the next report tries again")

    def test_an_operator_that_never_answers_times_out_and_is_retried(self):
        with socket.socket() as silent:  # accepts connections (the backlog), never answers
            silent.bind(("127.0.0.1", 0))
            silent.listen(16)
            port = silent.getsockname()[1]
            reporter = self.example.Reporter(url=f"http://127.0.0.1:{port}/v1/progress", token_file=__file__,
                                             budget_seconds=1.0, timeout_seconds=0.2)
            with self.quiet() as err:
                self.assertFalse(reporter.report())
        self.assertIn("timed out", err.getvalue())
        self.assertIn("retrying", err.getvalue())

    def test_a_result_is_posted_to_the_result_path(self):
        with tempfile.NamedTemporaryFile("w", suffix=".token") as token, \
                StubOperator([(201, {}, {"size": 15})]) as stub:
            token.write("token-1\n")
            token.flush()
            reporter = self.example.Reporter(url=stub.url, token_file=token.name)
            with self.quiet():
                self.assertTrue(reporter.post_result({"answer": 42}))
        (_, path, headers, body) = stub.requests[0]
        self.assertEqual(path, "/v1/result")
        self.assertEqual(headers["Content-Type"], "application/json")
        self.assertEqual(body, {"answer": 42})

    def test_earlier_results_are_read_from_the_results_dir(self):
        with tempfile.TemporaryDirectory() as directory:
            with open(os.path.join(directory, "research"), "w") as f:
                f.write('{"topic": "tides"}')
            os.environ["CREW_RESULTS_DIR"] = directory
            try:
                self.assertEqual(self.example.earlier_results(), {"research": '{"topic": "tides"}'})
                os.environ["CREW_RESULTS_DIR"] = os.path.join(directory, "missing")
                self.assertEqual(self.example.earlier_results(), {})
            finally:
                del os.environ["CREW_RESULTS_DIR"]

    def test_nothing_raises(self):
        with self.quiet():
            missing = self.example.Reporter(url="http://127.0.0.1:9/v1/progress", token_file="/nonexistent/token",
                                            budget_seconds=0.3)
            self.assertFalse(missing.report(percent=5))
            broken = self.example.Reporter(url="http://127.0.0.1:9/v1/progress", token_file=__file__)
            self.assertFalse(broken.report(metrics={"x": object()}))  # not JSON
            self.assertFalse(self.example.Reporter(url="not a url", token_file=__file__,
                                                   budget_seconds=0.3).report())


if __name__ == "__main__":
    unittest.main()
