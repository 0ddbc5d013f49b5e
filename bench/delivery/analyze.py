#!/usr/bin/env python3
"""Figures of one delivery benchmark run (bench/delivery/run.sh).

    analyze.py RECORDS RECV_TIMELINE GEN_TIMELINE GEN_RESULT_LINE RATE WARMUP_S
    analyze.py threads BEFORE AFTER EVENTS     (CPU per server thread: see threads())

RECORDS: the receiver's "recv_us sent_us id" lines; RECV_TIMELINE: its "second delivered" lines;
GEN_TIMELINE: the load generator's "second acked sent" lines; GEN_RESULT_LINE: its RESULT line.
Prints one line of key=value pairs:

  acked, delivered (receipts), unique, dups, missing (acked - unique, at least 0)
  lat_n, lat_p50_ms, lat_p90_ms, lat_p99_ms, lat_p999_ms, lat_max_ms: receive time minus the
      event's put time (its Detail "ts"), over events put after the warm-up
  dlv_per_s: delivered per second over the measured window (warm-up to the end of sending)
  backlog_slope: least-squares slope of backlog = acked - delivered, sampled every second over
      that window (events/s per second); backlog_mean, backlog_max, backlog_end (at the end of
      sending)
  drain_s: whole seconds from the end of sending until delivered >= acked (-1: never)
  flat: 1 when backlog_slope <= 1% of RATE (growing by less than 1% of the offered rate; a
      shrinking backlog is flat) and backlog_end <= RATE (less than one second of events behind)
"""
import sys


def load_timeline(path, col=1):
    """second -> the cumulative count sampled when that second began (the first sample of the
    second: both programs sample right after the boundary; a program's final line, written at
    exit in the middle of a second, is ignored unless it is the only one), and the last value."""
    out = {}
    last = 0
    with open(path) as f:
        for line in f:
            p = line.split()
            if len(p) > col:
                out.setdefault(int(p[0]), int(p[col]))
                last = int(p[col])
    return out, last


def pct(sorted_v, p):
    if not sorted_v:
        return float("nan")
    i = int(round(p / 100.0 * (len(sorted_v) - 1)))
    return sorted_v[i]


def slope(xs, ys):
    n = len(xs)
    if n < 2:
        return 0.0
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx else 0.0


ROLES = ["main", "syncer", "checkpointer", "committer", "httpc", "procs", "logger", "dispatcher"]


def threads(before, after, events):
    """CPU per server thread between two snapshots ("tid ticks comm" lines of /proc/PID/task/*/stat,
    the first tid being the process). Unnamed threads are labelled by creation order (store:
    syncer, checkpointer, committer; delivery: httpc (libcurl loop), procs, logger, dispatcher);
    named ones (MHD-worker...) by name. Prints role=ms (us/event) ... total."""
    def load(path):
        out = {}
        with open(path) as f:
            for line in f:
                p = line.split(None, 2)
                if len(p) == 3:
                    out[int(p[0])] = (int(p[1]), p[2].strip())
        return out
    a, b = load(before), load(after)
    tids = sorted(b)
    acc = {}
    for k, tid in enumerate(tids):
        ticks, comm = b[tid]
        d = (ticks - a.get(tid, (0, ""))[0]) * 10  # ms (USER_HZ = 100)
        role = comm if comm != "ebridge" or k >= len(ROLES) else ROLES[k]
        acc[role] = acc.get(role, 0) + d
    tot = sum(acc.values())
    ev = max(int(events), 1)
    parts = ["%s=%dms(%.0fus)" % (r, ms, ms * 1000.0 / ev) for r, ms in sorted(acc.items(), key=lambda x: -x[1]) if ms]
    print("server_cpu " + " ".join(parts) + " total=%dms(%.0fus/event)" % (tot, tot * 1000.0 / ev))


def main():
    if sys.argv[1] == "threads":
        return threads(sys.argv[2], sys.argv[3], sys.argv[4])
    rec_path, rtl_path, gtl_path, result, rate, warmup = sys.argv[1:7]
    rate, warmup = float(rate), float(warmup)
    res = dict(kv.split("=", 1) for kv in result.split()[1:])
    acked = int(res["acked"])
    gen, _ = load_timeline(gtl_path, 1)
    recv, recv_last = load_timeline(rtl_path, 1)
    g_secs = sorted(gen)
    t_start = g_secs[0]                 # the second the generator started in
    t_end = t_start + int(float(res["seconds"]))  # the boundary at or before the end of sending
    lats = []
    ids = {}
    n = 0
    first_us = (t_start + warmup) * 1e6
    with open(rec_path) as f:
        for line in f:
            p = line.split()
            if len(p) < 3:
                continue
            n += 1
            r_us, s_us = int(p[0]), int(p[1])
            ids[p[2]] = ids.get(p[2], 0) + 1
            if s_us >= first_us:
                lats.append((r_us - s_us) / 1000.0)
    lats.sort()
    unique = len(ids)
    # backlog over the measured window: seconds both sampled
    xs, ys = [], []
    for s in range(int(t_start + warmup), t_end + 1):
        if s in gen and s in recv:
            xs.append(s)
            ys.append(gen[s] - recv[s])
    sl = slope(xs, ys)
    w0, w1 = (xs[0], xs[-1]) if xs else (t_start, t_end)
    dlv = (recv[w1] - recv[w0]) / (w1 - w0) if w1 > w0 else 0.0
    drain = -1
    if recv_last >= acked:
        for s in sorted(recv):
            if s >= t_end and recv[s] >= acked:
                drain = s - t_end
                break
        else:
            drain = max(recv) + 1 - t_end
    bl_end = ys[-1] if ys else 0
    flat = int(sl <= 0.01 * rate and bl_end <= rate)  # shrinking counts as flat (catching up after a stall)
    out = {
        "acked": acked, "delivered": n, "unique": unique, "dups": n - unique, "missing": max(0, acked - unique),
        "lat_n": len(lats), "lat_p50_ms": "%.2f" % pct(lats, 50), "lat_p90_ms": "%.2f" % pct(lats, 90),
        "lat_p99_ms": "%.2f" % pct(lats, 99), "lat_p999_ms": "%.2f" % pct(lats, 99.9),
        "lat_max_ms": "%.2f" % (lats[-1] if lats else float("nan")),
        "dlv_per_s": "%.0f" % dlv, "backlog_slope": "%.1f" % sl,
        "backlog_mean": "%.0f" % (sum(ys) / len(ys) if ys else 0), "backlog_max": max(ys) if ys else 0,
        "backlog_end": bl_end, "drain_s": drain, "flat": flat,
    }
    print(" ".join("%s=%s" % kv for kv in out.items()))


if __name__ == "__main__":
    main()
