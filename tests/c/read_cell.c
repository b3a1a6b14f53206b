/*
 * A reader of a shmstore SharedCell<[u64; 4]>, through include/shmstore.h.
 *
 * usage: read_cell [OPTIONS] SHMID [READS]
 *        read_cell [OPTIONS] --key KEY [READS]
 *        read_cell [OPTIONS] --name NAME [READS]
 *        read_cell [OPTIONS] --namespace DIR --name NAME [READS]
 *
 * Opens the cell read-only (by segment id, by key, or by name, in the
 * private namespace of DIR if given) with the OPTIONS of the open
 * (target.h: --init-timeout-ms MS, --trust-user UID, --trust-group GID,
 * --allow-foreign-owner), checks its header, then reads the
 * cell READS times (default 1) with the lock-free protocol of FORMAT.md. It
 * prints the first and the last read, and every read that differs from the
 * one before it, one line each:
 *
 *     version=N words=A,B,C,D hash=ok name=TYPE NAME
 *
 * hash= is "ok" or "mismatch" when the stored name is known to be whole
 * (FORMAT.md, "Type fingerprint"), "unknown" otherwise. Exit status: 0 on
 * success, 2 on bad usage, 3 if there is no such cell or the namespace is
 * refused, 4 if a system call fails. It never writes to the segment.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SHMSTORE_IMPLEMENTATION
#include "shmstore.h"
#include "target.h"

#define WORDS 4u

static const char *const PROG = "read_cell";

static int usage(void)
{
    fprintf(stderr, "usage: %s [OPTIONS] SHMID|--key KEY|[--namespace DIR] --name NAME [READS]\n",
            PROG);
    return EXIT_USAGE;
}

static int read_cell(struct shmstore_object *obj, unsigned long long reads)
{
    int rc = shmstore_check_type(obj, SHMSTORE_KIND_CELL, WORDS * sizeof(uint64_t),
                                 _Alignof(uint64_t), NULL, 0);
    if (rc != SHMSTORE_OK)
        return report_error(PROG, "not a cell of [u64; 4]", rc, obj);
    int matches = shmstore_fingerprint_matches(obj);
    const char *hash = matches < 0 ? "unknown" : matches ? "ok" : "mismatch";

    uint64_t prev_words[WORDS] = {0}, prev_version = 0;
    for (unsigned long long r = 0; r < reads; r++) {
        uint64_t words[WORDS], version;
        rc = shmstore_cell_read(obj, words, sizeof words, &version);
        if (rc != SHMSTORE_OK)
            return report_error(PROG, "read", rc, obj);
        int same = r > 0 && version == prev_version &&
                   memcmp(words, prev_words, sizeof words) == 0;
        prev_version = version;
        memcpy(prev_words, words, sizeof words);
        if (same && r + 1 < reads)
            continue;
        printf("version=%" PRIu64 " words=%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64
               " hash=%s name=",
               version, words[0], words[1], words[2], words[3], hash);
        fwrite(obj->type_name, 1, obj->type_name_len, stdout);
        putchar('\n');
    }
    return 0;
}

int main(int argc, char **argv)
{
    return run_counted(PROG, argc, argv, "read", usage, read_cell);
}
