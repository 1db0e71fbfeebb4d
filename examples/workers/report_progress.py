# A worker that reports its progress to crew-operator (README, "Reporting progress"); standard library only.
import json, os, time, urllib.request

def report(**fields):  # percent, message, metrics={name: number}, warnings=[text]; no fields: a heartbeat
    token = open(os.environ["CREW_PROGRESS_TOKEN_FILE"]).read().strip()  # re-read: the kubelet renews it
    request = urllib.request.Request(os.environ["CREW_PROGRESS_URL"], data=json.dumps(fields).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"}, method="POST")
    for _ in range(5):  # a standby replica answers 503 and a busy one 429: retry
        try:
            return urllib.request.urlopen(request, timeout=5).status
        except urllib.error.HTTPError as e:
            if e.code not in (429, 503): raise
            time.sleep(int(e.headers.get("Retry-After", "1")))

records = 1000
for done in range(0, records + 1, 100):
    time.sleep(1)  # the real work
    report(percent=100 * done / records, message=f"{done}/{records} records", metrics={"records_processed": done})
