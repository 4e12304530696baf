#!/usr/bin/env python3
"""Prints each change of a process's VmHWM with its RSS split and thread names.

Diagnosis for bench/memory (issue 20, target 5): the 0.5 s samples of run.sh miss
transient peaks; this polls /proc/<pid>/status every few milliseconds and prints a line
whenever VmHWM moves, with RssAnon, RssFile, the thread count and the threads' names
(a rise when a new thread appears points at that thread's work).

Usage, in a second shell while bench/memory/run.sh runs (it waits for the process):
    python3 bench/memory/watch-hwm.py [COMM (kindling)] [INTERVAL_MS (5)] > hwm.txt
Ends when the process exits.
"""
import os
import sys
import time

comm = sys.argv[1] if len(sys.argv) > 1 else "kindling"
interval = (float(sys.argv[2]) if len(sys.argv) > 2 else 5.0) / 1000


def find():
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/comm") as f:
                    if f.read().strip() == comm:
                        return p
            except OSError:
                pass
    return None


def status(pid):
    d = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmHWM", "VmRSS", "RssAnon", "RssFile", "Threads"):
                d[k] = v.split()[0]
    return d


def threads(pid):
    names = []
    try:
        for t in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{t}/comm") as f:
                names.append(f.read().strip())
    except OSError:
        pass
    return ",".join(sorted(names))


pid = find()
while pid is None:
    time.sleep(0.01)
    pid = find()
print(f"pid {pid} ({comm}); kB", flush=True)
start, last = time.time(), None
while True:
    try:
        d = status(pid)
    except (OSError, KeyError):
        break
    if "VmHWM" not in d:
        # Exiting: a zombie's status has no memory lines.
        break
    if d.get("VmHWM") != last:
        last = d.get("VmHWM")
        print(
            f"{time.time() - start:8.3f}s HWM {d['VmHWM']} RSS {d['VmRSS']} anon {d['RssAnon']} "
            f"file {d['RssFile']} threads {d['Threads']} {threads(pid)}",
            flush=True,
        )
    time.sleep(interval)
