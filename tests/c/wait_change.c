/*
 * Waits for a change of a shmstore object's version, through
 * include/shmstore.h (shmstore_wait_for_change), and says how the wait
 * ended.
 *
 * usage: wait_change [OPTIONS] SHMID|--key KEY|--name NAME TIMEOUT_MS [SINCE]
 *
 * (OPTIONS: the options of the open, as target.h parses them.) Opens the
 * object (a cell or a region) read-only, then waits at most TIMEOUT_MS
 * milliseconds ("forever": SHMSTORE_WAIT_FOREVER) for its version to
 * differ from SINCE (default: its version once opened). It prints, one
 * line each and flushed at once:
 *
 *     @waiting=SINCE                       (just before the wait)
 *     @result=ok|timedout|removed          (how the wait ended)
 *     @version=V                           (the version it returned)
 *     @elapsed_us=T                        (from before @waiting, CLOCK_MONOTONIC)
 *
 * Exit status: 0 once the wait ended in one of those three ways, 2 on bad
 * usage, 3 if the object cannot be opened or the wait failed otherwise, 4
 * if a system call fails. It never writes to the segment.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SHMSTORE_IMPLEMENTATION
#include "shmstore.h"
#include "target.h"

static const char *const PROG = "wait_change";

static int usage(void)
{
    fprintf(stderr, "usage: %s [OPTIONS] SHMID|--key KEY|--name NAME TIMEOUT_MS|forever [SINCE]\n",
            PROG);
    return EXIT_USAGE;
}

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int wait_change(struct shmstore_object *obj, unsigned timeout_ms, int has_since,
                       uint64_t since)
{
    if (!has_since) {
        int rc = shmstore_version(obj, &since);
        if (rc != SHMSTORE_OK)
            return report_error(PROG, "version", rc, obj);
    }
    uint64_t version = UINT64_MAX;
    uint64_t start = now_us();
    printf("@waiting=%" PRIu64 "\n", since);
    fflush(stdout);
    int rc = shmstore_wait_for_change(obj, since, timeout_ms, &version);
    uint64_t elapsed = now_us() - start;
    const char *result = rc == SHMSTORE_OK          ? "ok"
                         : rc == SHMSTORE_ETIMEDOUT ? "timedout"
                         : rc == SHMSTORE_EREMOVED  ? "removed"
                                                    : NULL;
    if (result == NULL)
        return report_error(PROG, "wait for a change", rc, obj);
    printf("@result=%s\n@version=%" PRIu64 "\n@elapsed_us=%" PRIu64 "\n", result, version,
           elapsed);
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv)
{
    struct shmstore_object obj;
    int i = 1;
    int rc = open_target(PROG, argc, argv, &i, &obj);
    if (rc == EXIT_USAGE)
        return usage();
    if (rc != 0)
        return rc;
    long long timeout = 0, since = 0;
    int has_since = 0;
    if (i < argc && strcmp(argv[i], "forever") == 0) {
        timeout = SHMSTORE_WAIT_FOREVER;
        i++;
    } else if (i >= argc || !parse_long(argv[i++], 10, 0, SHMSTORE_WAIT_FOREVER - 1, &timeout)) {
        rc = usage();
    }
    if (rc == 0 && i < argc) {
        if (!parse_long(argv[i++], 10, 0, LLONG_MAX, &since))
            rc = usage();
        has_since = 1;
    }
    if (rc == 0 && i < argc)
        rc = usage();
    if (rc == 0)
        rc = wait_change(&obj, (unsigned)timeout, has_since, (uint64_t)since);
    if (shmstore_close(&obj) != SHMSTORE_OK)
        return report_error(PROG, "close", SHMSTORE_ESYSTEM, &obj);
    return rc;
}
