/*
 * A reader of a shmstore SharedRegion, through include/shmstore.h: it copies
 * the current archive from a read-only attachment (FORMAT.md, "Reading a
 * region by copying") and prints it; it does not interpret it.
 *
 * usage: read_region [OPTIONS] SHMID [COPIES]
 *        read_region [OPTIONS] --key KEY [COPIES]
 *        read_region [OPTIONS] --name NAME [COPIES]
 *
 * (OPTIONS: the options of the open, as target.h parses them.)
 *
 * Copies the current archive COPIES times (default 1). It prints the first
 * and the last copy, and every copy that differs from the one before it (in
 * version or in bytes), one line each, the archive's bytes in hexadecimal:
 *
 *     version=N len=L archive=0a1b...
 *
 * Exit status: 0 on success, 2 on bad usage, 3 if there is no such region,
 * 4 if a system call fails, 5 if nothing was published to it yet. It never
 * writes to the segment.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SHMSTORE_IMPLEMENTATION
#include "shmstore.h"
#include "target.h"

static const char *const PROG = "read_region";

static int usage(void)
{
    fprintf(stderr, "usage: %s [OPTIONS] SHMID|--key KEY|--name NAME [COPIES]\n", PROG);
    return EXIT_USAGE;
}

static void print_copy(uint64_t version, const unsigned char *bytes, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    printf("version=%" PRIu64 " len=%zu archive=", version, len);
    for (size_t i = 0; i < len; i++) {
        putchar(hex[bytes[i] >> 4]);
        putchar(hex[bytes[i] & 15]);
    }
    putchar('\n');
}

static int read_region(struct shmstore_object *obj, unsigned long long copies)
{
    size_t cap = shmstore_region_capacity(obj);
    if (cap == 0)
        return report_error(PROG, "open", SHMSTORE_ETYPE, obj);
    unsigned char *buf = malloc(cap), *prev = malloc(cap);
    if (buf == NULL || prev == NULL) {
        free(buf);
        free(prev);
        fprintf(stderr, "%s: out of memory\n", PROG);
        return EXIT_SYSTEM;
    }
    int status = 0;
    uint64_t prev_version = 0;
    size_t prev_len = 0;
    for (unsigned long long c = 0; c < copies; c++) {
        size_t len;
        uint64_t version;
        int rc = shmstore_region_copy(obj, buf, cap, &len, &version);
        if (rc != SHMSTORE_OK) {
            status = report_error(PROG, "copy", rc, obj);
            break;
        }
        int same = c > 0 && version == prev_version && len == prev_len &&
                   memcmp(buf, prev, len) == 0;
        if (!same || c + 1 == copies)
            print_copy(version, buf, len);
        unsigned char *t = prev;
        prev = buf;
        buf = t;
        prev_version = version;
        prev_len = len;
    }
    free(buf);
    free(prev);
    return status;
}

int main(int argc, char **argv)
{
    return run_counted(PROG, argc, argv, "copy", usage, read_region);
}
