/*
 * bench/c/pingpong.c: the floor under a task's round trip. A parent and a
 * forked child pass one byte there and back over two pipes, n times,
 * sleeping pause_us before each trip, and print the median and the 90th
 * percentile of a trip. No runtime, no framing: what the kernel and the
 * machine's idle CPUs cost on their own. Two more arguments pin the parent
 * and the child to a CPU each (-1: not pinned), to set a trip on one CPU
 * beside one across two.
 *
 *   cc -O2 -o pingpong bench/c/pingpong.c && ./pingpong 300 1000
 *   ./pingpong 300 1000 0 0 && ./pingpong 300 1000 0 1
 *
 * It prints one line in the format of go test -bench.
 */
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

static long now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000000000L + t.tv_nsec;
}

/* pin keeps process pid (0: this one) on cpu; a negative cpu leaves it free. */
static int pin(pid_t pid, int cpu)
{
	if (cpu < 0)
		return 0;
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return sched_setaffinity(pid, sizeof set, &set);
}

static int by_value(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	if (argc != 3 && argc != 5) {
		fprintf(stderr, "usage: %s trips pause_us [parent_cpu child_cpu]\n", argv[0]);
		return 2;
	}
	int n = atoi(argv[1]);
	long pause_us = atol(argv[2]);
	int parent_cpu = argc == 5 ? atoi(argv[3]) : -1;
	int child_cpu = argc == 5 ? atoi(argv[4]) : -1;
	int there[2], back[2];
	if (n < 1 || pipe(there) || pipe(back)) {
		perror("pingpong");
		return 1;
	}
	pid_t child = fork();
	if (child < 0) {
		perror("pingpong: fork");
		return 1;
	}
	if (child == 0) {
		/* Only its own ends, so that the parent's close reads as EOF. */
		close(there[1]);
		close(back[0]);
		char c;
		while (read(there[0], &c, 1) == 1 && write(back[1], &c, 1) == 1)
			;
		_exit(0);
	}
	close(there[0]);
	close(back[1]);
	/* The child is pinned from here, so that a CPU it may not use is
	 * reported once, and before any trip: it waits in read meanwhile. */
	if (pin(child, child_cpu) || pin(0, parent_cpu)) {
		perror("pingpong: sched_setaffinity");
		close(there[1]);
		waitpid(child, NULL, 0);
		return 1;
	}
	long *trip = malloc(n * sizeof *trip);
	char c = 'x';
	for (int i = 0; i < n; i++) {
		struct timespec pause = {pause_us / 1000000, (pause_us % 1000000) * 1000};
		nanosleep(&pause, NULL);
		long t0 = now_ns();
		if (write(there[1], &c, 1) != 1 || read(back[0], &c, 1) != 1) {
			perror("pingpong");
			return 1;
		}
		trip[i] = now_ns() - t0;
	}
	double total = 0;
	for (int i = 0; i < n; i++)
		total += trip[i];
	qsort(trip, n, sizeof *trip, by_value);
	char idle[32], cpus[32] = "";
	if (pause_us % 1000 == 0)
		snprintf(idle, sizeof idle, "%ldms", pause_us / 1000);
	else
		snprintf(idle, sizeof idle, "%ldµs", pause_us);
	if (parent_cpu >= 0 || child_cpu >= 0)
		snprintf(cpus, sizeof cpus, "/cpus=%d,%d", parent_cpu, child_cpu);
	printf("BenchmarkCPipeTrip/idle=%s%s\t%d\t%.0f ns/op\t%.1f p50-µs\t%.1f p90-µs\n", idle, cpus, n,
	       total / n, trip[n / 2] / 1000.0, trip[n * 9 / 10] / 1000.0);
	close(there[1]); /* the child reads EOF and exits */
	waitpid(child, NULL, 0);
	return 0;
}
