#!/usr/bin/env python3
"""kill -9 durability test for `ebridge serve` (issue 3, "## Tests").

    python3 tests/integration/test_kill9.py path/to/ebridge

Starts a server with the durable default (--sync full) on a fresh data dir,
creates a rule on the default bus that matches every event (all envelopes
carry "version": "0") with one target, and streams PutEvents (1 and 10
entries) from several client threads, recording every EventId acknowledged
with HTTP 200.  After ~2 s the server is killed with SIGKILL mid-stream,
restarted on the same data dir, and the stream goes on; after KILL9_ROUNDS
kills (default 3) the server is restarted once more, must accept events, and
is stopped with SIGTERM (exit 0).  Then the store is read and:

  * every acknowledged EventId is stored, with the body the server built
    (envelope id = EventId, detail = what was sent);
  * requests that were in flight when the server died (sent, never answered)
    are all-or-nothing: either every entry of the request is stored or none;
  * every stored event has its delivery job (one rule x one target), and no
    job points at a missing event; no event id is stored twice; nothing is
    stored that the test did not send.

Reading the store: the test opens the SQLite backend's database file
(<data-dir>/ebridge.db) read-only with Python's sqlite3 module, after the
server has stopped.  It therefore knows that backend's schema (see
src/store/store_sqlite.c: events(rowid, id, ..., pending, body) and
jobs(id, event -> events.rowid, rule, target_id, ...)); if the schema
changes, update read_store() below.  The server keeps events until their jobs
are finished; the server runs with --no-delivery (ingest only), so the jobs
stay in the store for this check, and --retention 86400 keeps finished events
anyway. (Delivery across kill -9 is tests/integration/test_kill9_delivery.py.)

Environment: KILL9_ROUNDS (default 3), KILL9_SECONDS (stream time before each
kill, default 2), KILL9_THREADS (client threads, default 8).
Stdlib only.  Exit status 0 when every check passed.
"""

import http.client
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

CT = "application/x-amz-json-1.1"
RULE = "kill9-all"
TARGET_ID = "q1"
TARGET_ARN = "arn:aws:sqs:us-east-1:000000000000:kill9-nobody"
ACCOUNT, REGION = "000000000000", "us-east-1"

failures = []
passes = 0


def check(name, cond, detail=""):
    global passes
    if cond:
        passes += 1
    else:
        failures.append(name)
        print("FAIL %s%s" % (name, (": " + detail) if detail else ""), file=sys.stderr, flush=True)
    return cond


def log(msg):
    print(msg, flush=True)


class Server:
    def __init__(self, exe, data, logpath):
        self.logpath = logpath
        self.logf = open(logpath, "ab")
        self.start_at = self.logf.tell()
        self.proc = subprocess.Popen(
            [exe, "serve", "--listen", "127.0.0.1:0", "--data-dir", data, "--sync", "full", "--retention", "86400", "--no-delivery",
             "--log-level", "info"], stdout=self.logf, stderr=subprocess.STDOUT)
        self.port = None
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("server exited at start (%s): %s" % (self.proc.returncode, self.log_text()))
            m = re.search(r'msg="listening" addr=127\.0\.0\.1:(\d+)', self.log_text())
            if m:
                self.port = int(m.group(1))
                return
            time.sleep(0.01)
        self.proc.kill()
        raise RuntimeError("server did not start: " + self.log_text())

    def log_text(self):
        with open(self.logpath, "rb") as f:
            f.seek(self.start_at)
            return f.read().decode("utf-8", "replace")

    def kill9(self):
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.logf.close()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            rc = None
        self.logf.close()
        return rc


def call(port, op, body):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        c.request("POST", "/", body=json.dumps(body), headers={"X-Amz-Target": "AWSEvents." + op, "Content-Type": CT})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


class Ledger:
    """What the clients sent and what the server acknowledged."""

    def __init__(self):
        self.mu = threading.Lock()
        self.sent = {}      # req marker -> number of entries
        self.acked = {}     # req marker -> [EventId or None per entry]
        self.inflight = set()  # sent, no answer (connection died)
        self.failed = {}    # req marker -> HTTP status (non-200 answers)


def stream(port, tid, stop, ledger, seq, counts):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    n = 0
    pad = "p" * 150
    while not stop.is_set():
        n += 1
        marker = "r%d-t%d-%d" % (seq, tid, n)
        k = 10 if n % 2 else 1
        entries = [{"Source": "test.kill9", "DetailType": "kill9",
                    "Detail": json.dumps({"req": marker, "i": i, "pad": pad})} for i in range(k)]
        body = json.dumps({"Entries": entries})
        with ledger.mu:
            ledger.sent[marker] = k
        try:
            c.request("POST", "/", body=body, headers={"X-Amz-Target": "AWSEvents.PutEvents", "Content-Type": CT})
            r = c.getresponse()
            data = r.read()
        except (OSError, http.client.HTTPException):
            with ledger.mu:
                ledger.inflight.add(marker)
            return  # the server is gone
        with ledger.mu:
            if r.status != 200:
                ledger.failed[marker] = r.status
                counts["non200"] += 1
                continue
            doc = json.loads(data)
            ids = [e.get("EventId") for e in doc["Entries"]]
            ledger.acked[marker] = ids
            counts["calls"] += 1
            counts["events"] += sum(1 for x in ids if x)
            counts["entry_failures"] += doc.get("FailedEntryCount", 0)


def read_store(data):
    """The SQLite backend's rows (schema: src/store/store_sqlite.c)."""
    db = sqlite3.connect("file:%s?mode=ro" % os.path.join(data, "ebridge.db"), uri=True)
    try:
        events = db.execute("SELECT rowid, id, pending, body FROM events ORDER BY rowid").fetchall()
        jobs = db.execute("SELECT id, event, rule, target_id, state FROM jobs ORDER BY id").fetchall()
        ic = db.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        db.close()
    return events, jobs, ic


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    exe = os.path.abspath(sys.argv[1])
    rounds = int(os.environ.get("KILL9_ROUNDS", "3"))
    seconds = float(os.environ.get("KILL9_SECONDS", "2"))
    nthreads = int(os.environ.get("KILL9_THREADS", "8"))
    tmp = tempfile.mkdtemp(prefix="eb-kill9-")
    data = os.path.join(tmp, "data")
    logpath = os.path.join(tmp, "server.log")
    ledger = Ledger()
    srv = None
    try:
        srv = Server(exe, data, logpath)
        st, body = call(srv.port, "PutRule", {"Name": RULE, "EventPattern": json.dumps({"version": ["0"]})})
        if not check("PutRule", st == 200, body.decode(errors="replace")):
            return 1
        st, body = call(srv.port, "PutTargets", {"Rule": RULE, "Targets": [{"Id": TARGET_ID, "Arn": TARGET_ARN}]})
        if not check("PutTargets", st == 200 and json.loads(body).get("FailedEntryCount") == 0,
                     body.decode(errors="replace")):
            return 1
        for rnd in range(rounds):
            stop = threading.Event()
            counts = {"calls": 0, "events": 0, "non200": 0, "entry_failures": 0}
            threads = [threading.Thread(target=stream, args=(srv.port, t, stop, ledger, rnd, counts))
                       for t in range(nthreads)]
            for t in threads:
                t.start()
            time.sleep(seconds)
            srv.kill9()  # mid-stream: the clients are still sending
            stop.set()
            for t in threads:
                t.join()
            log("round %d: %d calls / %d events acknowledged in %.1f s, %d non-200, %d failed entries, "
                "killed with %d requests in flight" % (rnd + 1, counts["calls"], counts["events"], seconds,
                                                       counts["non200"], counts["entry_failures"],
                                                       sum(1 for m in ledger.inflight if m.startswith("r%d-" % rnd))))
            check("round %d: events were acknowledged before the kill" % (rnd + 1), counts["events"] > 0)
            check("round %d: no non-200 answers" % (rnd + 1), counts["non200"] == 0)
            check("round %d: no failed entries" % (rnd + 1), counts["entry_failures"] == 0)
            t0 = time.time()
            srv = Server(exe, data, logpath)
            m = re.search(r'msg="store: opened".*events=(\d+) jobs=(\d+)', srv.log_text())
            log("  restarted in %.0f ms%s" % ((time.time() - t0) * 1000,
                                             (": store has %s events, %s jobs" % m.groups()) if m else ""))
        # The restarted server still works: one more acknowledged batch, then a clean stop.
        st, body = call(srv.port, "PutEvents", {"Entries": [
            {"Source": "test.kill9", "DetailType": "kill9", "Detail": json.dumps({"req": "final", "i": i})}
            for i in range(10)]})
        if check("PutEvents after the last restart", st == 200, body.decode(errors="replace")):
            doc = json.loads(body)
            ledger.sent["final"] = 10
            ledger.acked["final"] = [e.get("EventId") for e in doc["Entries"]]
        st, body = call(srv.port, "ListTargetsByRule", {"Rule": RULE})
        check("the rule and its target survived the kills",
              st == 200 and [t["Id"] for t in json.loads(body).get("Targets", [])] == [TARGET_ID],
              body.decode(errors="replace"))
        rc = srv.stop()
        check("SIGTERM after the last restart: exit 0", rc == 0, "exit status %s" % rc)

        # ---- verify the store ----
        events, jobs, ic = read_store(data)
        check("SQLite integrity_check ok", ic == "ok", ic)
        by_marker = {}
        ids_seen = {}
        rowids = set()
        bad_body = 0
        for rowid, eid, pending, body in events:
            rowids.add(rowid)
            ids_seen[eid] = ids_seen.get(eid, 0) + 1
            try:
                env = json.loads(body)
                det = env["detail"]
                ok = env["id"] == eid and env["source"] == "test.kill9" and env["detail-type"] == "kill9"
            except (ValueError, KeyError, TypeError):
                ok, det = False, {}
            if not ok:
                bad_body += 1
                continue
            by_marker.setdefault(det.get("req"), {})[det.get("i")] = (eid, rowid, pending)
        check("no event id stored twice", all(v == 1 for v in ids_seen.values()),
              "%d duplicates" % sum(1 for v in ids_seen.values() if v > 1))
        check("every stored body is an envelope the server built from what was sent", bad_body == 0,
              "%d bad bodies" % bad_body)
        unknown = [mk for mk in by_marker if mk not in ledger.sent]
        check("nothing stored that was not sent", not unknown, repr(unknown[:5]))

        acked_ids = 0
        missing = []
        mismatched = []
        for mk, ids in ledger.acked.items():
            stored = by_marker.get(mk, {})
            for i, eid in enumerate(ids):
                if not eid:
                    continue
                acked_ids += 1
                if i not in stored:
                    missing.append((mk, i, eid))
                elif stored[i][0] != eid:
                    mismatched.append((mk, i, eid, stored[i][0]))
        log("store: %d events, %d jobs; %d acknowledged EventIds, %d requests in flight at the kills"
            % (len(events), len(jobs), acked_ids, len(ledger.inflight)))
        check("every acknowledged EventId is in the store", not missing,
              "%d of %d missing, e.g. %r" % (len(missing), acked_ids, missing[:3]))
        check("stored ids equal the acknowledged EventIds", not mismatched, repr(mismatched[:3]))

        partial = []
        present = absent = 0
        for mk in ledger.inflight:
            got = len(by_marker.get(mk, {}))
            if got == 0:
                absent += 1
            elif got == ledger.sent[mk]:
                present += 1
            else:
                partial.append((mk, got, ledger.sent[mk]))
        log("in-flight requests: %d fully stored, %d absent, %d partial" % (present, absent, len(partial)))
        check("in-flight requests are all-or-nothing", not partial, repr(partial[:5]))
        # Acknowledged requests are complete too (no extra or missing entries).
        extra = [mk for mk, ids in ledger.acked.items() if len(by_marker.get(mk, {})) != sum(1 for x in ids if x)]
        check("acknowledged requests stored exactly", not extra, repr(extra[:5]))

        jobs_by_event = {}
        orphans = 0
        wrong = 0
        want_rule = "%s/%s/default/%s" % (ACCOUNT, REGION, RULE)
        for jid, ev, rule, target, state in jobs:
            if ev not in rowids:
                orphans += 1
            jobs_by_event[ev] = jobs_by_event.get(ev, 0) + 1
            if rule != want_rule or target != TARGET_ID:
                wrong += 1
        nojob = [r[1] for r in events if jobs_by_event.get(r[0], 0) != 1]
        badpending = [r[1] for r in events if r[2] != jobs_by_event.get(r[0], 0)]
        check("every stored event has exactly its one job", not nojob, "%d events without, e.g. %r"
              % (len(nojob), nojob[:3]))
        check("events.pending equals the number of its job rows", not badpending, repr(badpending[:3]))
        check("no job without its event", orphans == 0, "%d orphan jobs" % orphans)
        check("every job names the rule and the target", wrong == 0, "%d jobs with another rule/target (want %s)"
              % (wrong, want_rule))
    finally:
        if srv and srv.proc.poll() is None:
            srv.proc.kill()
            srv.proc.wait()
        if failures:
            try:
                with open(logpath, "rb") as f:
                    print("--- server log (tail) ---\n" + f.read().decode("utf-8", "replace")[-3000:],
                          file=sys.stderr)
            except OSError:
                pass
        shutil.rmtree(tmp, ignore_errors=True)
    print("%d passed, %d failed" % (passes, len(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
