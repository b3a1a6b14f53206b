/*
 * Checks how include/shmstore.h judges whether a segment's creator lives:
 * by all of its threads, so that a process whose first thread has exited
 * (which /proc/PID/stat shows as a zombie) while another thread still works
 * counts as alive, and a process that has exited does not.
 *
 * usage: alive
 *
 * Prints one line per check, "ok WHAT" or "FAILED WHAT". Exit status: 0 if
 * every check passed, 3 if one failed, 4 if a system call fails.
 */
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define SHMSTORE_IMPLEMENTATION
#include "shmstore.h"
#include "target.h"

static int failures;

static void check(int ok, const char *what)
{
    printf("%s %s\n", ok ? "ok" : "FAILED", what);
    failures += !ok;
}

static void *work(void *arg)
{
    (void)arg;
    poll(NULL, 0, 1500);
    return NULL;
}

/* The first thread of `pid`, as /proc/PID/stat shows it: its state letter. */
static char first_thread_state(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return '?';
    char buf[512];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *end = strrchr(buf, ')');
    return end != NULL && end[1] == ' ' ? end[2] : '?';
}

int main(void)
{
    check(shmstore__alive(getpid()), "this process lives");
    check(!shmstore__alive(0), "pid 0 is nobody");

    if (fflush(stdout) != 0)
        return EXIT_SYSTEM;
    pid_t kid = fork();
    if (kid < 0) {
        perror("alive: fork");
        return EXIT_SYSTEM;
    }
    if (kid == 0) {
        /* The first thread leaves; another works on for a while. */
        pthread_t t;
        if (pthread_create(&t, NULL, work, NULL) != 0)
            _exit(1);
        pthread_exit(NULL);
    }
    poll(NULL, 0, 300);
    char state = first_thread_state(kid);
    check(state == 'Z', "the first thread of the child has exited");
    check(shmstore__alive(kid), "a process whose first thread exited lives while another runs");
    int status;
    if (waitpid(kid, &status, 0) != kid) {
        perror("alive: waitpid");
        return EXIT_SYSTEM;
    }
    check(!shmstore__alive(kid), "a process reaped is dead");
    if (fflush(stdout) != 0)
        return EXIT_SYSTEM;
    return failures == 0 ? 0 : EXIT_REFUSED;
}
