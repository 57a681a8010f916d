#!/usr/bin/env python3
"""Start-up timing for bench/run.sh.

Spawns the server command (run.sh passes `taskset -c 0 target/release/custos`; taskset execs, so the
spawned PID is the server's), notes the time just before the spawn, and polls GET /health/live on a raw
socket about every millisecond until it answers 200. Prints one `startup_to_first_200_ms` line per run
and, for several runs, the median. Every run but the last is stopped (SIGTERM) before the next starts;
with --keep-last the last one stays up and its PID is in --pidfile, so the caller owns it.

    startup.py --port 8080 --runs 5 --keep-last --pidfile /tmp/x/server.pid --log /tmp/x/server.log \
        -- taskset -c 0 target/release/custos
"""

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import time


def probe(port: int) -> int | None:
    """One GET /health/live; returns the status code, or None when nothing answered yet."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=1.0)
    except OSError:
        return None
    try:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(
            b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        buf = b""
        while b"\r\n" not in buf:
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
        parts = buf.split(b" ", 2)
        if len(parts) >= 2 and parts[0].startswith(b"HTTP/"):
            return int(parts[1])
        return None
    except (OSError, ValueError):
        return None
    finally:
        s.close()


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def stop(proc: subprocess.Popen, grace: float = 10.0) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def one_run(cmd, port, log, pidfile, timeout_s, interval_s):
    if not port_free(port):
        sys.exit(f"startup.py: port {port} already answers; stop whatever listens there first")
    logf = open(log, "ab")
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf)
    if pidfile:
        with open(pidfile, "w") as f:
            f.write(f"{proc.pid}\n")
    deadline = t0 + timeout_s
    status = None
    while True:
        status = probe(port)
        if status == 200:
            elapsed_ms = (time.perf_counter() - t0) * 1000.0
            break
        if proc.poll() is not None:
            logf.close()
            sys.exit(f"startup.py: the server exited with status {proc.returncode} before answering "
                     f"(log: {log})")
        if time.perf_counter() > deadline:
            stop(proc)
            logf.close()
            sys.exit(f"startup.py: no 200 from /health/live within {timeout_s}s (last: {status})")
        time.sleep(interval_s)
    logf.close()
    return proc, elapsed_ms


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--keep-last", action="store_true", help="leave the last server running")
    ap.add_argument("--pidfile", help="the running server's PID is written here")
    ap.add_argument("--log", default=os.devnull, help="server stdout/stderr (appended)")
    ap.add_argument("--label", default="startup_to_first_200_ms")
    ap.add_argument("--timeout", type=float, default=60.0, help="per run, seconds")
    ap.add_argument("--interval-ms", type=float, default=1.0, help="poll interval")
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.cmd[1:] if a.cmd and a.cmd[0] == "--" else a.cmd
    if not cmd:
        ap.error("the server command follows --")

    times = []
    proc = None
    try:
        for i in range(a.runs):
            proc, ms = one_run(cmd, a.port, a.log, a.pidfile, a.timeout, a.interval_ms / 1000.0)
            times.append(ms)
            print(f"{a.label} run={i + 1} {ms:.1f}", flush=True)
            if i < a.runs - 1 or not a.keep_last:
                stop(proc)
                proc = None
                if a.pidfile:
                    os.unlink(a.pidfile)
    except BaseException:
        if proc is not None:
            stop(proc)
        raise
    if a.runs > 1:
        print(f"{a.label} median={statistics.median(times):.1f} min={min(times):.1f} "
              f"max={max(times):.1f} runs={len(times)}", flush=True)
    if proc is not None:
        print(f"server_pid={proc.pid}", flush=True)


if __name__ == "__main__":
    main()
