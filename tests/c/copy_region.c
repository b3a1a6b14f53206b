/*
 * Copies the archives of a shmstore SharedRegion<Vec<u64>> of stamped words
 * nonstop for a while, through include/shmstore.h, checking every copy.
 *
 * usage: copy_region SHMID|--key KEY|--name NAME MILLISECONDS QUICK_NS
 *
 * The region's archives are rkyv's of a Vec<u64> (FORMAT.md, "Region
 * archives"): the elements, then the root, 8 bytes at the end (an i32
 * relative pointer to the elements and a u32 count). The writer of version
 * v stores element 0 = v and element i = v * 0x9e3779b97f4a7c15 ^ i *
 * 0xff51afd7ed558ccd (mod 2^64), so a copy that mixes two archives shows.
 * It copies for MILLISECONDS and prints one line:
 *
 *     copies=N retries=R quick_retries=Q torn=T versions=V first=SEQ last=SEQ len=L ns_per_copy=C
 *
 * (retries: copies thrown away because the writer rewrote their buffer,
 * the object's `retries`; quick_retries: those thrown away by a call of
 * shmstore_region_copy that took less than QUICK_NS nanoseconds, which no descheduling of this process explains; torn:
 * copies kept that are not one archive; versions: distinct versions
 * copied). Exit status as read_region's. It never writes to the segment.
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

static const char *const PROG = "copy_region";

static int usage(void)
{
    fprintf(stderr, "usage: %s SHMID|--key KEY|--name NAME MILLISECONDS QUICK_NS\n", PROG);
    return EXIT_USAGE;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t word_at(const unsigned char *p)
{
    uint64_t w;
    memcpy(&w, p, 8);
    return w;
}

/* Whether the `len` bytes are an archive of the stamped words of `version`. */
static int whole(const unsigned char *a, size_t len, uint64_t version)
{
    if (len < 8 || len % 8 != 0)
        return 0;
    int32_t offset;
    uint32_t count;
    memcpy(&offset, a + len - 8, 4);
    memcpy(&count, a + len - 4, 4);
    long long start = (long long)(len - 8) + offset;
    if (count == 0 || start < 0 || start % 8 != 0 || (size_t)start + 8u * count > len - 8)
        return 0;
    const unsigned char *words = a + start;
    if (word_at(words) != version)
        return 0;
    for (uint32_t i = 1; i < count; i++)
        if (word_at(words + 8u * i) !=
            (version * UINT64_C(0x9e3779b97f4a7c15) ^ (uint64_t)i * UINT64_C(0xff51afd7ed558ccd)))
            return 0;
    return 1;
}

int main(int argc, char **argv)
{
    struct shmstore_object obj;
    int i = 1;
    long long ms, quick_ns;
    if (argc < 4)
        return usage();
    int rc = open_target(PROG, argc - 2, argv, &i, &obj);
    if (rc != 0)
        return rc == EXIT_USAGE ? usage() : rc;
    if (i != argc - 2 || !parse_long(argv[i], 10, 1, 3600000, &ms) ||
        !parse_long(argv[i + 1], 10, 0, LLONG_MAX, &quick_ns)) {
        shmstore_close(&obj);
        return usage();
    }
    size_t cap = shmstore_region_capacity(&obj);
    unsigned char *buf = cap ? malloc(cap) : NULL;
    if (buf == NULL) {
        shmstore_close(&obj);
        fprintf(stderr, "%s: not a region, or out of memory\n", PROG);
        return EXIT_REFUSED;
    }
    unsigned long long copies = 0, torn = 0, versions = 0, quick = 0;
    uint64_t first = 0, last = 0;
    size_t len = 0;
    int status = 0;
    uint64_t start = now_ns(), end = start + (uint64_t)ms * 1000000u, now = start;
    while (now < end) {
        uint64_t version = 0, retries = obj.retries;
        rc = shmstore_region_copy(&obj, buf, cap, &len, &version);
        uint64_t then = now_ns();
        if (obj.retries != retries && then - now < (uint64_t)quick_ns)
            quick += obj.retries - retries;
        if (rc != SHMSTORE_OK) {
            status = report_error(PROG, "copy", rc, &obj);
            break;
        }
        torn += !whole(buf, len, version);
        versions += copies == 0 || version != last;
        if (copies == 0)
            first = version;
        last = version;
        copies++;
        now = then;
    }
    free(buf);
    if (status == 0)
        printf("copies=%llu retries=%" PRIu64 " quick_retries=%llu torn=%llu versions=%llu "
               "first=%" PRIu64 " last=%" PRIu64 " len=%zu ns_per_copy=%llu\n",
               copies, obj.retries, quick, torn, versions, first, last, len,
               copies ? (unsigned long long)((now - start) / copies) : 0ull);
    if (fflush(stdout) != 0 && status == 0)
        status = EXIT_SYSTEM;
    if (shmstore_close(&obj) != SHMSTORE_OK)
        return report_error(PROG, "close", SHMSTORE_ESYSTEM, &obj);
    return status;
}
