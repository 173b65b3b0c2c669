/*
 * bench/c/spawnloop.c: the kernel's floor under a fresh process per task.
 * It starts a program n times with vfork and execve, keeps two children
 * alive at a time, and waits for each. With bench/c/nop.c as the program,
 * what is left is the cost of a process: no runtime, no pipe, no answer.
 *
 *   cc -O2 -o spawnloop bench/c/spawnloop.c
 *   cc -O2 -static -nostdlib -o nop bench/c/nop.c
 *   ./spawnloop 2000 ./nop
 *
 * It prints one line in the format of go test -bench: the wall time per
 * task, tasks/s, and the CPU per task of this process and of its children.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define IN_FLIGHT 2

extern char **environ;

static double seconds(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

/* cpu returns the user and system time of who, in microseconds. */
static double cpu(int who)
{
	struct rusage ru;
	getrusage(who, &ru);
	return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 + ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
}

/* start runs path in a new process and returns its pid, or -1. */
static pid_t start(char *path)
{
	char *argv[] = {path, NULL};
	pid_t pid = vfork();
	if (pid == 0) {
		execve(path, argv, environ);
		_exit(127); /* the parent sees the status */
	}
	return pid;
}

int main(int argc, char **argv)
{
	if (argc != 3 || atol(argv[1]) < 1) {
		fprintf(stderr, "usage: %s tasks program\n", argv[0]);
		return 2;
	}
	long n = atol(argv[1]);
	char *path = argv[2];
	double self0 = cpu(RUSAGE_SELF), kids0 = cpu(RUSAGE_CHILDREN), t0 = seconds();
	long started = 0, alive = 0;
	for (long done = 0; done < n; done++) {
		for (; alive < IN_FLIGHT && started < n; alive++, started++) {
			if (start(path) < 0) {
				perror("spawnloop: vfork");
				return 1;
			}
		}
		int status;
		if (wait(&status) < 0) {
			perror("spawnloop: wait");
			return 1;
		}
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			fprintf(stderr, "spawnloop: %s ended with status %#x; want exit 0\n", path, status);
			return 1;
		}
		alive--;
	}
	double dt = seconds() - t0;
	printf("BenchmarkCSpawnNop\t%ld\t%.0f ns/op\t%.0f tasks/s\t%.1f parent-cpu-µs/task\t%.1f child-cpu-µs/task\n",
	       n, dt / n * 1e9, n / dt, (cpu(RUSAGE_SELF) - self0) / n, (cpu(RUSAGE_CHILDREN) - kids0) / n);
	return 0;
}
