/*
 * A reader of a shmstore SharedCell<[u64; 4]> written from FORMAT.md alone.
 *
 * usage: read_cell SHMID [READS]
 *
 * Attaches segment SHMID read-only, checks its header, then reads the cell
 * READS times (default 1) with the lock-free protocol of FORMAT.md. It prints
 * the first and the last read, and every read that differs from the one
 * before it, one line each:
 *
 *     version=N words=A,B,C,D hash=ok name=TYPE NAME
 *
 * hash= is "ok" or "mismatch" when the stored name is known to be whole
 * (FORMAT.md, "Type fingerprint"), "unknown" otherwise. Exit status: 0 on
 * success, 2 on bad usage, 3 if the segment is not such a cell, 4 if a
 * system call fails. It never writes to the segment.
 */
#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/shm.h>

#define HEADER_SIZE 512u
#define MAGIC UINT64_C(0x65726f74736d6873) /* "shmstore", little-endian */
#define FORMAT_VERSION 4u
#define MAX_SLOTS 64u
#define KIND_CELL 1u
#define STATE_READY 2u
#define TYPE_NAME_MAX 128u
#define WORDS 4u
#define VALUE_SIZE (WORDS * 8u)

/* Header offsets (FORMAT.md, "Header"). */
enum {
    OFF_MAGIC = 0,
    OFF_FORMAT_VERSION = 8,
    OFF_KIND = 12,
    OFF_STATE = 16,
    OFF_HEADER_SIZE = 20,
    OFF_VALUE_SIZE = 44,
    OFF_VALUE_ALIGN = 48,
    OFF_SCHEMA_VERSION = 52,
    OFF_TYPE_HASH = 56,
    OFF_TYPE_EXTRA = 64,
    OFF_TYPE_NAME_LEN = 72,
    OFF_SLOT_COUNT = 76,
    OFF_DATA_OFFSET = 80,
    OFF_SLOT_STRIDE = 88,
    OFF_USED_LEN = 96,
    OFF_TYPE_NAME = 128,
    OFF_SEQ = 256,
    OFF_WRITING = 280,
};

static const unsigned char *base;

static const _Atomic uint64_t *at64(size_t off) {
    return (const _Atomic uint64_t *)(const void *)(base + off);
}

static uint32_t ld32(size_t off, memory_order order) {
    return atomic_load_explicit((const _Atomic uint32_t *)(const void *)(base + off), order);
}

static uint64_t ld64(size_t off, memory_order order) {
    return atomic_load_explicit(at64(off), order);
}

static int fail(const char *what, uint64_t found) {
    fprintf(stderr, "read_cell: %s (found %" PRIu64 ")\n", what, found);
    return 3;
}

static uint64_t fnv(uint64_t h, const void *bytes, size_t n) {
    const unsigned char *p = bytes;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= UINT64_C(0x100000001b3);
    }
    return h;
}

/* The bytes of v, little-endian, whatever the host (FORMAT.md is LE). */
static uint64_t fnv_le(uint64_t h, uint64_t v, size_t n) {
    unsigned char b[8];
    for (size_t i = 0; i < n; i++)
        b[i] = (unsigned char)(v >> (8 * i));
    return fnv(h, b, n);
}

static int check_and_read(size_t seg_len, unsigned long reads) {
    if (seg_len < HEADER_SIZE)
        return fail("segment smaller than the header", seg_len);
    /* Only magic and state until READY (FORMAT.md, "Creation"). */
    uint32_t state = ld32(OFF_STATE, memory_order_acquire);
    uint64_t magic = ld64(OFF_MAGIC, memory_order_relaxed);
    if (magic != MAGIC)
        return fail("not a shmstore segment: bad magic", magic);
    if (state != STATE_READY)
        return fail("state is not READY", state);
    uint32_t version = ld32(OFF_FORMAT_VERSION, memory_order_relaxed);
    if (version != FORMAT_VERSION)
        return fail("format version is not 4", version);
    uint32_t kind = ld32(OFF_KIND, memory_order_relaxed);
    if (kind != KIND_CELL)
        return fail("kind is not cell", kind);
    uint32_t header_size = ld32(OFF_HEADER_SIZE, memory_order_relaxed);
    if (header_size != HEADER_SIZE)
        return fail("header size is not 512", header_size);
    uint32_t value_size = ld32(OFF_VALUE_SIZE, memory_order_relaxed);
    if (value_size != VALUE_SIZE)
        return fail("value size is not 32", value_size);
    uint32_t slot_count = ld32(OFF_SLOT_COUNT, memory_order_relaxed);
    if (slot_count < 2 || slot_count > MAX_SLOTS || (slot_count & (slot_count - 1)) != 0)
        return fail("a cell has a power of two from 2 to 64 slots", slot_count);
    uint64_t data_offset = ld64(OFF_DATA_OFFSET, memory_order_relaxed);
    uint64_t stride = ld64(OFF_SLOT_STRIDE, memory_order_relaxed);
    uint64_t used_len = ld64(OFF_USED_LEN, memory_order_relaxed);
    if (data_offset < HEADER_SIZE || data_offset % 8 != 0)
        return fail("bad data offset", data_offset);
    if (stride < VALUE_SIZE || stride % 8 != 0)
        return fail("bad slot stride", stride);
    if (used_len != data_offset + slot_count * stride || used_len > seg_len)
        return fail("slots do not fit in the segment", used_len);

    uint32_t name_len = ld32(OFF_TYPE_NAME_LEN, memory_order_relaxed);
    if (name_len > TYPE_NAME_MAX)
        return fail("type name too long", name_len);
    char name[TYPE_NAME_MAX];
    for (uint32_t i = 0; i < name_len; i++)
        name[i] = (char)atomic_load_explicit(
            (const _Atomic unsigned char *)(const void *)(base + OFF_TYPE_NAME + i),
            memory_order_relaxed);

    /* FORMAT.md, "Type fingerprint". A name of 125 bytes or more may be cut. */
    const char *hash = "unknown";
    if (name_len < 125) {
        uint64_t h = UINT64_C(0xcbf29ce484222325);
        h = fnv_le(h, kind, 4);
        h = fnv_le(h, name_len, 8);
        h = fnv(h, name, name_len);
        h = fnv_le(h, value_size, 4);
        h = fnv_le(h, ld32(OFF_VALUE_ALIGN, memory_order_relaxed), 4);
        h = fnv_le(h, ld32(OFF_SCHEMA_VERSION, memory_order_relaxed), 4);
        h = fnv_le(h, ld64(OFF_TYPE_EXTRA, memory_order_relaxed), 8);
        hash = h == ld64(OFF_TYPE_HASH, memory_order_relaxed) ? "ok" : "mismatch";
    }

    /* FORMAT.md, "Reading": a seqlock over a ring of slots. */
    const _Atomic uint64_t *seq = at64(OFF_SEQ);
    const _Atomic uint64_t *writing = at64(OFF_WRITING);
    uint64_t prev_words[WORDS] = {0}, prev_version = 0;
    for (unsigned long r = 0; r < reads; r++) {
        uint64_t words[WORDS];
        uint64_t s1;
        for (unsigned spins = 1;; spins++) {
            s1 = atomic_load_explicit(seq, memory_order_acquire);
            const _Atomic uint64_t *slot =
                at64(data_offset + (s1 & (slot_count - 1)) * stride);
            for (unsigned w = 0; w < WORDS; w++)
                words[w] = atomic_load_explicit(&slot[w], memory_order_relaxed);
            atomic_thread_fence(memory_order_acquire);
            if (atomic_load_explicit(writing, memory_order_relaxed) - s1 < slot_count ||
                atomic_load_explicit(seq, memory_order_relaxed) == s1)
                break;
            if (spins % 64 == 0)
                sched_yield();
        }
        int same = r > 0 && s1 == prev_version && memcmp(words, prev_words, sizeof words) == 0;
        prev_version = s1;
        memcpy(prev_words, words, sizeof words);
        if (same && r + 1 < reads)
            continue;
        printf("version=%" PRIu64 " words=%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64
               " hash=%s name=",
               s1, words[0], words[1], words[2], words[3], hash);
        fwrite(name, 1, name_len, stdout);
        putchar('\n');
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s SHMID [READS]\n", argv[0]);
        return 2;
    }
    char *end;
    long id = strtol(argv[1], &end, 10);
    if (*argv[1] == '\0' || *end != '\0' || id < 0 || id > INT32_MAX) {
        fprintf(stderr, "read_cell: bad segment id %s\n", argv[1]);
        return 2;
    }
    unsigned long reads = 1;
    if (argc == 3) {
        reads = strtoul(argv[2], &end, 10);
        if (*argv[2] == '\0' || *end != '\0' || reads == 0) {
            fprintf(stderr, "read_cell: bad read count %s\n", argv[2]);
            return 2;
        }
    }

    struct shmid_ds ds;
    if (shmctl((int)id, IPC_STAT, &ds) != 0) {
        fprintf(stderr, "read_cell: shmctl(IPC_STAT): %s\n", strerror(errno));
        return 4;
    }
    void *p = shmat((int)id, NULL, SHM_RDONLY);
    if (p == (void *)-1) {
        fprintf(stderr, "read_cell: shmat: %s\n", strerror(errno));
        return 4;
    }
    base = p;
    int rc = check_and_read(ds.shm_segsz, reads);
    if (fflush(stdout) != 0 && rc == 0)
        rc = 4;
    if (shmdt(p) != 0) {
        fprintf(stderr, "read_cell: shmdt: %s\n", strerror(errno));
        return 4;
    }
    return rc;
}
