#!/usr/bin/env python3
"""kill -9 during a stream of PutEvents: every acknowledged event reaches its target (issue 4).

    python3 tests/integration/test_kill9_delivery.py path/to/ebridge

A real receiver -- a small keep-alive HTTP/1.1 server on an asyncio loop in a thread of this
process -- records every event it is sent (by envelope id, as often as it arrives) and answers
200.  The server runs with the durable default (--sync full) and `--function
recv=http://127.0.0.1:PORT/`; one rule on the default bus matches every event ("version": "0")
and has the function `recv` as its only target (matched-event input).

Client threads stream PutEvents (1 and 10 entries per call, alternating) and record every
EventId acknowledged with HTTP 200.  After KILL9_SECONDS the server is killed with SIGKILL
mid-stream and restarted on the same data dir and port; KILL9_ROUNDS times (default 3) with the
receiver up.  Then one more round with the receiver down (its port refuses connections) from
before the stream until after the restart: the deliveries of that round fail and are retried,
across the kill; the receiver comes back KILL9_DOWN_AFTER seconds after the restart.  After the
last restart one more acknowledged batch is sent.

Then the test waits (at most KILL9_DRAIN seconds) until the receiver has every acknowledged
EventId and the server is idle (no new receipts and no new invocation attempts of the rule in GET
/metrics for 3 s), stops the server with SIGTERM and checks:

  * every acknowledged EventId reached the receiver at least once (loss fails the test;
    duplicates are allowed and counted);
  * every received body is the envelope the server built for an event the test sent (id,
    source, detail); events of requests that were in flight at a kill (sent, never answered)
    may arrive or not and are counted apart;
  * the restarted server retried while the receiver refused, and no invocation failed for good;
  * the server stopped cleanly and the store's delivery queue is empty (every job's success was
    recorded; the test reads <data-dir>/ebridge.db read-only after the stop, as test_kill9.py).

Printed: acknowledged / delivered / duplicates (receipts beyond the first per id), and per round
what was acknowledged and in flight.  The server runs with --test-time-scale 10 so that the
backoff of the receiver-down round (1 s, 2 s, 4 s ... before jitter) takes a tenth of the real
time; the crash behaviour does not depend on it.

Environment: KILL9_ROUNDS (default 3), KILL9_SECONDS (default 2), KILL9_THREADS (default 8),
KILL9_DOWN_AFTER (default 1.5), KILL9_DRAIN (default 60).  Stdlib only; exit status 0 when
every check passed.
"""

import asyncio
import http.client
import json
import os
import re
import sqlite3
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Checker, Server, binary_from_argv, free_port  # noqa: E402

CT = "application/x-amz-json-1.1"
RULE = "kill9-deliver-all"
TARGET_ID = "recv"
FUNC_ARN = "arn:aws:lambda:us-east-1:000000000000:function:recv"
SOURCE = "test.kill9.delivery"


def log(msg):
    print(msg, flush=True)


# ---- the receiver ----------------------------------------------------------------------------
class Receiver:
    """Keep-alive HTTP/1.1 server on its own asyncio loop thread; records every event it is sent."""

    def __init__(self, port):
        self.port = port
        self.mu = threading.Lock()
        self.counts = {}      # envelope id -> receipts
        self.markers = {}     # envelope id -> (req marker, entry index)
        self.bad = []         # bodies that are not an envelope of ours
        self.receipts = 0
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = None
        self.writers = set()

    def _run(self, coro, timeout=10):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def up(self):
        async def go():
            self.server = await asyncio.start_server(self._conn, "127.0.0.1", self.port, reuse_address=True,
                                                     backlog=256)
        self._run(go())

    def down(self):
        """Close the listening socket and every connection: the port refuses from now on."""
        async def go():
            self.server.close()
            for w in list(self.writers):
                w.transport.abort()
            await self.server.wait_closed()
            self.server = None
        self._run(go())

    def close(self):
        if self.server:
            self.down()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    def _record(self, body):
        try:
            env = json.loads(body)
            eid, det = env["id"], env["detail"]
            ok = (isinstance(eid, str) and env.get("source") == SOURCE and env.get("detail-type") == "kill9"
                  and isinstance(det, dict) and "req" in det and "i" in det)
        except (ValueError, KeyError, TypeError):
            ok = False
        with self.mu:
            self.receipts += 1
            if not ok:
                self.bad.append(body[:200])
                return
            self.counts[eid] = self.counts.get(eid, 0) + 1
            self.markers[eid] = (det["req"], det["i"])

    async def _conn(self, reader, writer):
        self.writers.add(writer)
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                clen = 0
                while True:
                    h = await reader.readline()
                    if h in (b"\r\n", b"\n", b""):
                        break
                    k, _, v = h.partition(b":")
                    if k.strip().lower() == b"content-length":
                        clen = int(v.strip())
                body = await reader.readexactly(clen) if clen else b""
                # recorded before answering: a crash in between gives a duplicate, never a loss
                self._record(body)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            self.writers.discard(writer)
            writer.close()

    def snapshot(self):
        with self.mu:
            return dict(self.counts), dict(self.markers), list(self.bad), self.receipts


# ---- the clients -------------------------------------------------------------------------------
class Ledger:
    def __init__(self):
        self.mu = threading.Lock()
        self.sent = {}         # marker -> entries
        self.acked = {}        # marker -> [EventId or None]
        self.inflight = set()  # sent, never answered (the server died)
        self.non200 = 0
        self.failed_entries = 0


def stream(port, tid, stop, ledger, rnd):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    n = 0
    while not stop.is_set():
        n += 1
        marker = "r%d-t%d-%d" % (rnd, tid, n)
        k = 10 if n % 2 else 1
        body = json.dumps({"Entries": [{"Source": SOURCE, "DetailType": "kill9",
                                        "Detail": json.dumps({"req": marker, "i": i, "pad": "p" * 100})}
                                       for i in range(k)]})
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
                ledger.non200 += 1
                continue
            doc = json.loads(data)
            ledger.acked[marker] = [e.get("EventId") for e in doc["Entries"]]
            ledger.failed_entries += doc.get("FailedEntryCount", 0)


def call(port, op, body):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        c.request("POST", "/", body=json.dumps(body), headers={"X-Amz-Target": "AWSEvents." + op, "Content-Type": CT})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def metric(port, name):
    """A counter of the rule on GET /metrics: its {event_bus="default", rule=RULE} series (None if
    unreadable, 0 before the series exists). The engine counts the delivery metrics per rule."""
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return None
    m = re.search(r'^%s\{event_bus="default",rule="%s"\} (\S+)$' % (re.escape(name), RULE), text, re.M)
    return float(m.group(1)) if m else 0.0


def acked_ids(ledger):
    with ledger.mu:
        return {eid for ids in ledger.acked.values() for eid in ids if eid}


def main():
    exe = binary_from_argv()
    rounds = int(os.environ.get("KILL9_ROUNDS", "3"))
    seconds = float(os.environ.get("KILL9_SECONDS", "2"))
    nthreads = int(os.environ.get("KILL9_THREADS", "8"))
    down_after = float(os.environ.get("KILL9_DOWN_AFTER", "1.5"))
    drain_s = float(os.environ.get("KILL9_DRAIN", "60"))
    ck = Checker("kill -9 during PutEvents: delivery to a function URL, at least once")
    rport = free_port()
    recv = Receiver(rport)
    recv.up()
    srv = Server(exe, sync="full", log_level="info",
                 extra_args=["--function", "recv=http://127.0.0.1:%d/" % rport, "--test-time-scale", "10"])
    ledger = Ledger()
    try:
        srv.start()
        st, body = call(srv.port, "PutRule", {"Name": RULE, "EventPattern": json.dumps({"version": ["0"]})})
        if not ck.ok(st == 200, "PutRule", body):
            return ck.finish()
        st, body = call(srv.port, "PutTargets", {"Rule": RULE, "Targets": [{"Id": TARGET_ID, "Arn": FUNC_ARN}]})
        if not ck.ok(st == 200 and json.loads(body).get("FailedEntryCount") == 0, "PutTargets", body):
            return ck.finish()

        def one_round(rnd, receiver_down):
            stop = threading.Event()
            before = len(acked_ids(ledger))
            threads = [threading.Thread(target=stream, args=(srv.port, t, stop, ledger, rnd)) for t in range(nthreads)]
            for t in threads:
                t.start()
            time.sleep(seconds)
            srv.kill9()  # mid-stream
            stop.set()
            for t in threads:
                t.join()
            got = len(acked_ids(ledger)) - before
            with ledger.mu:
                infl = sum(ledger.sent[m] for m in ledger.inflight if m.startswith("r%d-" % rnd))
            rc = recv.snapshot()[3]
            log("round %d%s: %d events acknowledged in %.1f s, %d entries in flight at the kill; receiver: %d receipts "
                "so far" % (rnd + 1, " (receiver down)" if receiver_down else "", got, seconds, infl, rc))
            ck.ok(got > 0, "round %d: events were acknowledged before the kill" % (rnd + 1))
            t0 = time.monotonic()
            srv.start()
            counts = srv.store_counts()
            log("  restarted in %.0f ms%s" % ((time.monotonic() - t0) * 1000,
                                             ": store has %d events, %d jobs" % counts if counts else ""))

        for rnd in range(rounds):
            one_round(rnd, False)
        # the receiver refuses connections from before the stream until after the restart
        recv.down()
        one_round(rounds, True)
        time.sleep(down_after)
        retries = metric(srv.port, "ebridge_retry_invocation_attempts_total")
        recv.up()
        log("receiver back %.1f s after the restart; the restarted server had retried %s attempts" %
            (down_after, "?" if retries is None else "%d" % retries))
        ck.ok(retries is not None and retries > 0, "the restarted server retried while the receiver refused",
              "ebridge_retry_invocation_attempts_total = %r" % retries)

        # the last server takes new events too
        st, body = call(srv.port, "PutEvents", {"Entries": [
            {"Source": SOURCE, "DetailType": "kill9", "Detail": json.dumps({"req": "final", "i": i})} for i in range(10)]})
        if ck.ok(st == 200 and json.loads(body).get("FailedEntryCount") == 0, "PutEvents after the last restart", body):
            with ledger.mu:
                ledger.sent["final"] = 10
                ledger.acked["final"] = [e.get("EventId") for e in json.loads(body)["Entries"]]
        ck.ok(ledger.non200 == 0 and ledger.failed_entries == 0, "every answer was 200 without failed entries",
              "%d non-200, %d failed entries" % (ledger.non200, ledger.failed_entries))

        # ---- wait: every acknowledged event received, then idle ----
        want = acked_ids(ledger)
        t0 = time.monotonic()
        deadline = t0 + drain_s
        while time.monotonic() < deadline:
            counts = recv.snapshot()[0]
            if want.issubset(counts.keys()):
                break
            time.sleep(0.1)
        all_in = time.monotonic() - t0
        last = None
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            now = (recv.snapshot()[3], metric(srv.port, "ebridge_invocation_attempts_total"))
            if now != last:
                last, quiet_since = now, time.monotonic()
            elif time.monotonic() - quiet_since >= 3.0:
                break
            time.sleep(0.2)
        log("drain: every acknowledged event received %.1f s after the last PutEvents; idle after %.1f s" %
            (all_in, time.monotonic() - t0))
        failed = metric(srv.port, "ebridge_failed_invocations_total")
        ck.ok(failed == 0, "no invocation failed for good (last server)", "ebridge_failed_invocations_total = %r" % failed)
        rc = srv.stop()
        ck.ok(rc == 0, "SIGTERM after the drain: exit 0", "exit status %r" % rc)

        # ---- verify ----
        counts, markers, bad, receipts = recv.snapshot()
        with ledger.mu:
            sent = dict(ledger.sent)
            acked = {m: list(ids) for m, ids in ledger.acked.items()}
            inflight = set(ledger.inflight)
        want = {eid: (m, i) for m, ids in acked.items() for i, eid in enumerate(ids) if eid}
        missing = [(eid, want[eid]) for eid in want if eid not in counts]
        delivered = sum(1 for eid in want if eid in counts)
        dups = sum(n - 1 for n in counts.values())
        dup_ids = sum(1 for n in counts.values() if n > 1)
        extra = {eid: mk for eid, mk in markers.items() if eid not in want}
        extra_inflight = sum(1 for mk in extra.values() if mk[0] in inflight)
        unknown = {eid: mk for eid, mk in extra.items() if mk[0] not in inflight}
        wrong = [(eid, markers[eid], want[eid]) for eid in want if eid in markers and tuple(markers[eid]) != want[eid]]
        log("acknowledged %d, delivered %d, missing %d; receipts %d: duplicates %d (of %d ids); "
            "%d more events of requests in flight at a kill were delivered" %
            (len(want), delivered, len(missing), receipts, dups, dup_ids, extra_inflight))
        ck.ok(not missing, "every acknowledged event reached the receiver at least once",
              "%d of %d missing, e.g. %r" % (len(missing), len(want), missing[:3]))
        ck.ok(not bad, "every received body is an envelope of an event the test sent", repr(bad[:3]))
        ck.ok(not wrong, "each received event carries the detail of the entry its EventId acknowledged", repr(wrong[:3]))
        ck.ok(not unknown, "nothing delivered that was not sent (other than entries of in-flight requests)",
              repr(list(unknown.items())[:3]))
        ck.ok(all(mk[0] in sent for mk in markers.values()), "every delivered marker was sent")

        db = sqlite3.connect("file:%s?mode=ro" % os.path.join(srv.data_dir, "ebridge.db"), uri=True)
        try:
            jobs = db.execute("SELECT count(*) FROM jobs").fetchone()[0]
            dlq = db.execute("SELECT count(*) FROM dlq").fetchone()[0]
        finally:
            db.close()
        ck.ok(jobs == 0, "the store's delivery queue is empty after the drain", "%d jobs left" % jobs)
        ck.ok(dlq == 0, "no dead letters", "%d dead letters" % dlq)
    finally:
        if ck.failures:
            log("--- server log (tail) ---\n" + srv.log()[-3000:])
        srv.cleanup()
        recv.close()
    return ck.finish()


if __name__ == "__main__":
    sys.exit(main())
