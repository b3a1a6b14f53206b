/*
 * The object argument shared by the test readers: the options of the open
 * (struct shmstore_options), any of `--init-timeout-ms MS`, `--trust-user
 * UID`, `--trust-group GID` and `--allow-foreign-owner`, then a segment id,
 * `--key KEY` (decimal or 0x-prefixed hexadecimal, as ipcs prints it),
 * `--name NAME`, or `--namespace DIR --name NAME` (the name in the private
 * namespace of DIR).
 */
#ifndef SHMSTORE_TEST_TARGET_H
#define SHMSTORE_TEST_TARGET_H

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shmstore.h"

/* Exit statuses of the test readers. */
enum { EXIT_USAGE = 2, EXIT_REFUSED = 3, EXIT_SYSTEM = 4, EXIT_NOTHING = 5 };

static inline int parse_long(const char *s, int base, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, base);
    if (*s == '\0' || *end != '\0' || errno != 0 || v < lo || v > hi)
        return 0;
    *out = v;
    return 1;
}

/* Report a failed shmstore call on stderr and return the exit status for
 * it. */
static inline int report_error(const char *prog, const char *what, int rc,
                        const struct shmstore_object *obj)
{
    if (rc == SHMSTORE_ESYSTEM) {
        fprintf(stderr, "%s: %s: %s: %s: %s\n", prog, what, shmstore_strerror(rc),
                obj->sys_call ? obj->sys_call : "?", strerror(obj->sys_errno));
        return EXIT_SYSTEM;
    }
    fprintf(stderr, "%s: %s: %s", prog, what, shmstore_strerror(rc));
    if (obj->detail != NULL)
        fprintf(stderr, ": %s (found %" PRIu64 ")", obj->detail, obj->detail_value);
    if (rc == SHMSTORE_ENAMESPACE && obj->sys_call != NULL)
        fprintf(stderr, ": %s: %s", obj->sys_call, strerror(obj->sys_errno));
    if (rc == SHMSTORE_EFOREIGN) {
        unsigned long uid = (unsigned long)obj->uid, cuid = (unsigned long)obj->cuid,
                      gid = (unsigned long)obj->gid;
        fprintf(stderr, ": segment %d: owner uid %lu, creator uid %lu, group %lu; if that user is "
                        "trusted, open with ", obj->id, uid, cuid, gid);
        if (uid == cuid)
            fprintf(stderr, "--trust-user %lu, ", uid);
        fprintf(stderr, "--trust-group %lu when its owner and creator are members of group %lu, "
                        "or --allow-foreign-owner; otherwise remove it",
                gid, gid);
    }
    fputc('\n', stderr);
    return rc == SHMSTORE_ENOTHING ? EXIT_NOTHING : EXIT_REFUSED;
}

/* The options of an open that the arguments from argv[*i] give, into
 * `opts`, advancing *i past them. Returns 0 or EXIT_USAGE. */
static inline int parse_options(const char *prog, int argc, char **argv, int *i,
                                struct shmstore_options *opts)
{
    *opts = shmstore_options_default();
    while (*i < argc) {
        const char *arg = argv[*i];
        if (strcmp(arg, "--allow-foreign-owner") == 0) {
            opts->allow_foreign_owner = true;
            *i += 1;
            continue;
        }
        int timeout = strcmp(arg, "--init-timeout-ms") == 0;
        int user = strcmp(arg, "--trust-user") == 0;
        int group = strcmp(arg, "--trust-group") == 0;
        if (!timeout && !user && !group)
            return 0;
        long long v;
        if (*i + 1 >= argc || !parse_long(argv[*i + 1], 10, 0, UINT32_MAX - 1, &v)) {
            fprintf(stderr, "%s: %s needs a number\n", prog, arg);
            return EXIT_USAGE;
        }
        if (timeout) {
            opts->init_timeout_ms = (uint32_t)v;
        } else if (user) {
            opts->trust_user = true;
            opts->user = (uid_t)v;
        } else {
            opts->trust_group = true;
            opts->group = (gid_t)v;
        }
        *i += 2;
    }
    return 0;
}

/* Open the object the arguments from argv[*i] name, with the options they
 * give first, and advance *i past them. Returns 0, EXIT_USAGE, or the exit
 * status of the failure. */
static inline int open_target(const char *prog, int argc, char **argv, int *i,
                       struct shmstore_object *obj)
{
    struct shmstore_options opts;
    if (parse_options(prog, argc, argv, i, &opts) != 0 || *i >= argc)
        return EXIT_USAGE;
    const char *arg = argv[*i];
    int rc;
    if (strcmp(arg, "--namespace") == 0) {
        if (*i + 3 >= argc || strcmp(argv[*i + 2], "--name") != 0)
            return EXIT_USAGE;
        rc = shmstore_open_name_in(argv[*i + 1], argv[*i + 3], &opts, obj);
        *i += 4;
    } else if (strcmp(arg, "--key") == 0 || strcmp(arg, "--name") == 0) {
        if (*i + 1 >= argc)
            return EXIT_USAGE;
        const char *value = argv[*i + 1];
        *i += 2;
        if (arg[2] == 'k') {
            long long key;
            if (!parse_long(value, 0, INT32_MIN, UINT32_MAX, &key) || key == 0) {
                fprintf(stderr, "%s: bad key %s\n", prog, value);
                return EXIT_USAGE;
            }
            /* 0x80000000 and above are the negative key_t values. */
            rc = shmstore_open_key((key_t)(key > INT32_MAX ? key - 0x100000000LL : key), &opts,
                                   obj);
        } else {
            rc = shmstore_open_name(value, &opts, obj);
        }
    } else {
        long long id;
        if (!parse_long(arg, 10, 0, INT32_MAX, &id)) {
            fprintf(stderr, "%s: bad segment id %s\n", prog, arg);
            return EXIT_USAGE;
        }
        *i += 1;
        rc = shmstore_open_id((int)id, &opts, obj);
    }
    return rc == SHMSTORE_OK ? 0 : report_error(prog, "open", rc, obj);
}

/* The main of a reader whose arguments are a target and an optional count
 * (`what` names it in messages; default 1): open the target, run `body`
 * with the count, flush the output and close. `usage` prints the usage and
 * returns EXIT_USAGE. */
static inline int run_counted(const char *prog, int argc, char **argv, const char *what,
                              int (*usage)(void),
                              int (*body)(struct shmstore_object *, unsigned long long))
{
    struct shmstore_object obj;
    int i = 1;
    int rc = open_target(prog, argc, argv, &i, &obj);
    if (rc == EXIT_USAGE)
        return usage();
    if (rc != 0)
        return rc;
    long long count = 1;
    if (i < argc && !parse_long(argv[i++], 10, 1, LLONG_MAX, &count)) {
        fprintf(stderr, "%s: bad %s count %s\n", prog, what, argv[i - 1]);
        rc = EXIT_USAGE;
    } else if (i < argc) {
        rc = usage();
    } else {
        rc = body(&obj, (unsigned long long)count);
    }
    if (fflush(stdout) != 0 && rc == 0)
        rc = EXIT_SYSTEM;
    if (shmstore_close(&obj) != SHMSTORE_OK)
        return report_error(prog, "close", SHMSTORE_ESYSTEM, &obj);
    return rc;
}

#endif
