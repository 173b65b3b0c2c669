"""Python's process pools on no-op tasks, two workers, for bench/run.sh.

    python3 bench/python/pools.py fresh N   # a fresh forked Process per task
    python3 bench/python/pools.py pool N    # ProcessPoolExecutor(2).submit

fresh: each task gets a multiprocessing.Process of its own (the fork
start method: no exec, no new interpreter), which sends its answer back
over a Pipe and exits; two are alive at a time. This is Python's nearest
match to a fresh child per task.

pool: one ProcessPoolExecutor with two workers; every task is submitted
first, then every result is read. This is Python's nearest match to
Schedule then Value on reused children.

The time covers the whole run, the pool's start and shutdown included.
It prints one line in the format of go test -bench: the wall time per
task, tasks/s, and the CPU per task of this process and of its children.
"""

import multiprocessing
import resource
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import connection

WORKERS = 2


def identity(x):
    return x


def answer(writer, x):
    writer.send(identity(x))
    writer.close()


def fresh(n):
    ctx = multiprocessing.get_context("fork")
    alive = {}  # the reading end of each child's pipe -> the child
    started = 0
    for _ in range(n):
        while started < n and len(alive) < WORKERS:
            reader, writer = ctx.Pipe(duplex=False)
            child = ctx.Process(target=answer, args=(writer, started))
            child.start()
            writer.close()
            alive[reader] = child
            started += 1
        reader = connection.wait(list(alive))[0]
        reader.recv()
        reader.close()
        alive.pop(reader).join()


def pool(n):
    with ProcessPoolExecutor(max_workers=WORKERS) as ex:
        futures = [ex.submit(identity, i) for i in range(n)]
        for i, f in enumerate(futures):
            if f.result() != i:
                raise SystemExit(f"pools.py: task {i} answered {f.result()}")


def cpu_us(who):
    ru = resource.getrusage(who)
    return (ru.ru_utime + ru.ru_stime) * 1e6


def main():
    runs = {"fresh": (fresh, "PythonFresh"), "pool": (pool, "PythonPool")}
    if len(sys.argv) != 3 or sys.argv[1] not in runs or int(sys.argv[2]) < 1:
        raise SystemExit(__doc__)
    run, name = runs[sys.argv[1]]
    n = int(sys.argv[2])
    self0, kids0 = cpu_us(resource.RUSAGE_SELF), cpu_us(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    run(n)
    dt = time.monotonic() - t0
    parent = (cpu_us(resource.RUSAGE_SELF) - self0) / n
    child = (cpu_us(resource.RUSAGE_CHILDREN) - kids0) / n
    print(f"Benchmark{name}\t{n}\t{dt / n * 1e9:.0f} ns/op\t{n / dt:.0f} tasks/s\t"
          f"{parent:.1f} parent-cpu-µs/task\t{child:.1f} child-cpu-µs/task")


if __name__ == "__main__":
    main()
