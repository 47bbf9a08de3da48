#!/usr/bin/env python3
"""Python multiprocessing baseline benchmark (standard library only).

Usage:
    python3 bench/python_mp.py [--quick] [--filter SUBSTR[|SUBSTR...]]

Prints exactly one JSON document to stdout:
    {"python": "<version>", "rows": [{"case", "items_per_s", "mb_per_s",
                                      "p50_us", "p99_us", "n", "reps",
                                      "note" (optional)}, ...]}
Progress goes to stderr.

Method notes
------------
* Start method: "fork" (the Linux default of Python 3.11), requested explicitly
  so the numbers mean the same thing on newer Pythons.
* Every case runs in freshly forked child processes; the parent only
  coordinates (it creates the channels, starts the children and collects the
  results).  All children are started and wait on a multiprocessing.Barrier
  before any timing starts, so process start-up is never timed.
* Throughput timing: each producer reads time.perf_counter() right after the
  barrier and just before its first send; each consumer reads it right after
  receiving its last item.  perf_counter() is CLOCK_MONOTONIC on Linux, which
  is system-wide, so the values are comparable across processes.
  elapsed = max(consumer end) - min(producer start); items_per_s = N / elapsed.
* Payloads are built in the producer loop the way a user would: int = i & 1023,
  object = a fresh 10-field dict per item (a = i), str1k / buf64k / buf1m are
  pre-built once and the same object is sent each time (it is still pickled /
  copied on every send).
* Pipe cases use multiprocessing.Pipe(duplex=False).  int/object/str1k use
  Connection.send()/recv() (pickle); buf64k/buf1m use send_bytes()/recv_bytes()
  (the fastest stdlib path for raw bytes, no pickling).
* Queue cases use an unbounded multiprocessing.Queue with put()/get() loops
  (bytes payloads are pickled, as Queue always does).
* MPMC: 2 producers x 2 consumers on one Queue, each producer sends N/2 items
  followed by one sentinel (None); each consumer stops on its first sentinel.
  Per-producer FIFO order guarantees all items are consumed once both
  sentinels have been.
* Roundtrip: a "pinger" child sends i and waits for the "ponger" child to echo
  it back (two Pipe(duplex=False) pipes, or two Queues).  Every round trip is
  timed with perf_counter_ns(); p50/p99 are nearest-rank percentiles;
  items_per_s = round trips / total loop time.
* Each case: one warm-up run with a smaller N (not reported), then REPS timed
  repetitions (3, or 2 with --quick).  The reported items_per_s / p50 / p99
  are the medians over the repetitions (each metric independently).
* mb_per_s = items_per_s * payload bytes / 1e6 for str1k (1024 chars, ASCII =
  1024 bytes) and buf64k / buf1m; null otherwise.
* Pool cases (python-pool/..., python-single/cpu/1ms): one CTX.Pool(2) per
  case, started and warmed by one small map (pool.map(add_one, range(10)))
  before the warm-up run and the timed ones; each run is timed in the parent
  from the call to the last result in hand, and its results are checked.
    map    pool.map(add_one, range(N)): automatic chunks (N / 8 per chunk)
    imap   for y in pool.imap(add_one, range(N)): chunksize 1
    apply  rs = [pool.apply_async(add_one, (i,)) for i in range(N)], then
           r.get() for each
    cpu    pool.map(cpu, range(2000)); python-single: the parent runs
           cpu(i) for i in range(2000) in a loop.
  N = 200,000 (20,000 with --quick; cpu: 2,000 and 200).  cpu() is the
  xorshift loop of bench/tasks/pool-work.mjs (same results for the same
  iteration count) with PY_CPU_ITERATIONS, calibrated once on this machine to
  about 1 ms in CPython (the node tasks run 400,000 iterations in about 1 ms).
"""

import argparse
import json
import multiprocessing as mp
import queue as queue_mod
import statistics
import sys
import time

CTX = mp.get_context("fork")

STR1K = "s" * 1024
BUF64K = b"\xab" * (64 * 1024)
BUF1M = b"\xcd" * (1024 * 1024)

PAYLOAD_BYTES = {"int": None, "object": None, "str1k": 1024,
                 "buf64k": len(BUF64K), "buf1m": len(BUF1M)}
RAW_BYTES_PAYLOADS = ("buf64k", "buf1m")

# Per-run timeout (seconds) so a wedged child can never hang the script.
RUN_TIMEOUT = 120.0


def make_obj(i):
    return {"a": i, "b": "x", "c": True, "d": 2.5, "e": None, "f": [1, 2],
            "g": "hello", "h": 42, "i": -1, "j": "z"}


# --------------------------------------------------------------------------
# Producer / consumer loops.  Each loop function is specialised per payload so
# the per-item overhead is just "build payload + send" / "receive".
# --------------------------------------------------------------------------

def _produce(send, payload, start, n):
    """Send items start..start+n-1 with `send`."""
    if payload == "int":
        for i in range(start, start + n):
            send(i & 1023)
    elif payload == "object":
        for i in range(start, start + n):
            send({"a": i, "b": "x", "c": True, "d": 2.5, "e": None,
                  "f": [1, 2], "g": "hello", "h": 42, "i": -1, "j": "z"})
    elif payload == "str1k":
        s = STR1K
        for _ in range(n):
            send(s)
    elif payload == "buf64k":
        b = BUF64K
        for _ in range(n):
            send(b)
    elif payload == "buf1m":
        b = BUF1M
        for _ in range(n):
            send(b)
    else:
        raise ValueError(payload)


def _check_last(payload, item):
    if payload == "int":
        ok = isinstance(item, int)
    elif payload == "object":
        ok = isinstance(item, dict) and len(item) == 10
    elif payload == "str1k":
        ok = isinstance(item, str) and len(item) == 1024
    elif payload == "buf64k":
        ok = len(item) == len(BUF64K)
    elif payload == "buf1m":
        ok = len(item) == len(BUF1M)
    else:
        ok = False
    if not ok:
        raise RuntimeError("bad payload received for %s: %r" % (payload, type(item)))


# ---------------------------- SPSC: Pipe ----------------------------------

def pipe_producer(conn, payload, n, barrier, results):
    try:
        send = conn.send_bytes if payload in RAW_BYTES_PAYLOADS else conn.send
        barrier.wait()
        t0 = time.perf_counter()
        _produce(send, payload, 0, n)
        conn.close()
        results.put(("start", t0))
    except BaseException as e:  # report instead of hanging the parent
        results.put(("error", "producer: %r" % (e,)))


def pipe_consumer(conn, payload, n, barrier, results):
    try:
        recv = conn.recv_bytes if payload in RAW_BYTES_PAYLOADS else conn.recv
        barrier.wait()
        item = None
        for _ in range(n):
            item = recv()
        t1 = time.perf_counter()
        _check_last(payload, item)
        conn.close()
        results.put(("end", t1, n))
    except BaseException as e:
        results.put(("error", "consumer: %r" % (e,)))


# ---------------------------- SPSC / MPMC: Queue --------------------------

def queue_producer(q, payload, start, n, sentinel, barrier, results):
    try:
        barrier.wait()
        t0 = time.perf_counter()
        _produce(q.put, payload, start, n)
        if sentinel:
            q.put(None)
        results.put(("start", t0))
        # Process exit joins the Queue feeder thread, flushing all items.
    except BaseException as e:
        results.put(("error", "producer: %r" % (e,)))


def queue_consumer(q, payload, n, barrier, results):
    """n > 0: receive exactly n items.  n == 0: receive until a None sentinel."""
    try:
        get = q.get
        barrier.wait()
        item = None
        count = 0
        if n > 0:
            for _ in range(n):
                item = get()
            count = n
        else:
            while True:
                x = get()
                if x is None:
                    break
                item = x
                count += 1
        t1 = time.perf_counter()
        if count:
            _check_last(payload, item)
        results.put(("end", t1, count))
    except BaseException as e:
        results.put(("error", "consumer: %r" % (e,)))


# ---------------------------- Roundtrip -----------------------------------

def _percentile(sorted_vals, p):
    # nearest-rank percentile
    if not sorted_vals:
        return None
    k = max(0, min(len(sorted_vals) - 1, int(-(-p * len(sorted_vals) // 100)) - 1))
    return sorted_vals[k]


def pinger(send, recv, n, barrier, results):
    try:
        barrier.wait()
        lat = [0] * n
        clock = time.perf_counter_ns
        t0 = clock()
        for i in range(n):
            a = clock()
            send(i)
            r = recv()
            lat[i] = clock() - a
            if r != i:
                raise RuntimeError("roundtrip mismatch %r != %r" % (r, i))
        t1 = clock()
        send(None)  # tell the ponger to stop
        lat.sort()
        results.put(("rt", (t1 - t0) / 1e9, _percentile(lat, 50) / 1e3,
                     _percentile(lat, 99) / 1e3))
    except BaseException as e:
        results.put(("error", "pinger: %r" % (e,)))


def ponger(send, recv, barrier, results):
    try:
        barrier.wait()
        while True:
            x = recv()
            if x is None:
                break
            send(x)
        results.put(("pong_done",))
    except BaseException as e:
        results.put(("error", "ponger: %r" % (e,)))


def pipe_pinger(ping_w, pong_r, n, barrier, results):
    pinger(ping_w.send, pong_r.recv, n, barrier, results)


def pipe_ponger(ping_r, pong_w, barrier, results):
    ponger(pong_w.send, ping_r.recv, barrier, results)


def queue_pinger(q_ping, q_pong, n, barrier, results):
    pinger(q_ping.put, q_pong.get, n, barrier, results)


def queue_ponger(q_ping, q_pong, barrier, results):
    ponger(q_pong.put, q_ping.get, barrier, results)


# --------------------------------------------------------------------------
# Parent-side orchestration
# --------------------------------------------------------------------------

def _run_procs(procs, results, expected_msgs):
    """Start procs, collect `expected_msgs` result messages, join everything."""
    for p in procs:
        p.start()
    msgs = []
    deadline = time.monotonic() + RUN_TIMEOUT
    try:
        while len(msgs) < expected_msgs:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RuntimeError("benchmark run timed out")
            try:
                m = results.get(timeout=min(1.0, remaining))
            except queue_mod.Empty:
                dead = [p for p in procs if p.exitcode not in (None, 0)]
                if dead:
                    raise RuntimeError("child died: %s exitcode=%s"
                                       % (dead[0].name, dead[0].exitcode))
                continue
            if m[0] == "error":
                raise RuntimeError(m[1])
            msgs.append(m)
        for p in procs:
            p.join(timeout=30)
            if p.exitcode is None:
                raise RuntimeError("child %s did not exit" % p.name)
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
            p.join()
        results.close()
        results.join_thread()
    return msgs


def _throughput_from(msgs, n_expected):
    starts = [m[1] for m in msgs if m[0] == "start"]
    ends = [m[1] for m in msgs if m[0] == "end"]
    total = sum(m[2] for m in msgs if m[0] == "end")
    if total != n_expected:
        raise RuntimeError("received %d items, expected %d" % (total, n_expected))
    elapsed = max(ends) - min(starts)
    return n_expected / elapsed


def run_pipe_spsc(payload, n):
    results = CTX.Queue()
    barrier = CTX.Barrier(2)
    r, w = CTX.Pipe(duplex=False)
    procs = [
        CTX.Process(target=pipe_consumer, args=(r, payload, n, barrier, results),
                    name="pipe-consumer"),
        CTX.Process(target=pipe_producer, args=(w, payload, n, barrier, results),
                    name="pipe-producer"),
    ]
    try:
        msgs = _run_procs(procs, results, 2)
    finally:
        r.close()
        w.close()
    return {"items_per_s": _throughput_from(msgs, n)}


def run_queue_spsc(payload, n):
    results = CTX.Queue()
    barrier = CTX.Barrier(2)
    q = CTX.Queue()
    procs = [
        CTX.Process(target=queue_consumer, args=(q, payload, n, barrier, results),
                    name="queue-consumer"),
        CTX.Process(target=queue_producer,
                    args=(q, payload, 0, n, False, barrier, results),
                    name="queue-producer"),
    ]
    try:
        msgs = _run_procs(procs, results, 2)
    finally:
        q.close()
        q.join_thread()
    return {"items_per_s": _throughput_from(msgs, n)}


def run_queue_mpmc(payload, n, producers=2, consumers=2):
    results = CTX.Queue()
    barrier = CTX.Barrier(producers + consumers)
    q = CTX.Queue()
    per = [n // producers + (1 if k < n % producers else 0) for k in range(producers)]
    procs = []
    for k in range(consumers):
        procs.append(CTX.Process(target=queue_consumer,
                                 args=(q, payload, 0, barrier, results),
                                 name="mpmc-consumer-%d" % k))
    start = 0
    for k in range(producers):
        procs.append(CTX.Process(target=queue_producer,
                                 args=(q, payload, start, per[k], True, barrier, results),
                                 name="mpmc-producer-%d" % k))
        start += per[k]
    try:
        msgs = _run_procs(procs, results, producers + consumers)
    finally:
        q.close()
        q.join_thread()
    return {"items_per_s": _throughput_from(msgs, n)}


def run_roundtrip(kind, n):
    results = CTX.Queue()
    barrier = CTX.Barrier(2)
    closers = []
    if kind == "pipe":
        ping_r, ping_w = CTX.Pipe(duplex=False)
        pong_r, pong_w = CTX.Pipe(duplex=False)
        closers = [c.close for c in (ping_r, ping_w, pong_r, pong_w)]
        procs = [
            CTX.Process(target=pipe_ponger, args=(ping_r, pong_w, barrier, results),
                        name="pipe-ponger"),
            CTX.Process(target=pipe_pinger, args=(ping_w, pong_r, n, barrier, results),
                        name="pipe-pinger"),
        ]
    else:
        q_ping = CTX.Queue()
        q_pong = CTX.Queue()

        def _closeq(q):
            q.close()
            q.join_thread()
        closers = [lambda: _closeq(q_ping), lambda: _closeq(q_pong)]
        procs = [
            CTX.Process(target=queue_ponger, args=(q_ping, q_pong, barrier, results),
                        name="queue-ponger"),
            CTX.Process(target=queue_pinger, args=(q_ping, q_pong, n, barrier, results),
                        name="queue-pinger"),
        ]
    try:
        msgs = _run_procs(procs, results, 2)
    finally:
        for c in closers:
            c()
    rt = [m for m in msgs if m[0] == "rt"][0]
    _, elapsed, p50, p99 = rt
    return {"items_per_s": n / elapsed, "p50_us": p50, "p99_us": p99}


# --------------------------------------------------------------------------
# Pool cases
# --------------------------------------------------------------------------

def add_one(x):
    return x + 1


# About 1 ms per cpu() call in CPython 3.11 here (calibrated once; see the
# docstring).  bench/tasks/pool-work.mjs runs the same loop 400,000 times.
PY_CPU_ITERATIONS = 1800


def cpu(i):
    x = ((i * 2654435761 + 1) & 0xFFFFFFFF) or 1
    acc = 0
    for _ in range(PY_CPU_ITERATIONS):
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        acc += x & 1023
    return acc


_cpu_sums = {}


def _expected_cpu_sum(n):
    if n not in _cpu_sums:
        _cpu_sums[n] = sum(cpu(i) for i in range(n))
    return _cpu_sums[n]


def _check(name, ys, n, expected_sum):
    if len(ys) != n:
        raise RuntimeError("%s: %d results, expected %d" % (name, len(ys), n))
    if sum(ys) != expected_sum:
        raise RuntimeError("%s: results sum to %d, expected %d"
                           % (name, sum(ys), expected_sum))


class PoolCase:
    """A pool case: its Pool(2) is started and warmed on the first run and
    kept for the warm-up and the timed runs; close() terminates it."""

    def __init__(self, name, kind):
        self.name = name
        self.kind = kind
        self.pool = None

    def __call__(self, n):
        if self.pool is None:
            self.pool = CTX.Pool(2)
            if self.pool.map_async(add_one, range(10)).get(RUN_TIMEOUT) != list(range(1, 11)):
                raise RuntimeError("%s: the warming map failed" % self.name)
        pool = self.pool
        kind = self.kind
        if kind == "map":
            t0 = time.perf_counter()
            ys = pool.map_async(add_one, range(n)).get(RUN_TIMEOUT)
            t1 = time.perf_counter()
            expected = n * (n + 1) // 2
        elif kind == "imap":
            ys = []
            t0 = time.perf_counter()
            it = pool.imap(add_one, range(n))
            for _ in range(n):
                ys.append(it.next(RUN_TIMEOUT))
            t1 = time.perf_counter()
            expected = n * (n + 1) // 2
        elif kind == "apply":
            t0 = time.perf_counter()
            rs = [pool.apply_async(add_one, (i,)) for i in range(n)]
            ys = [r.get(RUN_TIMEOUT) for r in rs]
            t1 = time.perf_counter()
            expected = n * (n + 1) // 2
        elif kind == "cpu":
            t0 = time.perf_counter()
            ys = pool.map_async(cpu, range(n)).get(RUN_TIMEOUT)
            t1 = time.perf_counter()
            expected = _expected_cpu_sum(n)
        else:
            raise ValueError(kind)
        if kind != "cpu" and ys != list(range(1, n + 1)):
            raise RuntimeError("%s: results missing or out of order" % self.name)
        _check(self.name, ys, n, expected)
        return {"items_per_s": n / (t1 - t0)}

    def close(self):
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()
            self.pool = None


def run_single_cpu(n):
    t0 = time.perf_counter()
    ys = [cpu(i) for i in range(n)]
    t1 = time.perf_counter()
    if n in _cpu_sums:
        _check("python-single/cpu/1ms", ys, n, _cpu_sums[n])
    else:
        _cpu_sums[n] = sum(ys)
    return {"items_per_s": n / (t1 - t0)}


# --------------------------------------------------------------------------
# Case table
# --------------------------------------------------------------------------

PAYLOADS = ["int", "object", "str1k", "buf64k", "buf1m"]


def default_n(payload, quick):
    if payload in ("int", "object", "str1k"):
        return 20_000 if quick else 200_000
    if payload == "buf64k":
        return 2_000 if quick else 20_000
    if payload == "buf1m":
        return 100 if quick else 1_000
    if payload == "roundtrip":
        return 2_000 if quick else 20_000
    raise ValueError(payload)


def build_cases(quick):
    cases = []
    for p in PAYLOADS:
        cases.append(("python-pipe/spsc/" + p, p, default_n(p, quick),
                      lambda n, p=p: run_pipe_spsc(p, n)))
    for p in PAYLOADS:
        cases.append(("python-queue/spsc/" + p, p, default_n(p, quick),
                      lambda n, p=p: run_queue_spsc(p, n)))
    for p in ("int", "object"):
        cases.append(("python-queue/mpmc/" + p, p, default_n(p, quick),
                      lambda n, p=p: run_queue_mpmc(p, n)))
    cases.append(("python-pipe/roundtrip/int", "int", default_n("roundtrip", quick),
                  lambda n: run_roundtrip("pipe", n)))
    cases.append(("python-queue/roundtrip/int", "int", default_n("roundtrip", quick),
                  lambda n: run_roundtrip("queue", n)))
    for kind in ("map", "apply", "imap"):
        name = "python-pool/%s/int" % kind
        cases.append((name, "int", default_n("int", quick), PoolCase(name, kind)))
    # python-single first: it computes the results python-pool/cpu is checked against.
    cpu_n = 200 if quick else 2_000
    cases.append(("python-single/cpu/1ms", "1ms", cpu_n, run_single_cpu))
    cases.append(("python-pool/cpu/1ms", "1ms", cpu_n, PoolCase("python-pool/cpu/1ms", "cpu")))
    return cases


def _med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Python multiprocessing baseline benchmark")
    ap.add_argument("--quick", action="store_true", help="small N, 2 reps")
    ap.add_argument("--filter", default=None, metavar="SUBSTR",
                    help="only run cases whose name contains SUBSTR "
                         "(or any of 'A|B', as bench/index.ts reads it)")
    args = ap.parse_args(argv)

    reps = 2 if args.quick else 3
    warm_div = 10
    rows = []
    t_all = time.perf_counter()
    alternatives = args.filter.split("|") if args.filter else None
    for name, payload, n, fn in build_cases(args.quick):
        if alternatives and not any(a in name for a in alternatives):
            continue
        t_case = time.perf_counter()
        warm_n = max(10, n // warm_div)
        try:
            fn(warm_n)  # warm-up, not reported
            runs = []
            for _ in range(reps):
                runs.append(fn(n))
        finally:
            if hasattr(fn, "close"):
                fn.close()
        ips = _med([r["items_per_s"] for r in runs])
        nbytes = PAYLOAD_BYTES.get(payload)
        row = {
            "case": name,
            "items_per_s": ips,
            "mb_per_s": (ips * nbytes / 1e6) if nbytes else None,
            "p50_us": _med([r.get("p50_us") for r in runs]),
            "p99_us": _med([r.get("p99_us") for r in runs]),
            "n": n,
            "reps": reps,
        }
        if name == "python-single/cpu/1ms":
            row["note"] = "%.2f ms per task" % (1000.0 / ips)
        rows.append(row)
        extra = ""
        if row["mb_per_s"] is not None:
            extra += " %.1f MB/s" % row["mb_per_s"]
        if row["p50_us"] is not None:
            extra += " p50=%.1fus p99=%.1fus" % (row["p50_us"], row["p99_us"])
        log("%-28s %12.0f items/s%s  (n=%d, reps=%d, %.1fs; reps: %s)"
            % (name, ips, extra, n, reps, time.perf_counter() - t_case,
               " ".join("%.0f" % r["items_per_s"] for r in runs)))
    log("total %.1fs" % (time.perf_counter() - t_all))
    sys.stdout.write(json.dumps({"python": sys.version, "rows": rows}, indent=2) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
