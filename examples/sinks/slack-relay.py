#!/usr/bin/env python3
"""A CrewSink receiver that posts the end of each run to a Slack incoming webhook (standard library only).

It takes the operator's CloudEvents in either content mode (binary: attributes in ce- headers, the data as the
body; structured: one application/cloudevents+json document), checks the body's signature when it has a key,
drops the events it has already posted (by id: the operator delivers at least once), and answers 2xx only once
Slack has taken the message, so that the operator retries (with its backoff) while Slack is unreachable.

Environment:
  SLACK_WEBHOOK_URL   the Slack incoming webhook (https://hooks.slack.com/services/...); required
  SIGNING_KEY_FILE    a file holding the CrewSink's signing key: every request must then carry a valid
                      X-Crew-Signature (optional)
  PORT                where to listen (default 8080); GET /healthz answers 200
  ALL_PHASES          "true": post every phase change too, not only the end of each run

Run it locally against a test hook:  SLACK_WEBHOOK_URL=https://... python3 slack-relay.py
"""

import collections
import hashlib
import hmac
import json
import os
import sys
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 64 * 1024
SEEN_IDS = 10_000
ICONS = {"Succeeded": ":white_check_mark:", "Failed": ":x:", "Cancelled": ":no_entry_sign:"}


def verify(key, body, header):
    """Whether `header` is `sha256=<hex HMAC-SHA256 of body under key>`."""
    expected = "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header or "")


def parse(headers, body):
    """(attributes, data) of a CloudEvent in either HTTP content mode."""
    content_type = headers.get("Content-Type", "")
    if content_type.startswith("application/cloudevents+json"):
        event = json.loads(body)
        data = event.pop("data", None) or {}
        return event, data
    attributes = {
        name[3:].lower(): value for name, value in headers.items() if name.lower().startswith("ce-")
    }
    if "id" not in attributes or "type" not in attributes:
        raise ValueError("not a CloudEvent: no ce-id or ce-type header")
    return attributes, json.loads(body or b"{}")


def message(attributes, data):
    """The Slack text for an event, or None for one it does not post."""
    kind = attributes.get("type", "")
    where = f"{data.get('namespace', '?')}/{data.get('execution', attributes.get('subject', '?'))}"
    phase = data.get("phase", "?")
    if kind == "dev.crew.execution.completed":
        took = data.get("durationSeconds")
        text = f"{ICONS.get(phase, ':grey_question:')} *{where}* {phase}"
        if took is not None:
            text += f" after {took} s"
        if phase != "Succeeded":
            text += f": {data.get('reason', '')} {data.get('message') or ''}".rstrip()
        return text
    if kind == "dev.crew.execution.state_changed" and os.environ.get("ALL_PHASES") == "true":
        return f"*{where}* {data.get('previousPhase', '?')} → {phase} ({data.get('reason', '')})"
    return None


class Relay:
    """The posting side: Slack's URL, the ids already posted (bounded, oldest forgotten first)."""

    def __init__(self, webhook):
        self.webhook = webhook
        self.seen = collections.OrderedDict()
        self.lock = threading.Lock()

    def already_posted(self, event_id):
        with self.lock:
            return event_id in self.seen

    def posted(self, event_id):
        with self.lock:
            self.seen[event_id] = True
            while len(self.seen) > SEEN_IDS:
                self.seen.popitem(last=False)

    def post(self, text):
        """Posts `text`; raises on anything but a 2xx from Slack."""
        request = urllib.request.Request(
            self.webhook,
            data=json.dumps({"text": text}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            if not 200 <= response.status < 300:
                raise OSError(f"Slack answered {response.status}")


def handler(relay, key):
    class Handler(BaseHTTPRequestHandler):
        def answer(self, status, text=""):
            body = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            self.answer(200 if self.path == "/healthz" else 404, "ok\n")

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                return self.answer(413, "too big\n")
            body = self.rfile.read(length)
            if key is not None and not verify(key, body, self.headers.get("X-Crew-Signature")):
                return self.answer(401, "bad signature\n")
            try:
                attributes, data = parse(self.headers, body)
            except (ValueError, json.JSONDecodeError) as error:
                return self.answer(400, f"{error}\n")
            event_id = attributes["id"]
            text = message(attributes, data)
            if text is None or relay.already_posted(event_id):
                return self.answer(204)
            try:
                relay.post(text)
            except (OSError, urllib.error.URLError) as error:
                # Not acknowledged: the operator retries this event (and holds the run's later ones back).
                return self.answer(502, f"Slack: {error}\n")
            relay.posted(event_id)
            return self.answer(202)

        def log_message(self, fmt, *args):
            sys.stderr.write("slack-relay: " + (fmt % args) + "\n")

    return Handler


def main():
    webhook = os.environ.get("SLACK_WEBHOOK_URL")
    if not webhook:
        sys.exit("SLACK_WEBHOOK_URL is required")
    key_file = os.environ.get("SIGNING_KEY_FILE")
    key = open(key_file, "rb").read() if key_file else None
    port = int(os.environ.get("PORT", "8080"))
    server = ThreadingHTTPServer(("", port), handler(Relay(webhook), key))
    sys.stderr.write(f"slack-relay: listening on :{port}\n")
    server.serve_forever()


if __name__ == "__main__":
    main()
