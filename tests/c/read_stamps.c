/*
 * A reader of a shmstore SharedCell of stamped words, through
 * include/shmstore.h, that checks every read it makes.
 *
 * usage: read_stamps SHMID WORDS READS
 *
 * The cell holds 1 + WORDS u64s: a sequence number `seq`, then word i equal
 * to seq * 0x9e3779b97f4a7c15 ^ i * 0xff51afd7ed558ccd (mod 2^64), as the
 * Rust test writer stores them (tests/common, `Stamped`). A read mixing two
 * values' bytes shows. It reads READS times and prints one line:
 *
 *     reads=N torn=T backwards=B first=SEQ last=SEQ versions=V
 *
 * (backwards: reads older than one seen before; versions: distinct
 * versions seen). Exit status as read_cell's. It never writes to the
 * segment.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define SHMSTORE_IMPLEMENTATION
#include "shmstore.h"
#include "target.h"

static const char *const PROG = "read_stamps";

static int usage(void)
{
    fprintf(stderr, "usage: %s SHMID WORDS READS\n", PROG);
    return EXIT_USAGE;
}

static int whole(const uint64_t *v, size_t words)
{
    for (size_t i = 0; i < words; i++)
        if (v[1 + i] != (v[0] * UINT64_C(0x9e3779b97f4a7c15) ^ i * UINT64_C(0xff51afd7ed558ccd)))
            return 0;
    return 1;
}

static int read_stamps(struct shmstore_object *obj, size_t words, unsigned long long reads)
{
    size_t size = (1 + words) * sizeof(uint64_t);
    int rc = shmstore_check_type(obj, SHMSTORE_KIND_CELL, size, _Alignof(uint64_t), NULL, 0);
    if (rc != SHMSTORE_OK)
        return report_error(PROG, "not a cell of stamped words", rc, obj);
    uint64_t *v = malloc(size);
    if (v == NULL) {
        fprintf(stderr, "%s: out of memory\n", PROG);
        return EXIT_SYSTEM;
    }
    unsigned long long torn = 0, backwards = 0, versions = 0;
    uint64_t first = 0, last = 0, max = 0, prev = UINT64_MAX;
    for (unsigned long long r = 0; r < reads; r++) {
        uint64_t version;
        rc = shmstore_cell_read(obj, v, size, &version);
        if (rc != SHMSTORE_OK) {
            free(v);
            return report_error(PROG, "read", rc, obj);
        }
        torn += !whole(v, words) || v[0] != version;
        backwards += version < max;
        versions += version != prev;
        prev = version;
        max = version > max ? version : max;
        if (r == 0)
            first = version;
        last = version;
    }
    free(v);
    printf("reads=%llu torn=%llu backwards=%llu first=%" PRIu64 " last=%" PRIu64
           " versions=%llu\n",
           reads, torn, backwards, first, last, versions);
    return 0;
}

int main(int argc, char **argv)
{
    struct shmstore_object obj;
    int i = 1;
    if (argc != 4)
        return usage();
    long long words, reads;
    if (!parse_long(argv[2], 10, 0, 1 << 20, &words) ||
        !parse_long(argv[3], 10, 1, LLONG_MAX, &reads))
        return usage();
    int rc = open_target(PROG, 2, argv, &i, &obj);
    if (rc != 0)
        return rc == EXIT_USAGE ? usage() : rc;
    rc = read_stamps(&obj, (size_t)words, (unsigned long long)reads);
    if (fflush(stdout) != 0 && rc == 0)
        rc = EXIT_SYSTEM;
    if (shmstore_close(&obj) != SHMSTORE_OK)
        return report_error(PROG, "close", SHMSTORE_ESYSTEM, &obj);
    return rc;
}
