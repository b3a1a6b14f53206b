/*
 * shmstore.h: read shmstore objects (FORMAT.md's on-segment format, the
 * version SHMSTORE_FORMAT_VERSION) from C.
 *
 * A single-header C11 library. Included as it is, it declares: the
 * format's constants and layout (offsets checked by _Static_assert), the
 * error codes, the objects and options, and the functions below; it
 * includes only <stdbool.h>, <stddef.h>, <stdint.h>, <sys/ipc.h> and
 * <sys/types.h>. One C file of a program, and only one, also compiles the
 * functions: it defines SHMSTORE_IMPLEMENTATION before including the
 * header, and asks for POSIX.1-2008 (_POSIX_C_SOURCE 200809L, or
 * _DEFAULT_SOURCE) before its first #include. C++ includes the
 * declarations too (without the layout's structs, whose fields are
 * _Atomic); the implementation is compiled as C.
 *
 * The functions attach segments read-only (SHM_RDONLY) and never write a
 * byte of them: they read a SharedCell's value with the lock-free protocol
 * of FORMAT.md ("Reading a cell"), copy a SharedRegion's current rkyv
 * archive ("Reading a region by copying") and wait for an object's version
 * to change ("Waiting for a change": shmstore_wait_for_change, which a
 * removal ends). They do not take the writers' mutex or pin region buffers.
 * A program that reads a cell of a u64 named on its command line:
 *
 *     // shmstore.c
 *     #define _POSIX_C_SOURCE 200809L
 *     #define SHMSTORE_IMPLEMENTATION
 *     #include "shmstore.h"
 *
 *     // counter.c: cc -std=c11 -I include counter.c shmstore.c -o counter
 *     #include <inttypes.h>
 *     #include <stdio.h>
 *     #include "shmstore.h"
 *
 *     int main(int argc, char **argv)
 *     {
 *         const char *name = argc > 1 ? argv[1] : "acme/counter";
 *         struct shmstore_options opts = shmstore_options_default();
 *         opts.init_timeout_ms = 1000; // wait at most 1 s for its creator
 *         struct shmstore_object obj;
 *         uint64_t value, version;
 *         int rc = shmstore_open_name(name, &opts, &obj);
 *         if (rc == SHMSTORE_OK)
 *             rc = shmstore_check_type(&obj, SHMSTORE_KIND_CELL, sizeof value,
 *                                      _Alignof(uint64_t), NULL, 0);
 *         if (rc == SHMSTORE_OK)
 *             rc = shmstore_cell_read(&obj, &value, sizeof value, &version);
 *         shmstore_close(&obj);
 *         if (rc != SHMSTORE_OK) {
 *             fprintf(stderr, "%s: %s\n", name, shmstore_strerror(rc));
 *             return 1;
 *         }
 *         printf("%s = %" PRIu64 " (version %" PRIu64 ")\n", name, value, version);
 *         return 0;
 *     }
 *
 * To follow the cell, the program would wait, after its read and before
 * shmstore_close, for the version to change, and read again, until the
 * cell is removed (SHMSTORE_EREMOVED) or something fails
 * (SHMSTORE_WAIT_FOREVER: no deadline):
 *
 *         while (rc == SHMSTORE_OK) {
 *             rc = shmstore_wait_for_change(&obj, version, SHMSTORE_WAIT_FOREVER, NULL);
 *             if (rc == SHMSTORE_OK)
 *                 rc = shmstore_cell_read(&obj, &value, sizeof value, &version);
 *             if (rc == SHMSTORE_OK)
 *                 printf("%s = %" PRIu64 " (version %" PRIu64 ")\n", name, value, version);
 *         }
 *
 * Every function returns SHMSTORE_OK (0) or an error code (enum
 * shmstore_error); shmstore_strerror() says what a code means. The object
 * keeps what the last failure was about: `sys_call` and `sys_errno` for
 * SHMSTORE_ESYSTEM (errno is left set too), `detail` and `detail_value`
 * for a refused header or namespace, `uid`, `cuid` and `gid` for a segment
 * of a user it does not trust, also after a failed open.
 *
 * An object may store its value type's schema (FORMAT.md, "Schema"):
 * shmstore_schema_load() copies it, checks its hash and parses it against
 * the header, shmstore_read_value() reads the value (a cell's, or a
 * region's archive), and getters read its fields by path, e.g.
 * shmstore_get_u64(&value, "limits.max_conn", &n) or
 * shmstore_get_str(&value, "tags[2]", buf, sizeof buf, &len); see
 * "Schemas" below. The parser and the getters also work on a schema text
 * and bytes from elsewhere (shmstore_schema_parse, shmstore_value_root).
 *
 * The open functions take a struct shmstore_options (NULL for the
 * defaults, which shmstore_options_default() returns). An open waits, up to
 * its `init_timeout_ms` (5000 by default, measured on CLOCK_MONOTONIC), for
 * a creator to finish, for a claim of a name to become its object and for a
 * process collecting or removing the object.
 *
 * As shmstore does, an open accepts only segments whose owner and creator
 * are this process's effective user or root: another user could put a
 * segment of its own at a known key or at a name's key. Such a segment is
 * refused (SHMSTORE_EFOREIGN, naming its owner, creator and group); a
 * name's lookup passes over it, and reports it only when no object and no
 * live claim of the name is found but it holds the name. The options also
 * trust a user (`trust_user`, `user`), the members of a group in a segment
 * of that group (`trust_group`, `group`), or any user
 * (`allow_foreign_owner`).
 *
 * A name that shmstore made in a private namespace (`Key::named_in(dir,
 * name)`), whose keys come from a secret other users cannot read, is
 * opened with shmstore_open_name_in(dir, name, &opts, &obj). The directory
 * must be this user's or root's and not writable by its group or others,
 * and its secret (dir/shmstore.secret) a regular file, this user's or
 * root's, of no access to others and 16 bytes; else the namespace is
 * refused (SHMSTORE_ENAMESPACE, `detail` saying why and what to change).
 * The secret is opened without following a symbolic link (O_NOFOLLOW).
 * This library reads the secret and never makes it: a directory without
 * one holds no object (SHMSTORE_ENOTFOUND).
 *
 * The format is little-endian; this header refuses to compile on a
 * big-endian target. Where the implementation is compiled, define
 * SHMSTORE_ABI_LIBC if the C library is neither glibc nor musl as detected
 * there, and SHMSTORE_IPC_PERM_KEY(perm) if its struct ipc_perm names the
 * key otherwise than glibc (__key) and musl (__ipc_perm_key).
 */
#ifndef SHMSTORE_H
#define SHMSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/ipc.h>   /* key_t, IPC_PRIVATE */
#include <sys/types.h> /* pid_t, uid_t, gid_t, time_t */

#if defined(SHMSTORE_INIT_TIMEOUT_MS) || defined(SHMSTORE_TRUST_USER) ||                        \
    defined(SHMSTORE_TRUST_GROUP) || defined(SHMSTORE_ALLOW_FOREIGN_OWNER)
/* These settings are fields of struct shmstore_options: a macro would be
 * ignored. */
#error "shmstore.h: set the init timeout and whom to trust in struct shmstore_options"
#endif

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "shmstore's on-segment format is little-endian; big-endian targets are not supported"
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------
 * Constants (FORMAT.md, "Header", "Names", "Region data")
 * --------------------------------------------------------------------- */

/* The first eight bytes of every segment: "shmstore", little-endian. */
#define SHMSTORE_MAGIC UINT64_C(0x65726f74736d6873)

/* The file of a private namespace's secret, in its directory (FORMAT.md,
 * "Names in a private namespace"). */
#define SHMSTORE_SECRET_FILE "shmstore.secret"

/* A region's `type_extra` when its archives are in the rkyv format FORMAT.md
 * ("Region archives") describes: rkyv 0.8, little-endian, 32-bit relative
 * pointers and lengths, aligned. A program that decodes archives by those
 * rules refuses a region with another `type_extra`. */
#define SHMSTORE_RKYV_FORMAT UINT64_C(0x72010404)

/* The one format version this header reads (`format_version`). */
#define SHMSTORE_FORMAT_VERSION 6

enum {
    SHMSTORE_HEADER_SIZE = 512,
    SHMSTORE_TYPE_NAME_MAX = 128,
    SHMSTORE_NAME_MAX = 128,
    SHMSTORE_NAME_PROBES = 8,
    SHMSTORE_SECRET_LEN = 16,
    SHMSTORE_MUTEX_ROOM = 64,
    SHMSTORE_MIN_SLOTS = 2,
    SHMSTORE_MAX_SLOTS = 64,
    SHMSTORE_MAX_ALIGN = 4096,
    /* The most bytes a stored schema may have (`schema_len`). */
    SHMSTORE_SCHEMA_MAX = 16384,
    /* Where a schema lies: a cell's right after the header, a region's
     * right after its control block (FORMAT.md, "Schema"). */
    SHMSTORE_CELL_SCHEMA_OFFSET = 512,
    SHMSTORE_REGION_SCHEMA_OFFSET = 9792,

    SHMSTORE_KIND_CELL = 1,
    SHMSTORE_KIND_REGION = 2,

    SHMSTORE_STATE_FRESH = 0,
    SHMSTORE_STATE_INITIALIZING = 1,
    SHMSTORE_STATE_READY = 2,

    SHMSTORE_ARCH_OTHER = 0,
    SHMSTORE_ARCH_X86_64 = 1,
    SHMSTORE_ARCH_AARCH64 = 2,
    SHMSTORE_ARCH_RISCV64 = 3,
    SHMSTORE_ARCH_X86 = 4,
    SHMSTORE_ARCH_ARM = 5,

    SHMSTORE_LIBC_OTHER = 0,
    SHMSTORE_LIBC_GLIBC = 1,
    SHMSTORE_LIBC_MUSL = 2,
};

/* Header field offsets from the start of the segment. */
enum {
    SHMSTORE_OFF_MAGIC = 0,
    SHMSTORE_OFF_FORMAT_VERSION = 8,
    SHMSTORE_OFF_KIND = 12,
    SHMSTORE_OFF_STATE = 16,
    SHMSTORE_OFF_HEADER_SIZE = 20,
    SHMSTORE_OFF_CREATOR_PID = 24,
    SHMSTORE_OFF_ABI_ARCH = 28,
    SHMSTORE_OFF_ABI_POINTER_WIDTH = 32,
    SHMSTORE_OFF_ABI_LIBC = 36,
    SHMSTORE_OFF_ABI_MUTEX_SIZE = 40,
    SHMSTORE_OFF_VALUE_SIZE = 44,
    SHMSTORE_OFF_VALUE_ALIGN = 48,
    SHMSTORE_OFF_SCHEMA_VERSION = 52,
    SHMSTORE_OFF_TYPE_HASH = 56,
    SHMSTORE_OFF_TYPE_EXTRA = 64,
    SHMSTORE_OFF_TYPE_NAME_LEN = 72,
    SHMSTORE_OFF_SLOT_COUNT = 76,
    SHMSTORE_OFF_DATA_OFFSET = 80,
    SHMSTORE_OFF_SLOT_STRIDE = 88,
    SHMSTORE_OFF_USED_LEN = 96,
    SHMSTORE_OFF_CREATOR_START = 104,
    SHMSTORE_OFF_NAME_LEN = 112,
    SHMSTORE_OFF_SCHEMA_LEN = 116,
    SHMSTORE_OFF_SCHEMA_HASH = 120,
    SHMSTORE_OFF_TYPE_NAME = 128,
    SHMSTORE_OFF_SEQ = 256,
    SHMSTORE_OFF_NOTIFY = 264,
    SHMSTORE_OFF_RECOVERIES = 272,
    SHMSTORE_OFF_WRITING = 280,
    SHMSTORE_OFF_LIFE = 288,
    SHMSTORE_OFF_MUTEX = 320,
    SHMSTORE_OFF_NAME = 384,
};

/* A region's control block: where it lies, and its fields' offsets from its
 * start (add SHMSTORE_REGION_CONTROL_OFFSET for offsets in the segment). */
enum {
    SHMSTORE_REGION_CONTROL_OFFSET = 512,
    SHMSTORE_REGION_CONTROL_SIZE = 9280,
    /* The least data_offset of a region: header and control block. */
    SHMSTORE_REGION_DATA_MIN = 9792,
    SHMSTORE_REGION_BUFFER_ALIGN = 64,
    SHMSTORE_PIN_SLOTS = 128,

    SHMSTORE_RC_CURRENT = 0,
    SHMSTORE_RC_BUFFERS = 64,
    SHMSTORE_RC_BUFFER_SIZE = 16,
    SHMSTORE_RC_BUFFER_LEN = 0,     /* within a buffer's description */
    SHMSTORE_RC_BUFFER_VERSION = 8, /* within a buffer's description */
    SHMSTORE_RC_PINS = 1088,
    SHMSTORE_RC_PIN_SIZE = 64,
    SHMSTORE_RC_PIN_WORD = 0,       /* within a pin */
    SHMSTORE_RC_PIN_START_TIME = 8, /* within a pin */
};

/* Offsets within the control block of buffer i's and pin p's fields. */
#define SHMSTORE_RC_BUFFER_LEN_AT(i) (SHMSTORE_RC_BUFFERS + SHMSTORE_RC_BUFFER_SIZE * (i))
#define SHMSTORE_RC_BUFFER_VERSION_AT(i) (SHMSTORE_RC_BUFFER_LEN_AT(i) + SHMSTORE_RC_BUFFER_VERSION)
#define SHMSTORE_RC_PIN_WORD_AT(p) (SHMSTORE_RC_PINS + SHMSTORE_RC_PIN_SIZE * (p))
#define SHMSTORE_RC_PIN_START_TIME_AT(p) (SHMSTORE_RC_PIN_WORD_AT(p) + SHMSTORE_RC_PIN_START_TIME)

/* `current`: (version << 8) | buffer. */
#define SHMSTORE_CURRENT_VERSION(current) ((uint64_t)(current) >> 8)
#define SHMSTORE_CURRENT_BUFFER(current) ((unsigned)((current) & 0xffu))

/* A pin word's bits. */
#define SHMSTORE_PIN_PID_MASK UINT64_C(0x3fffff)            /* bits 0-21 */
#define SHMSTORE_PIN_BUFFER_SHIFT 22                        /* bits 22-28: buffer + 1 */
#define SHMSTORE_PIN_BUFFER_MASK (UINT64_C(0x7f) << 22)
#define SHMSTORE_PIN_STARTED (UINT64_C(1) << 29)
#define SHMSTORE_PIN_TAG_SHIFT 30                           /* bits 30-63 */

/* `notify`: bit 0 WAITING, bits 1-31 an epoch. */
#define SHMSTORE_NOTIFY_WAITING 1u

/* Waiting for a change (shmstore_wait_for_change; FORMAT.md, "Waiting for a
 * change"). A timeout of SHMSTORE_WAIT_FOREVER (UINT_MAX) milliseconds has
 * no deadline. A reader, attached read-only, cannot set WAITING, so writers
 * need not wake it: it sleeps on `notify` in slices of
 * SHMSTORE_WAIT_SLICE_MS (shmstore's READ_ONLY_SLICE), looking at the
 * version and the `life` word after each, and asks the kernel whether the
 * segment was removed (IPC_STAT) after a slice once
 * min(SHMSTORE_REMOVAL_CHECK_MS, SHMSTORE_WAIT_SLICE_MS) passed since it
 * last asked (shmstore's REMOVAL_CHECK). */
#define SHMSTORE_WAIT_FOREVER (~0u)
#define SHMSTORE_WAIT_SLICE_MS 2u
#define SHMSTORE_REMOVAL_CHECK_MS 100u

/* `life` (FORMAT.md, "Removal"): bits 0-1 the state, 2-23 the pid of the
 * process collecting or removing the object, 24-63 the low 40 bits of its
 * start time. */
#define SHMSTORE_LIFE_STATE_MASK UINT64_C(3)
#define SHMSTORE_LIFE_LIVE UINT64_C(0)
#define SHMSTORE_LIFE_COLLECTING UINT64_C(1)
#define SHMSTORE_LIFE_REMOVING UINT64_C(2) /* 2 or 3 */
#define SHMSTORE_LIFE_PID(word) ((pid_t)(((uint64_t)(word) >> 2) & UINT64_C(0x3fffff)))
#define SHMSTORE_LIFE_START(word) ((uint64_t)(word) >> 24)
#define SHMSTORE_LIFE_START_MASK ((UINT64_C(1) << 40) - 1)

#ifndef __cplusplus

/* ------------------------------------------------------------------------
 * The layout as C structs, checked against the offsets above
 * --------------------------------------------------------------------- */

/* The header at offset 0. Fields that other processes write after READY
 * (seq, notify, recoveries, writing, life, the mutex) must be read through
 * atomics of their size; every field is declared _Atomic so that any read
 * through this struct is one. */
struct shmstore_header {
    _Alignas(64) _Atomic uint64_t magic;
    _Atomic uint32_t format_version;
    _Atomic uint32_t kind;
    _Atomic uint32_t state;
    _Atomic uint32_t header_size;
    _Atomic int32_t creator_pid;
    _Atomic uint32_t abi_arch;
    _Atomic uint32_t abi_pointer_width;
    _Atomic uint32_t abi_libc;
    _Atomic uint32_t abi_mutex_size;
    _Atomic uint32_t value_size;
    _Atomic uint32_t value_align;
    _Atomic uint32_t schema_version;
    _Atomic uint64_t type_hash;
    _Atomic uint64_t type_extra;
    _Atomic uint32_t type_name_len;
    _Atomic uint32_t slot_count;
    _Atomic uint64_t data_offset;
    _Atomic uint64_t slot_stride;
    _Atomic uint64_t used_len;
    _Atomic uint64_t creator_start;
    _Atomic uint32_t name_len;
    _Atomic uint32_t schema_len;
    _Atomic uint64_t schema_hash;
    _Atomic unsigned char type_name[SHMSTORE_TYPE_NAME_MAX];
    _Atomic uint64_t seq;
    _Atomic uint32_t notify;
    unsigned char reserved1[4];
    _Atomic uint64_t recoveries;
    _Atomic uint64_t writing;
    _Atomic uint64_t life;
    unsigned char reserved2[24];
    unsigned char mutex[SHMSTORE_MUTEX_ROOM]; /* a pthread_mutex_t: readers leave it alone */
    _Atomic unsigned char name[SHMSTORE_NAME_MAX];
};

/* A region buffer's description. */
struct shmstore_buffer_meta {
    _Atomic uint64_t len;
    _Atomic uint64_t version;
};

/* A reader pin slot, on a cache line of its own. */
struct shmstore_pin {
    _Alignas(64) _Atomic uint64_t word;
    _Atomic uint64_t start_time;
    unsigned char reserved[48];
};

/* A region's control block, at SHMSTORE_REGION_CONTROL_OFFSET. */
struct shmstore_region_control {
    _Alignas(64) _Atomic uint64_t current;
    unsigned char reserved[56]; /* format 4's pin_high: readers never used it */
    struct shmstore_buffer_meta buffers[SHMSTORE_MAX_SLOTS];
    struct shmstore_pin pins[SHMSTORE_PIN_SLOTS];
};

_Static_assert(sizeof(_Atomic uint32_t) == 4 && sizeof(_Atomic uint64_t) == 8 &&
                   sizeof(_Atomic unsigned char) == 1,
               "atomics of the fields' sizes");
_Static_assert(sizeof(struct shmstore_header) == SHMSTORE_HEADER_SIZE, "header size");
_Static_assert(_Alignof(struct shmstore_header) == 64, "header alignment");
_Static_assert(offsetof(struct shmstore_header, magic) == SHMSTORE_OFF_MAGIC, "magic");
_Static_assert(offsetof(struct shmstore_header, format_version) == SHMSTORE_OFF_FORMAT_VERSION,
               "format_version");
_Static_assert(offsetof(struct shmstore_header, kind) == SHMSTORE_OFF_KIND, "kind");
_Static_assert(offsetof(struct shmstore_header, state) == SHMSTORE_OFF_STATE, "state");
_Static_assert(offsetof(struct shmstore_header, header_size) == SHMSTORE_OFF_HEADER_SIZE,
               "header_size");
_Static_assert(offsetof(struct shmstore_header, creator_pid) == SHMSTORE_OFF_CREATOR_PID,
               "creator_pid");
_Static_assert(offsetof(struct shmstore_header, abi_arch) == SHMSTORE_OFF_ABI_ARCH, "abi_arch");
_Static_assert(offsetof(struct shmstore_header, abi_pointer_width) ==
                   SHMSTORE_OFF_ABI_POINTER_WIDTH,
               "abi_pointer_width");
_Static_assert(offsetof(struct shmstore_header, abi_libc) == SHMSTORE_OFF_ABI_LIBC, "abi_libc");
_Static_assert(offsetof(struct shmstore_header, abi_mutex_size) == SHMSTORE_OFF_ABI_MUTEX_SIZE,
               "abi_mutex_size");
_Static_assert(offsetof(struct shmstore_header, value_size) == SHMSTORE_OFF_VALUE_SIZE,
               "value_size");
_Static_assert(offsetof(struct shmstore_header, value_align) == SHMSTORE_OFF_VALUE_ALIGN,
               "value_align");
_Static_assert(offsetof(struct shmstore_header, schema_version) == SHMSTORE_OFF_SCHEMA_VERSION,
               "schema_version");
_Static_assert(offsetof(struct shmstore_header, type_hash) == SHMSTORE_OFF_TYPE_HASH,
               "type_hash");
_Static_assert(offsetof(struct shmstore_header, type_extra) == SHMSTORE_OFF_TYPE_EXTRA,
               "type_extra");
_Static_assert(offsetof(struct shmstore_header, type_name_len) == SHMSTORE_OFF_TYPE_NAME_LEN,
               "type_name_len");
_Static_assert(offsetof(struct shmstore_header, slot_count) == SHMSTORE_OFF_SLOT_COUNT,
               "slot_count");
_Static_assert(offsetof(struct shmstore_header, data_offset) == SHMSTORE_OFF_DATA_OFFSET,
               "data_offset");
_Static_assert(offsetof(struct shmstore_header, slot_stride) == SHMSTORE_OFF_SLOT_STRIDE,
               "slot_stride");
_Static_assert(offsetof(struct shmstore_header, used_len) == SHMSTORE_OFF_USED_LEN, "used_len");
_Static_assert(offsetof(struct shmstore_header, creator_start) == SHMSTORE_OFF_CREATOR_START,
               "creator_start");
_Static_assert(offsetof(struct shmstore_header, name_len) == SHMSTORE_OFF_NAME_LEN, "name_len");
_Static_assert(offsetof(struct shmstore_header, schema_len) == SHMSTORE_OFF_SCHEMA_LEN,
               "schema_len");
_Static_assert(offsetof(struct shmstore_header, schema_hash) == SHMSTORE_OFF_SCHEMA_HASH,
               "schema_hash");
_Static_assert(offsetof(struct shmstore_header, type_name) == SHMSTORE_OFF_TYPE_NAME,
               "type_name");
_Static_assert(offsetof(struct shmstore_header, seq) == SHMSTORE_OFF_SEQ, "seq");
_Static_assert(offsetof(struct shmstore_header, notify) == SHMSTORE_OFF_NOTIFY, "notify");
_Static_assert(offsetof(struct shmstore_header, recoveries) == SHMSTORE_OFF_RECOVERIES,
               "recoveries");
_Static_assert(offsetof(struct shmstore_header, writing) == SHMSTORE_OFF_WRITING, "writing");
_Static_assert(offsetof(struct shmstore_header, life) == SHMSTORE_OFF_LIFE, "life");
_Static_assert(offsetof(struct shmstore_header, mutex) == SHMSTORE_OFF_MUTEX, "mutex");
_Static_assert(offsetof(struct shmstore_header, name) == SHMSTORE_OFF_NAME, "name");

_Static_assert(sizeof(struct shmstore_buffer_meta) == SHMSTORE_RC_BUFFER_SIZE, "buffer size");
_Static_assert(offsetof(struct shmstore_buffer_meta, len) == SHMSTORE_RC_BUFFER_LEN, "len");
_Static_assert(offsetof(struct shmstore_buffer_meta, version) == SHMSTORE_RC_BUFFER_VERSION,
               "version");
_Static_assert(sizeof(struct shmstore_pin) == SHMSTORE_RC_PIN_SIZE, "pin size");
_Static_assert(offsetof(struct shmstore_pin, word) == SHMSTORE_RC_PIN_WORD, "pin word");
_Static_assert(offsetof(struct shmstore_pin, start_time) == SHMSTORE_RC_PIN_START_TIME,
               "pin start_time");
_Static_assert(sizeof(struct shmstore_region_control) == SHMSTORE_REGION_CONTROL_SIZE,
               "control block size");
_Static_assert(offsetof(struct shmstore_region_control, current) == SHMSTORE_RC_CURRENT,
               "current");
_Static_assert(offsetof(struct shmstore_region_control, buffers) == SHMSTORE_RC_BUFFERS,
               "buffers");
_Static_assert(offsetof(struct shmstore_region_control, pins) == SHMSTORE_RC_PINS, "pins");
_Static_assert(SHMSTORE_RC_BUFFER_VERSION_AT(SHMSTORE_MAX_SLOTS - 1) + 8 == SHMSTORE_RC_PINS,
               "the buffers end where the pins begin");
_Static_assert(SHMSTORE_RC_PIN_START_TIME_AT(SHMSTORE_PIN_SLOTS - 1) + 8 + 48 ==
                   SHMSTORE_REGION_CONTROL_SIZE,
               "the pins end the control block");
_Static_assert(SHMSTORE_REGION_CONTROL_OFFSET + SHMSTORE_REGION_CONTROL_SIZE ==
                   SHMSTORE_REGION_DATA_MIN,
               "a region's data follows its control block");

#else
/* C++ has no _Atomic: the layout's structs are for C only (the offsets
 * above are for both). */
struct shmstore_header;
struct shmstore_region_control;
#endif

/* ------------------------------------------------------------------------
 * Errors
 * --------------------------------------------------------------------- */

enum shmstore_error {
    SHMSTORE_OK = 0,
    /* Not a shmstore segment: too small for a header, or no magic. */
    SHMSTORE_ENOTSHMSTORE = 1,
    /* A shmstore segment of another format version. */
    SHMSTORE_EFORMAT = 2,
    /* Made on another platform (architecture, pointer width, C library or
     * mutex size differ). */
    SHMSTORE_EABI = 3,
    /* The header contradicts itself, the format or the segment's size. */
    SHMSTORE_ECORRUPT = 4,
    /* The object is not of the kind, size or type asked for. */
    SHMSTORE_ETYPE = 5,
    /* No segment at the key or id, or no object of the name. */
    SHMSTORE_ENOTFOUND = 6,
    /* A system call failed: the object's sys_call and sys_errno say which
     * and why (errno is left set too). */
    SHMSTORE_ESYSTEM = 7,
    /* A region to which nothing has been published yet. */
    SHMSTORE_ENOTHING = 8,
    /* Every key of the name holds another segment: no object can have the
     * name. */
    SHMSTORE_ENAMETAKEN = 9,
    /* The segment is still being initialised: its creator is at work, or
     * died before it finished. */
    SHMSTORE_ENOTREADY = 10,
    /* A bad argument: an invalid name, a null pointer, an object not
     * opened. */
    SHMSTORE_EINVAL = 11,
    /* The caller's buffer is smaller than the archive, schema or string
     * (its length is returned), or a schema has more nodes than given. */
    SHMSTORE_ETOOSMALL = 12,
    /* The segment's owner or creator is another user than this process's
     * effective user and root, and not one it was told to trust; the
     * object's uid, cuid and gid say whose it is (see struct
     * shmstore_options: trust_user, trust_group, allow_foreign_owner). */
    SHMSTORE_EFOREIGN = 13,
    /* The object is being removed or collected by a process that still
     * runs (its pid in detail_value), which did not finish within the
     * timeout. */
    SHMSTORE_EBUSY = 14,
    /* A private namespace refused: its directory or its secret is another
     * user's (not root's), others may write the directory or use the
     * secret, the secret is not 16 bytes, or either cannot be looked at
     * (sys_call and sys_errno say why); `detail` says which, and the
     * remedy. */
    SHMSTORE_ENAMESPACE = 15,
    /* shmstore_wait_for_change: the timeout passed and the version did not
     * change. */
    SHMSTORE_ETIMEDOUT = 16,
    /* shmstore_wait_for_change: the object was removed (its `life` word
     * says so, or the kernel marked its segment for destruction or no
     * longer has it) and the version did not change; `detail` says which.
     * Open its key or name again for a successor. */
    SHMSTORE_EREMOVED = 17,
    /* The object stores no schema (`schema_len` 0). */
    SHMSTORE_ENOSCHEMA = 18,
    /* A schema refused: not the grammar, too deep, a form its layout does
     * not allow, or a size or alignment other than the value's. */
    SHMSTORE_ESCHEMA = 19,
    /* A path that names no place of the schema, or is not well formed. */
    SHMSTORE_ENOPATH = 20,
    /* The value has nothing at the path: an option that is None, an enum
     * holding another variant, an index past a vector's end, a key absent. */
    SHMSTORE_ENONE = 21,
    /* A number that does not fit the type asked for, or a walk past its
     * bounds. */
    SHMSTORE_ERANGE = 22,
    /* Something this library does not decode yet. */
    SHMSTORE_ENOTSUP = 23,
};


/* ------------------------------------------------------------------------
 * An attached object
 * --------------------------------------------------------------------- */

struct shmstore_object {
    /* The read-only attachment (NULL when not attached). */
    const unsigned char *base;
    /* The segment's id, and the key it was found at (IPC_PRIVATE when
     * opened by id). */
    int id;
    key_t key;
    /* IPC_STAT after attaching: the real size, the creating process and the
     * creation time; the owner, the creator's user and the group (for
     * SHMSTORE_EFOREIGN, those of the segment refused). */
    size_t size;
    pid_t cpid;
    time_t ctime;
    uid_t uid;
    uid_t cuid;
    gid_t gid;

    /* Set by shmstore_validate(); the fields below hold what it checked,
     * read once: the header's copies are never read again. */
    int validated;
    uint32_t kind;
    uint32_t value_size;
    uint32_t value_align;
    uint32_t schema_version;
    uint64_t type_hash;
    uint64_t type_extra;
    uint32_t slot_count;
    uint64_t data_offset;
    uint64_t slot_stride;
    uint64_t used_len;
    uint32_t type_name_len;
    char type_name[SHMSTORE_TYPE_NAME_MAX + 1]; /* NUL-terminated copy */
    uint32_t name_len;
    char name[SHMSTORE_NAME_MAX + 1]; /* NUL-terminated copy; "" at a plain key */
    /* The stored schema's length (0: none) and FNV-1a hash; its bytes are
     * at SHMSTORE_CELL_SCHEMA_OFFSET or SHMSTORE_REGION_SCHEMA_OFFSET and
     * end at or before data_offset (see shmstore_schema). */
    uint32_t schema_len;
    uint64_t schema_hash;

    /* Copies thrown away since the open because a writer rewrote what they
     * were copying: by shmstore_cell_read and shmstore_region_copy. */
    uint64_t retries;

    /* The last failure: which system call and its errno (SHMSTORE_ESYSTEM),
     * or which check refused the header and the value it found. */
    const char *sys_call;
    int sys_errno;
    const char *detail;
    uint64_t detail_value;
};

/* ------------------------------------------------------------------------
 * Options of an open
 * --------------------------------------------------------------------- */

/* How an open waits and whom it trusts. Start from
 * shmstore_options_default() and change what differs; an open given NULL
 * uses the defaults. All zero is no wait and no one trusted but this
 * process's effective user and root. */
struct shmstore_options {
    /* How long, in milliseconds, an open waits for a creator to finish, for
     * a claim of a name to become its object, and for a process collecting
     * or removing the object (SHMSTORE_ENOTREADY, SHMSTORE_EBUSY after
     * it): 5000 by default. */
    uint32_t init_timeout_ms;
    /* Also trust user `user`: false by default. */
    bool trust_user;
    uid_t user;
    /* Also trust, in a segment of group `group`, the members of that group
     * (the creator counting as one when the kernel recorded that group as
     * its group): false by default. Membership is looked up with getpwuid
     * and getgrgid, which are not thread-safe. */
    bool trust_group;
    gid_t group;
    /* Open any user's segments: false by default. */
    bool allow_foreign_owner;
};

/* The default options: init_timeout_ms 5000, no one else trusted. */
struct shmstore_options shmstore_options_default(void);

/* ------------------------------------------------------------------------
 * Opening and closing
 * --------------------------------------------------------------------- */

/* A sentence for each error code. */
const char *shmstore_strerror(int code);

/* Open the object at `key` (shmget with no flags: it must exist), as
 * shmstore_open_id does. An object removed, or being removed by a process
 * that died, is not found. */
int shmstore_open_key(key_t key, const struct shmstore_options *opts,
                      struct shmstore_object *out);

/* Open the object in segment `id`: attach read-only, wait (bounded) for its
 * creator to finish, validate. An id reaches an object whatever its `life`
 * word says (a removed one too: FORMAT.md, "Removal"), but a live
 * collector's mark is waited for, as by key. */
int shmstore_open_id(int id, const struct shmstore_options *opts, struct shmstore_object *out);

/* Open the object named `name` (a NUL-terminated string), FORMAT.md's
 * "Opening by name": look at all 8 keys of its sequence; open the object
 * (trusted, the magic, the name, READY) on the attachment that showed the
 * name. While there is none but a trusted claim of the name whose creator
 * lives, wait and look again, up to the options' init_timeout_ms
 * (SHMSTORE_ENOTREADY, the creator's pid in detail_value). An object found
 * removed is looked for again. With no object and no live claim: a segment
 * of an untrusted user that holds the name is SHMSTORE_EFOREIGN (its uid,
 * cuid, gid and id in `out`), 8 keys holding other segments
 * SHMSTORE_ENAMETAKEN, and anything else SHMSTORE_ENOTFOUND. */
int shmstore_open_name(const char *name, const struct shmstore_options *opts,
                       struct shmstore_object *out);

/* Open the object named `name` in the private namespace of directory `dir`
 * (FORMAT.md, "Names in a private namespace"): its secret is loaded and
 * checked as shmstore_namespace_secret says (SHMSTORE_ENAMESPACE, or
 * SHMSTORE_ENOTFOUND if it has none yet), then the name is opened as
 * shmstore_open_name opens one, at the keys shmstore_name_key_in gives. */
int shmstore_open_name_in(const char *dir, const char *name, const struct shmstore_options *opts,
                          struct shmstore_object *out);

/* Detach (if attached). The error fields are kept, so that a caller can
 * still report why an open failed. */
int shmstore_close(struct shmstore_object *obj);

/* The steps of an open, for a program that takes them one by one. */

/* Attach segment `id` read-only and learn its real size, without looking at
 * its bytes. A segment owned or created by another user is refused
 * (SHMSTORE_EFOREIGN) unless the options trust that user. */
int shmstore_attach_id(int id, const struct shmstore_options *opts, struct shmstore_object *out);

/* Wait, at most `timeout_ms`, while the attached segment looks like one
 * being created (FORMAT.md, "Opening"): `state` 0 or 1 with `magic` 0 or
 * the magic, and its creator alive. The creator is the one the header names
 * (creator_pid, creator_start) once the magic is there and names shm_cpid;
 * before that, shm_cpid alive (a simplification of FORMAT.md's rule, which
 * also compares its start time with shm_ctime and its user ids with
 * shm_perm.cuid: a pid taken over by another process only makes this wait
 * last to its timeout). No length of time makes a creator dead. Returns
 * SHMSTORE_OK when there is no more reason to wait (shmstore_validate()
 * then says what the segment is, loading `state` once more: a creator
 * judged dead may have finished), SHMSTORE_ENOTREADY if the time ran out
 * (the creator's pid in detail_value). */
int shmstore_wait_ready(struct shmstore_object *obj, unsigned timeout_ms);

/* Check the attached segment's header: everything FORMAT.md has a reader
 * check, read once each and kept in `obj`. Nothing but `magic` and `state`
 * is read before `state` reads READY (acquire). */
int shmstore_validate(struct shmstore_object *obj);

/* The attached segment's header and, for a region, its control block. */
const struct shmstore_header *shmstore_header_of(const struct shmstore_object *obj);
const struct shmstore_region_control *shmstore_region_control_of(const struct shmstore_object *obj);

/* ------------------------------------------------------------------------
 * Names (FORMAT.md, "Names", "Names in a private namespace")
 * --------------------------------------------------------------------- */

/* Whether `name` (`len` bytes) can name an object: 1 to 128 bytes of
 * well-formed UTF-8 without control characters (U+0000-U+001F,
 * U+007F-U+009F). */
int shmstore_name_is_valid(const char *name, size_t len);

/* Key `i` (0 to 7) of the sequence of `name`: 32-bit FNV-1a over the byte
 * i, then "shmstore:", then the name's bytes, with the top bit set (so
 * never IPC_PRIVATE). The probe byte comes first so that two names whose
 * key 0 collide have unrelated other keys. */
key_t shmstore_name_key(const char *name, size_t len, unsigned i);

/* A name's keys above are a function of the name: any local user can take
 * them all and so deny the name. In a private namespace, a directory that
 * holds a 16-byte secret (DIR/shmstore.secret, made by shmstore on the
 * first use of a name there), a name's keys are SipHash-2-4 of it under the
 * secret, which a user who cannot read the secret cannot compute. This
 * library only reads the secret, after checking, as shmstore does, that the
 * directory is this user's or root's and not writable by others, and that
 * the secret is this user's or root's, gives other users no access and is
 * 16 bytes; it never makes it. */

/* Key `i` (0 to 7) of the sequence of `name` (`len` bytes) in the private
 * namespace whose secret is `secret`: the low 32 bits of SipHash-2-4, under
 * the secret, of the byte i, then "shmstore:", then the name's bytes, with
 * the top bit set. */
key_t shmstore_name_key_in(const uint8_t secret[SHMSTORE_SECRET_LEN], const char *name, size_t len,
                           unsigned i);

/* Load the secret of the private namespace in directory `dir` into
 * `secret`, checked as FORMAT.md says. `out` is cleared, as an open clears
 * it, and says why on failure (`detail`, and `detail_value` as it names
 * it; `sys_call` and `sys_errno` when a system call failed):
 * SHMSTORE_ENAMESPACE if the directory is not one, is another user's (not
 * root's) or others may write it, or if the secret is another user's (not
 * root's), gives other users any access (mode & 007) or is not 16 bytes,
 * or if either cannot be looked at; SHMSTORE_ENOTFOUND if the directory
 * has no secret yet (no object can be in the namespace: shmstore makes the
 * secret on the first use of a name there; this function never makes it).
 * The directory is looked at through symbolic links, as shmstore does; the
 * secret is opened without following one. */
int shmstore_namespace_secret(const char *dir, uint8_t secret[SHMSTORE_SECRET_LEN],
                              struct shmstore_object *out);

/* SipHash-2-4 (Aumasson and Bernstein) of `len` bytes at `data` under the
 * 16-byte key `key` (k0 and k1 its bytes 0-7 and 8-15, little-endian). */
uint64_t shmstore_siphash24(const uint8_t key[SHMSTORE_SECRET_LEN], const void *data, size_t len);

/* ------------------------------------------------------------------------
 * Types (FORMAT.md, "Type fingerprint")
 * --------------------------------------------------------------------- */

/* The type fingerprint of a type described by these fields (`type_name`
 * being the whole name, `name_len` bytes). */
uint64_t shmstore_fingerprint(uint32_t kind, const char *type_name, size_t name_len, uint32_t size,
                              uint32_t align, uint32_t schema_version, uint64_t extra);

/* Whether the validated header's fingerprint matches its own fields: 1 it
 * does, 0 it does not, -1 unknown (a type name of 125 bytes or more may have
 * been cut to fit, and the whole name is hashed). */
int shmstore_fingerprint_matches(const struct shmstore_object *obj);

/* Check that the validated object is of `kind` (SHMSTORE_KIND_CELL or
 * SHMSTORE_KIND_REGION) with values of `size` bytes aligned to `align`.
 * With a `type_name` (NUL-terminated, the whole name as the writer gave it),
 * also check the fingerprint of that name with `schema_version`, the size
 * and alignment, and the stored `type_extra`. The stored `type_extra` itself
 * is not checked (for regions, rkyv's format word, which C does not
 * interpret): a program that decodes a region's archives compares it with
 * SHMSTORE_RKYV_FORMAT. */
int shmstore_check_type(struct shmstore_object *obj, uint32_t kind, size_t size, size_t align,
                        const char *type_name, uint32_t schema_version);

/* ------------------------------------------------------------------------
 * Reading
 * --------------------------------------------------------------------- */

/* The current version: a cell's `seq`, a region's `current` >> 8 (acquire). */
int shmstore_version(const struct shmstore_object *obj, uint64_t *version);

/* Read a cell's current value into `out` (`size` bytes, the value's size):
 * the lock-free seqlock over a ring of slots of FORMAT.md ("Reading a
 * cell"). The copy returned is never torn; `version` (if not NULL) gets its
 * version. */
int shmstore_cell_read(struct shmstore_object *obj, void *out, size_t size, uint64_t *version);

/* The most bytes a region's archive can have: its buffers' stride. */
size_t shmstore_region_capacity(const struct shmstore_object *obj);

/* Copy a region's current archive into `buf` (`cap` bytes; any alignment,
 * though rkyv reads it in place only at max(16, value_align), since an
 * archive aligns its parts relative to its start): FORMAT.md, "Reading a
 * region by copying". `len` gets the archive's length and `version` (if not
 * NULL) its version. The copy is kept when its buffer's own version, loaded
 * before it and again after it (past an acquire fence), is the version
 * `current` named: publishes that write other buffers meanwhile do not
 * matter. A copy whose buffer was rewritten is thrown away (counted in the
 * object's `retries`) and made again, from the new `current`; with `n`
 * buffers, one survives the `n - 1` publishes FORMAT.md promises, and
 * any number if the writer's reuse grace is longer than the copy. If
 * `current` still names the buffer that no longer holds its version, the
 * control block was scribbled on: SHMSTORE_ECORRUPT, not a retry. The bytes
 * are an rkyv archive that C does not check: validate it before trusting
 * it. SHMSTORE_ETOOSMALL sets `len` to the length needed (at most
 * shmstore_region_capacity()). */
int shmstore_region_copy(struct shmstore_object *obj, void *buf, size_t cap, size_t *len,
                         uint64_t *version);

/* ------------------------------------------------------------------------
 * Schemas (FORMAT.md, "Schema (optional)")
 * --------------------------------------------------------------------- */

/* An object may store its value type's schema, a short ASCII text such as
 *
 *     Config{name:str,limits:Limits{max_conn:u32,timeout_ms:u64},tags:vec<str>,
 *            mode:enum Mode{Off=0,On=1(u32),Custom=2{level:u8}}}
 *
 * (one line, no spaces but after "enum"). These functions copy it out,
 * parse it into a tree of nodes with each type's size, alignment and
 * place, and read a value's fields by path:
 *
 *     struct shmstore_schema schema;
 *     struct shmstore_value value;
 *     uint64_t max_conn;
 *     char name[64];
 *     size_t name_len;
 *     static unsigned char buf[1 << 16];      // a cell's value, or an archive
 *     int rc = shmstore_schema_load(&obj, &schema);          // copy, parse, check
 *     if (rc == SHMSTORE_OK)
 *         rc = shmstore_read_value(&obj, &schema, buf, sizeof buf, &value, NULL);
 *     if (rc == SHMSTORE_OK)
 *         rc = shmstore_get_u64(&value, "limits.max_conn", &max_conn);
 *     if (rc == SHMSTORE_OK)
 *         rc = shmstore_get_str(&value, "tags[2]", name, sizeof name, &name_len);
 *     shmstore_schema_free(&schema);
 *
 * A path is a sequence of steps: a field's name (`limits`, then
 * `.max_conn`), an element's place in a tuple, a tuple struct or a
 * variant's fields (`.0`), an index into an array, vector or boxed slice
 * (`[2]`), a variant's name to go into an enum's or result's fields
 * (`mode.On.0`, `res.Ok.0`; another variant stored is SHMSTORE_ENONE), a
 * map's key to go to its value (`weights["db"]`, `order[7]`) and a set's
 * element (`tags{"x"}`, `ids{-3}`), the key or element written as a
 * literal:
 *
 *     "text"      a str or box<str> key, as it is: no escapes, no `"` in it
 *     7  -3       an integer key of any width (u8 to u128, usize, isize),
 *                 compared by value (`[300]` of a u8 key is SHMSTORE_ENONE),
 *                 up to 2^128 - 1 in magnitude
 *     true false  a bool key
 *     'c'         a char key: one UTF-8 scalar value (or its number: `[233]`)
 *
 * A literal of another kind than the key's type is SHMSTORE_ENOPATH, and a
 * map or set whose keys are of another type (structs, tuples, floats...)
 * is SHMSTORE_ENOTSUP (the visitor does not go into it). A key is
 * found by a scan of the entries, which neither hashes nor trusts the
 * order, after checking that the table or tree holds exactly the map's
 * `len` entries; an absent key is SHMSTORE_ENONE, a key found twice
 * SHMSTORE_ECORRUPT. A set's element is a place like any other: read it
 * with the getters, or ask shmstore_contains() whether it is there. An
 * option and a box are gone through (an option that is None is
 * SHMSTORE_ENONE), both on the way and at the end. The empty
 * path is the value itself. Every pointer, length and tag read from the
 * bytes is checked against the bytes given before it is used: bad bytes
 * are SHMSTORE_ECORRUPT, never a read outside them.
 *
 * Result codes of the value functions: SHMSTORE_ENOPATH (the schema has no
 * such place, or the path is not well formed), SHMSTORE_ENONE (the value
 * has nothing there: an option that is None, an enum holding another
 * variant, an index past a vector's length, an absent key), SHMSTORE_ETYPE
 * (the place holds another type than the getter reads), SHMSTORE_ERANGE
 * (a number that does not fit the getter's type), SHMSTORE_ECORRUPT (the
 * bytes break the format: a pointer out of range or misaligned, a bool
 * neither 0 nor 1, a bad tag, a string that is not UTF-8) and
 * SHMSTORE_ETOOSMALL (shmstore_get_str: the buffer, whose size is then
 * needed in `len`). */

enum {
    /* The deepest a schema may nest: the root is at depth 1, a type
     * written inside another (a field, an element, a variant's field) one
     * deeper. */
    SHMSTORE_SCHEMA_MAX_DEPTH = 32,
    /* The longest path shmstore_visit() hands its callback, NUL included. */
    SHMSTORE_PATH_MAX = 1024,
};

/* The nodes a schema text of `len` bytes can need at most: a caller
 * passing shmstore_schema_parse() this many never sees SHMSTORE_ETOOSMALL.
 * A valid text has at most one node per 2 bytes (a type is at least 2
 * bytes, one holding others at least 3 more); a text refused part way may
 * also hold nodes opened but not closed, at most 2 a level of nesting
 * (an enum and its variant), each at least a byte. */
#define SHMSTORE_SCHEMA_NODES_FOR(len) \
    ((size_t)(len) / 2 + 2 + 2 * (size_t)SHMSTORE_SCHEMA_MAX_DEPTH)

/* A node's type: the grammar's forms, and the variants of enums and
 * results (whose children are the variant's fields). */
enum shmstore_type {
    SHMSTORE_T_U8 = 1,
    SHMSTORE_T_I8,
    SHMSTORE_T_U16,
    SHMSTORE_T_I16,
    SHMSTORE_T_U32,
    SHMSTORE_T_I32,
    SHMSTORE_T_U64,
    SHMSTORE_T_I64,
    SHMSTORE_T_U128,
    SHMSTORE_T_I128,
    SHMSTORE_T_USIZE,
    SHMSTORE_T_ISIZE,
    SHMSTORE_T_F32,
    SHMSTORE_T_F64,
    SHMSTORE_T_BOOL,
    SHMSTORE_T_CHAR,
    SHMSTORE_T_STR,         /* "str": an archived String */
    SHMSTORE_T_UNIT,        /* "()" */
    SHMSTORE_T_VEC,         /* child: the element */
    SHMSTORE_T_BOX,         /* child: the boxed value */
    SHMSTORE_T_BOX_STR,     /* "box<str>" */
    SHMSTORE_T_BOX_SLICE,   /* "box<[T]>", child: the element */
    SHMSTORE_T_OPTION,      /* child: the value of Some, at its offset */
    SHMSTORE_T_RESULT,      /* children: variants Ok (tag 0) and Err (tag 1) */
    SHMSTORE_T_HASH_MAP,    /* children: key, value */
    SHMSTORE_T_HASH_SET,    /* child: the element */
    SHMSTORE_T_BTREE_MAP,   /* children: key, value */
    SHMSTORE_T_BTREE_SET,   /* child: the element */
    SHMSTORE_T_ARRAY,       /* child: the element; `count` elements */
    SHMSTORE_T_TUPLE,       /* children: the elements */
    SHMSTORE_T_STRUCT,      /* children: the fields, each with its label */
    SHMSTORE_T_TUPLE_STRUCT,/* children: the fields */
    SHMSTORE_T_ENUM,        /* children: the variants */
    SHMSTORE_T_VARIANT,     /* children: the fields; `tag` its tag */
};

/* One node of a parsed schema. Offsets are from the start of the parent
 * (a field in its struct, tuple or variant; Some's value in its option);
 * the names point into the schema's text and are not NUL-terminated. */
struct shmstore_schema_node {
    uint8_t type;       /* enum shmstore_type */
    uint8_t tag;        /* a variant's tag */
    uint16_t depth;     /* 1 for the root */
    uint32_t size;      /* the layout's size and alignment */
    uint32_t align;
    uint32_t offset;    /* from the parent's start */
    uint64_t count;     /* an array's length; the number of children of others */
    const char *label;  /* a field's or a variant's name (NULL: none) */
    uint32_t label_len;
    uint32_t name_len;
    const char *name;   /* a struct's or an enum's own name (NULL: none) */
    uint32_t first_child; /* index of the first child, 0 for none */
    uint32_t next;        /* index of the next sibling, 0 for none */
};

/* A parsed schema: node 0 is the root. The nodes and the text are the
 * caller's (shmstore_schema_parse) or owned by the schema and freed by
 * shmstore_schema_free (shmstore_schema_load). */
struct shmstore_schema {
    const char *text;
    size_t text_len;
    struct shmstore_schema_node *nodes;
    size_t node_count;
    /* SHMSTORE_KIND_CELL (the platform's layout, Pod forms only) or
     * SHMSTORE_KIND_REGION (rkyv 0.8's archived layout). */
    uint32_t kind;
    /* Why the text was refused, and at which byte. */
    const char *error;
    size_t error_at;
    /* What shmstore_schema_load allocated (NULL otherwise). */
    void *owned;
};

/* A place in a value: a node of the schema and where its bytes start
 * (`pos`) in `bytes` (`len` bytes: a cell's whole value, or a region's
 * whole archive). Made by shmstore_value_root(); the bytes and the schema
 * must outlive it. */
struct shmstore_value {
    const struct shmstore_schema *schema;
    const unsigned char *bytes;
    size_t len;
    size_t pos;
    uint32_t node;
};

/* Copy the object's stored schema into `buf` (`cap` bytes), reading the
 * segment once, and check its FNV-1a hash (`schema_hash`) on the copy
 * (SHMSTORE_ECORRUPT if it differs). `len` gets `schema_len`. The copy is
 * not NUL-terminated. SHMSTORE_ENOSCHEMA: the object stores none;
 * SHMSTORE_ETOOSMALL: `cap` is below `len` (at most SHMSTORE_SCHEMA_MAX). */
int shmstore_schema(struct shmstore_object *obj, char *buf, size_t cap, size_t *len);

/* Parse `text` (`len` bytes, 1 to SHMSTORE_SCHEMA_MAX) strictly by
 * FORMAT.md's grammar into `nodes` (`cap` of them; enough:
 * SHMSTORE_SCHEMA_NODES_FOR(len)), laying it out for `kind`: a cell's
 * value (only the forms FORMAT.md allows a cell: integers and floats,
 * arrays, tuples and structs; usize as this platform's size_t) or a region's
 * archived root (every form, rkyv 0.8's sizes). `out` refers to `text` and
 * `nodes`. SHMSTORE_ESCHEMA: refused (`out->error`, `out->error_at`):
 * not the grammar, nesting deeper than SHMSTORE_SCHEMA_MAX_DEPTH, a form
 * the layout does not allow, a duplicate field, variant or tag, a type
 * larger than 4 GiB; SHMSTORE_ETOOSMALL: more nodes than `cap`, which is
 * below SHMSTORE_SCHEMA_NODES_FOR(len) (with that many, a text needing
 * more is refused with SHMSTORE_ESCHEMA). */
int shmstore_schema_parse(const char *text, size_t len, uint32_t kind,
                          struct shmstore_schema_node *nodes, size_t cap,
                          struct shmstore_schema *out);

/* Whether the parsed root has `size` bytes and alignment `align` (a
 * header's value_size and value_align): SHMSTORE_OK, or SHMSTORE_ESCHEMA. */
int shmstore_schema_check(const struct shmstore_schema *schema, uint32_t size, uint32_t align);

/* shmstore_schema, shmstore_schema_parse (for the object's kind) and
 * shmstore_schema_check (against the object's value_size and
 * value_align), in memory allocated with malloc that `out` owns: free it
 * with shmstore_schema_free (also after a failure, which leaves nothing to
 * free). A region whose type_extra is not SHMSTORE_RKYV_FORMAT is
 * SHMSTORE_ETYPE: its archives are not in the layout parsed. A refusal of
 * the schema names it in the object's `detail` too. */
int shmstore_schema_load(struct shmstore_object *obj, struct shmstore_schema *out);

/* Free what shmstore_schema_load allocated (nothing for a schema the caller
 * parsed into its own nodes), and clear `schema`. */
void shmstore_schema_free(struct shmstore_schema *schema);

/* The value at the root of `bytes` (`len` bytes): for a cell, `len` is the
 * root's size (the value read by shmstore_cell_read); for a region, the
 * archive (copied by shmstore_region_copy, `len` its length), whose root
 * is its last bytes (SHMSTORE_ECORRUPT if it is shorter than the root, or
 * the root would be misaligned). */
int shmstore_value_root(const struct shmstore_schema *schema, const void *bytes, size_t len,
                        struct shmstore_value *out);

/* Read the object's current value into `buf` (`cap` bytes) and make its
 * root: a cell's value with shmstore_cell_read (`cap` at least
 * value_size), a region's archive with shmstore_region_copy (`cap` up to
 * shmstore_region_capacity(); SHMSTORE_ETOOSMALL otherwise). `version` (if
 * not NULL) gets the version read. The schema must be the object's. */
int shmstore_read_value(struct shmstore_object *obj, const struct shmstore_schema *schema,
                        void *buf, size_t cap, struct shmstore_value *out, uint64_t *version);

/* The place `path` names from `value` (see above), options and boxes gone
 * through on the way but not at the end. */
int shmstore_value_at(const struct shmstore_value *value, const char *path,
                      struct shmstore_value *out);

/* The type of the place `value` is (enum shmstore_type). */
int shmstore_value_type(const struct shmstore_value *value);

/* Getters: the place `path` names from `value`, options and boxes gone
 * through. shmstore_get_u64 reads the unsigned integers, a char (its
 * scalar value) and the signed integers that are not negative; _i64 the
 * integers that fit an int64_t; _u128 and _i128 any integer (u128 and
 * i128 in full) and a char, as two halves: the value is `hi` * 2^64 +
 * `lo`, with `hi` signed for _i128 (two's complement: -1 is hi = -1,
 * lo = UINT64_MAX); where the compiler has `unsigned __int128`, it is
 * `(unsigned __int128)hi << 64 | lo` (cast `hi` to `__int128` for
 * _i128); _u128 refuses negative numbers with SHMSTORE_ERANGE; _f64 f32
 * and f64; _bool bool; _str a str,
 * box<str>, copied into `buf` with a NUL after it (`cap` at least its
 * length + 1, else SHMSTORE_ETOOSMALL; `len` gets its length either way;
 * UTF-8 checked); _len the elements of an array, vector, boxed slice, map
 * or set (a map's or set's `len`, once its entries are counted), the bytes of a string, or the fields of a struct, tuple or
 * variant; _variant an enum's or result's stored variant (`name`, not
 * NUL-terminated, and `tag`; either may be NULL). */
int shmstore_get_u64(const struct shmstore_value *value, const char *path, uint64_t *out);
int shmstore_get_i64(const struct shmstore_value *value, const char *path, int64_t *out);
int shmstore_get_u128(const struct shmstore_value *value, const char *path, uint64_t *hi,
                      uint64_t *lo);
int shmstore_get_i128(const struct shmstore_value *value, const char *path, int64_t *hi,
                      uint64_t *lo);
int shmstore_get_f64(const struct shmstore_value *value, const char *path, double *out);
int shmstore_get_bool(const struct shmstore_value *value, const char *path, bool *out);
int shmstore_get_str(const struct shmstore_value *value, const char *path, char *buf, size_t cap,
                     size_t *len);
int shmstore_get_len(const struct shmstore_value *value, const char *path, uint64_t *out);
int shmstore_get_variant(const struct shmstore_value *value, const char *path, const char **name,
                         size_t *name_len, unsigned *tag);

/* Whether the map's key or the set's element that ends `path` is there
 * (`ids{7}`, `weights["db"]`): SHMSTORE_OK with `found` set either way,
 * or the error of a step before (SHMSTORE_ENONE for an option that is
 * None on the way) or of the map (SHMSTORE_ECORRUPT, SHMSTORE_ENOTSUP); a
 * path that does not end with a key or an element is SHMSTORE_ENOPATH. */
int shmstore_contains(const struct shmstore_value *value, const char *path, bool *found);

/* Call `fn` for every leaf under `value`, in order: each scalar, string
 * and unit, each unit variant (a variant without fields), each option that
 * is None (its type SHMSTORE_T_OPTION), each map or set whose keys a path
 * cannot name (a struct, a tuple, a float...; not gone into). Enums and
 * results go into the stored variant only, whose name is a step of the
 * path (`mode.On.0`); vectors and arrays into every element (`tags[0]`);
 * maps into every entry's value, named by its key (`weights["db"]`,
 * `order[7]`, `low[-3]`, `flags[true]`, `letters['é']`), and sets to
 * every element, a leaf named by itself (`tags{"x"}`, `ids{9}`), in the
 * map's order: a hash table's buckets', a B-tree's keys'. A map's table or
 * tree is checked whole (exactly its `len` entries) before its first
 * entry is visited. `path` is the leaf's path from `value`,
 * NUL-terminated, and reads back with the getters, but for a string key
 * holding `"` or a NUL byte (no literal can write it); read the leaf with
 * the getters and the empty path. A non-zero return of `fn` stops the
 * walk and is returned. The walk visits at most 32 * len + 2^20 places (a
 * map's bucket or B-tree node counts as one; bytes shared by many
 * pointers are visited anew each time): past that, or past a path of
 * SHMSTORE_PATH_MAX bytes, it stops with SHMSTORE_ERANGE. */
int shmstore_visit(const struct shmstore_value *value,
                   int (*fn)(void *ctx, const char *path, const struct shmstore_value *leaf),
                   void *ctx);

/* ------------------------------------------------------------------------
 * Waiting for a change (FORMAT.md, "Waiting for a change")
 * --------------------------------------------------------------------- */

/* Wait until the version of the validated object (a cell's `seq`, a
 * region's `current` >> 8) differs from `since`, at most `timeout_ms`
 * milliseconds (measured on CLOCK_MONOTONIC, at least that long;
 * SHMSTORE_WAIT_FOREVER: no deadline; 0: look once), as shmstore's
 * wait_for_change does on a read-only handle:
 *
 * - SHMSTORE_OK: the version differs from `since` (above or below it: a
 *   `since` other than the current version returns at once); `version` (if
 *   not NULL) gets it. A change seen together with a removal is returned as
 *   a change.
 * - SHMSTORE_ETIMEDOUT: the deadline passed with no change; `version` gets
 *   `since`. The last look is made at the deadline, so even a zero timeout
 *   sees a change made before the call.
 * - SHMSTORE_EREMOVED: the object was removed and the version did not
 *   change; `version` gets `since`. The `life` word marked REMOVING (what
 *   shmstore's remove() writes first) is seen after the current slice; an
 *   `ipcrm`, which marks nothing, is seen by IPC_STAT (SHM_DEST set, or the
 *   call failing with EINVAL or EIDRM) when the wait starts and then after
 *   every slice.
 * - SHMSTORE_ESYSTEM: the futex or IPC_STAT call failed (sys_call,
 *   sys_errno); SHMSTORE_EINVAL: the object is not validated.
 *
 * Writers do not wake a reader (it cannot set WAITING on its read-only
 * attachment): it sleeps with FUTEX_WAIT on `notify` in slices of
 * SHMSTORE_WAIT_SLICE_MS, which a writer's wake may end early, so it
 * returns within about a slice of a change. Nothing it reads from the
 * segment is used as an index or a length, and every sleep is bounded by
 * the slice, so a peer that writes anything at any time cannot make it wait
 * past its deadline. */
int shmstore_wait_for_change(struct shmstore_object *obj, uint64_t since, unsigned timeout_ms,
                             uint64_t *version);

#ifdef __cplusplus
}
#endif

#endif /* SHMSTORE_H */

/* ========================================================================
 * The implementation, compiled where SHMSTORE_IMPLEMENTATION is defined
 * ===================================================================== */

#if defined(SHMSTORE_IMPLEMENTATION) && !defined(SHMSTORE__IMPLEMENTED)
#define SHMSTORE__IMPLEMENTED
#define SHMSTORE__STRING_(x) #x
#define SHMSTORE__STRING(x) SHMSTORE__STRING_(x)

#ifdef __cplusplus
#error "compile shmstore.h's implementation (SHMSTORE_IMPLEMENTATION) in a C file"
#endif

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* Timeouts are measured on CLOCK_MONOTONIC (POSIX.1-2001), and a
 * namespace's secret is opened with O_NOFOLLOW (POSIX.1-2008). */
#if !defined(CLOCK_MONOTONIC) || !defined(O_NOFOLLOW)
/* Define _POSIX_C_SOURCE 200809L (or _DEFAULT_SOURCE) before the first
 * #include of the file that defines SHMSTORE_IMPLEMENTATION. */
#error "shmstore.h's implementation needs POSIX.1-2008: define _POSIX_C_SOURCE 200809L first"
#endif

_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2,
               "64-bit atomic loads must be lock-free: a lock (or a compare-and-swap) "
               "would write to a read-only attachment");

/* `SHM_DEST` in `shm_perm.mode` (Linux): IPC_RMID was called, the segment
 * goes once its last attachment does. C11 mode may hide <sys/shm.h>'s. */
#ifdef SHM_DEST
#define SHMSTORE__SHM_DEST SHM_DEST
#else
#define SHMSTORE__SHM_DEST 01000
#endif

/* The futex system call, which C libraries do not wrap: syscall(2), which
 * <unistd.h> declares only beyond POSIX (glibc's __USE_MISC, musl's
 * _BSD_SOURCE and _GNU_SOURCE). Its timeout is the kernel's timespec for
 * that call: two longs for SYS_futex (also on 32-bit targets, whose
 * SYS_futex takes 32-bit times), two 64-bit integers for
 * SYS_futex_time64. FUTEX_WAIT is 0 in <linux/futex.h>. */
#if !defined(__USE_MISC) && !defined(_BSD_SOURCE) && !defined(_GNU_SOURCE)
long syscall(long number, ...);
#endif
#if defined(SYS_futex)
#define SHMSTORE__SYS_FUTEX SYS_futex
typedef long shmstore__futex_time;
#elif defined(SYS_futex_time64)
#define SHMSTORE__SYS_FUTEX SYS_futex_time64
typedef long long shmstore__futex_time;
#else
#error "shmstore.h's implementation needs the futex system call (Linux)"
#endif
#define SHMSTORE__FUTEX_WAIT 0

/* The key in a `struct ipc_perm` (IPC_STAT): each C library names it its
 * own way. Define SHMSTORE_IPC_PERM_KEY for another one. */
#ifndef SHMSTORE_IPC_PERM_KEY
#if defined(__GLIBC__)
#define SHMSTORE_IPC_PERM_KEY(perm) ((perm).__key)
#else
#define SHMSTORE_IPC_PERM_KEY(perm) ((perm).__ipc_perm_key) /* musl */
#endif
#endif

/* ------------------------------------------------------------------------
 * This platform's ABI fields (FORMAT.md, "Header": abi_*)
 * --------------------------------------------------------------------- */

#if defined(__x86_64__)
#define SHMSTORE_ABI_ARCH SHMSTORE_ARCH_X86_64
#elif defined(__aarch64__)
#define SHMSTORE_ABI_ARCH SHMSTORE_ARCH_AARCH64
#elif defined(__riscv) && defined(__riscv_xlen) && __riscv_xlen == 64
#define SHMSTORE_ABI_ARCH SHMSTORE_ARCH_RISCV64
#elif defined(__i386__)
#define SHMSTORE_ABI_ARCH SHMSTORE_ARCH_X86
#elif defined(__arm__)
#define SHMSTORE_ABI_ARCH SHMSTORE_ARCH_ARM
#else
#define SHMSTORE_ABI_ARCH SHMSTORE_ARCH_OTHER
#endif

#ifndef SHMSTORE_ABI_LIBC
#if defined(__GLIBC__)
#define SHMSTORE_ABI_LIBC SHMSTORE_LIBC_GLIBC
#elif defined(__linux__) && !defined(__ANDROID__) && !defined(__UCLIBC__) && !defined(__BIONIC__)
/* musl defines no macro of its own: a Linux C library that is none of the
 * others is taken to be musl. */
#define SHMSTORE_ABI_LIBC SHMSTORE_LIBC_MUSL
#else
#define SHMSTORE_ABI_LIBC SHMSTORE_LIBC_OTHER
#endif
#endif

#define SHMSTORE_ABI_POINTER_WIDTH ((uint32_t)(sizeof(void *) * CHAR_BIT))
#define SHMSTORE_ABI_MUTEX_SIZE ((uint32_t)sizeof(pthread_mutex_t))

_Static_assert(sizeof(pthread_mutex_t) <= SHMSTORE_MUTEX_ROOM, "the mutex fits its room");

/* ------------------------------------------------------------------------
 * Errors, options and objects
 * --------------------------------------------------------------------- */

const char *shmstore_strerror(int code)
{
    switch (code) {
    case SHMSTORE_OK:
        return "success";
    case SHMSTORE_ENOTSHMSTORE:
        return "not a shmstore segment";
    case SHMSTORE_EFORMAT:
        return "a shmstore segment of another format version";
    case SHMSTORE_EABI:
        return "the object was made on another platform (architecture, pointer width, "
               "C library or mutex size differ)";
    case SHMSTORE_ECORRUPT:
        return "the segment's header, or the value or archive read, is corrupt";
    case SHMSTORE_ETYPE:
        return "the object is not of the kind, size or type asked for";
    case SHMSTORE_ENOTFOUND:
        return "no such object";
    case SHMSTORE_ESYSTEM:
        return "a system call failed (see sys_call and sys_errno)";
    case SHMSTORE_ENOTHING:
        return "nothing has been published to the region yet";
    case SHMSTORE_ENAMETAKEN:
        return "every key of the name holds another segment";
    case SHMSTORE_ENOTREADY:
        return "the object is still being initialised (or its creator died doing so)";
    case SHMSTORE_EINVAL:
        return "invalid argument";
    case SHMSTORE_ETOOSMALL:
        return "the buffer is smaller than what it must hold";
    case SHMSTORE_EFOREIGN:
        return "the segment belongs to another user, not trusted (neither this one nor root): "
               "see its uid, cuid and gid; if that user is trusted, open with the options' "
               "trust_user and user, or trust_group and group, set to it, or allow_foreign_owner";
    case SHMSTORE_EBUSY:
        return "the object is being removed or collected by a process that still runs";
    case SHMSTORE_ENAMESPACE:
        return "the private namespace is refused: its directory or its secret is not safe to "
               "use, or cannot be read (see detail)";
    case SHMSTORE_ETIMEDOUT:
        return "the object's version did not change before the timeout";
    case SHMSTORE_EREMOVED:
        return "the object was removed (open its key or name again for a successor)";
    case SHMSTORE_ENOSCHEMA:
        return "the object stores no schema";
    case SHMSTORE_ESCHEMA:
        return "the schema is refused (see the schema's error, or detail)";
    case SHMSTORE_ENOPATH:
        return "the path names nothing in the schema, or is not well formed";
    case SHMSTORE_ENONE:
        return "the value has nothing at the path (None, another variant, past the end)";
    case SHMSTORE_ERANGE:
        return "the number does not fit, or the walk went past its bounds";
    case SHMSTORE_ENOTSUP:
        return "not supported by this reader";
    default:
        return "unknown shmstore error";
    }
}

static const struct shmstore_options shmstore__defaults = {
    .init_timeout_ms = 5000u,
    .trust_user = false,
    .user = 0,
    .trust_group = false,
    .group = 0,
    .allow_foreign_owner = false,
};

struct shmstore_options shmstore_options_default(void)
{
    return shmstore__defaults;
}

/* The options an open was given: the defaults for NULL. */
static const struct shmstore_options *shmstore__options(const struct shmstore_options *opts)
{
    return opts != NULL ? opts : &shmstore__defaults;
}

const struct shmstore_header *shmstore_header_of(const struct shmstore_object *obj)
{
    return (const struct shmstore_header *)(const void *)obj->base;
}

const struct shmstore_region_control *
shmstore_region_control_of(const struct shmstore_object *obj)
{
    return (const struct shmstore_region_control *)(const void *)(obj->base +
                                                                   SHMSTORE_REGION_CONTROL_OFFSET);
}

static int shmstore__refuse(struct shmstore_object *obj, int code, const char *detail,
                            uint64_t value)
{
    obj->detail = detail;
    obj->detail_value = value;
    return code;
}

static int shmstore__system(struct shmstore_object *obj, const char *call, int err)
{
    obj->sys_call = call;
    obj->sys_errno = err;
    obj->detail = call;
    obj->detail_value = (uint64_t)(unsigned)err;
    errno = err;
    return SHMSTORE_ESYSTEM;
}

int shmstore_close(struct shmstore_object *obj)
{
    int rc = SHMSTORE_OK;
    if (obj->base != NULL && shmdt(obj->base) != 0)
        rc = shmstore__system(obj, "shmdt", errno);
    obj->base = NULL;
    obj->validated = 0;
    return rc;
}

/* Milliseconds on CLOCK_MONOTONIC, which setting the time of day does not
 * move: what every timeout is measured on. */
static uint64_t shmstore__now_ms(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        return 0;
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Back off in a retry loop: spin a little, then yield the processor. */
static void shmstore__backoff(unsigned round)
{
    if (round < 16) {
        for (volatile unsigned i = 0; i < (1u << round) && i < 64u; i++) {
        }
    } else {
        sched_yield();
    }
}

/* Whether the thread whose /proc stat file is `path` lives: 1 if the file
 * shows a state other than zombie or dead, or cannot be read for another
 * reason than the thread being gone; 0 if it is a zombie or gone. */
static int shmstore__stat_lives(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return errno != ENOENT && errno != ESRCH;
    char buf[512];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* "pid (comm) S ...": the state follows the last ')'. */
    const char *end = strrchr(buf, ')');
    if (end == NULL || end[1] != ' ')
        return 1;
    return end[2] != 'Z' && end[2] != 'X';
}

/* Whether process `pid` lives: one of its threads (/proc/PID/task/TID) is
 * not a zombie. (A process whose first thread has exited shows as a zombie
 * in /proc/PID/stat while its other threads run.) */
static int shmstore__alive(pid_t pid)
{
    if (pid <= 0)
        return 0;
    char path[96];
    snprintf(path, sizeof path, "/proc/%ld/task", (long)pid);
    DIR *tasks = opendir(path);
    if (tasks == NULL) {
        if (errno == ENOENT || errno == ESRCH)
            return 0;
        snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
        return shmstore__stat_lives(path);
    }
    int alive = 0;
    const struct dirent *task;
    while (!alive && (task = readdir(tasks)) != NULL) {
        if (task->d_name[0] < '0' || task->d_name[0] > '9' ||
            strlen(task->d_name) > 20)
            continue;
        snprintf(path, sizeof path, "/proc/%ld/task/%.20s/stat", (long)pid, task->d_name);
        alive = shmstore__stat_lives(path);
    }
    closedir(tasks);
    return alive;
}

/* The start time of process `pid` (field 22 of /proc/PID/stat, in clock
 * ticks since boot) into `*start`: 1 if it could be read, 0 if not. */
static int shmstore__start_time(pid_t pid, uint64_t *start)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    char buf[1024];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* "pid (comm) S ppid ...": field 3 follows the last ')'; skip to 22. */
    const char *p = strrchr(buf, ')');
    if (p == NULL)
        return 0;
    for (int field = 2; field < 22; field++) {
        p = strchr(p + 1, ' ');
        if (p == NULL)
            return 0;
    }
    uint64_t v = 0;
    int digits = 0;
    for (p++; *p >= '0' && *p <= '9' && digits < 20; p++, digits++)
        v = v * 10 + (uint64_t)(*p - '0');
    if (digits == 0)
        return 0;
    *start = v;
    return 1;
}

/* Whether the process `pid` that started at `start` (its bits under
 * `mask`; 0 meaning unknown) lives: FORMAT.md's judgement of a creator the
 * header names, and of the process a `life` word names. A live process
 * with that pid but another start time took over the pid of a dead one.
 * Where /proc does not give the start time, the pid alone decides. */
static int shmstore__same_process_alive(pid_t pid, uint64_t start, uint64_t mask)
{
    if (!shmstore__alive(pid))
        return 0;
    uint64_t now;
    return start == 0 || !shmstore__start_time(pid, &now) || (now & mask) == start;
}

/* Whether the user database puts user `uid` in group `gid`, as its primary
 * group or a supplementary one. It calls getpwuid and getgrgid, which are
 * not thread-safe. */
static int shmstore__user_in_group(uid_t uid, gid_t gid)
{
    const struct passwd *pw = getpwuid(uid);
    if (pw == NULL || pw->pw_name == NULL)
        return 0;
    if (pw->pw_gid == gid)
        return 1;
    char user[256];
    size_t n = strlen(pw->pw_name);
    if (n >= sizeof user)
        return 0;
    memcpy(user, pw->pw_name, n + 1);
    const struct group *gr = getgrgid(gid);
    if (gr == NULL || gr->gr_mem == NULL)
        return 0;
    for (char *const *m = gr->gr_mem; *m != NULL; m++)
        if (strcmp(*m, user) == 0)
            return 1;
    return 0;
}

/* Whether user `uid`, the owner or the creator of the segment `ds`
 * describes, is trusted by `opts`: this process's effective user, root,
 * the options' `user` (with trust_user), or (with trust_group) a member of
 * their `group` in a segment of that group, the creator counting as one
 * when the kernel recorded the group as its group (cgid). */
static int shmstore__trusted_user(uid_t uid, const struct shmid_ds *ds,
                                  const struct shmstore_options *opts)
{
    if (uid == geteuid() || uid == 0)
        return 1;
    if (opts->trust_user && uid == opts->user)
        return 1;
    if (opts->trust_group && ds->shm_perm.gid == opts->group &&
        ((uid == ds->shm_perm.cuid && ds->shm_perm.cgid == opts->group) ||
         shmstore__user_in_group(uid, opts->group)))
        return 1;
    return 0;
}

/* Whether the segment `ds` describes is trusted by `opts`: its owner and
 * its creator are (or any owner, with allow_foreign_owner). */
static int shmstore__trusted(const struct shmid_ds *ds, const struct shmstore_options *opts)
{
    return opts->allow_foreign_owner || (shmstore__trusted_user(ds->shm_perm.uid, ds, opts) &&
                                         shmstore__trusted_user(ds->shm_perm.cuid, ds, opts));
}

/* SHMSTORE_EFOREIGN for the segment `ds` describes, which `opts` do not
 * trust, its owner, creator and group kept in `obj`. */
static int shmstore__foreign(struct shmstore_object *obj, const struct shmid_ds *ds,
                             const struct shmstore_options *opts)
{
    obj->uid = ds->shm_perm.uid;
    obj->cuid = ds->shm_perm.cuid;
    obj->gid = ds->shm_perm.gid;
    int owner = shmstore__trusted_user(ds->shm_perm.uid, ds, opts);
    return shmstore__refuse(obj, SHMSTORE_EFOREIGN,
                            owner ? "the segment was created by another user"
                                  : "the segment is owned by another user",
                            owner ? (uint64_t)ds->shm_perm.cuid : (uint64_t)ds->shm_perm.uid);
}

/* Internal: the segment attached is not the one looked up (it was removed
 * meanwhile, its key now IPC_PRIVATE) or is gone: look the key up again. */
enum { SHMSTORE__GONE = -1 };

/* Attach segment `id` read-only, found at `key` (IPC_PRIVATE: by id), and
 * learn its size and owners from IPC_STAT made after shmat: the attachment
 * keeps the id from naming another segment, so what is judged is what is
 * read. With `trust` (not NULL), a segment of an owner or creator it does
 * not trust is refused (SHMSTORE_EFOREIGN), before shmat and again after
 * it. Returns SHMSTORE__GONE for a segment gone meanwhile, or found at
 * `key` but no longer there. */
static int shmstore__attach(int id, key_t key, const struct shmstore_options *trust,
                            struct shmstore_object *out)
{
    memset(out, 0, sizeof *out);
    out->id = id;
    out->key = key;
    struct shmid_ds ds;
    if (shmctl(id, IPC_STAT, &ds) != 0) {
        int err = errno;
        if (err == EINVAL || err == EIDRM) {
            out->sys_call = "shmctl(IPC_STAT)";
            out->sys_errno = err;
            return SHMSTORE__GONE;
        }
        return shmstore__system(out, "shmctl(IPC_STAT)", err);
    }
    if (trust != NULL && !shmstore__trusted(&ds, trust))
        return shmstore__foreign(out, &ds, trust);
    void *p = shmat(id, NULL, SHM_RDONLY);
    if (p == (void *)-1) {
        int err = errno;
        if (err == EINVAL || err == EIDRM) {
            out->sys_call = "shmat";
            out->sys_errno = err;
            return SHMSTORE__GONE;
        }
        return shmstore__system(out, "shmat", err);
    }
    out->base = p;
    int rc = SHMSTORE_OK;
    if (shmctl(id, IPC_STAT, &ds) != 0)
        rc = shmstore__system(out, "shmctl(IPC_STAT)", errno);
    else if (key != IPC_PRIVATE && SHMSTORE_IPC_PERM_KEY(ds.shm_perm) != key)
        rc = SHMSTORE__GONE;
    else if (trust != NULL && !shmstore__trusted(&ds, trust))
        rc = shmstore__foreign(out, &ds, trust);
    if (rc != SHMSTORE_OK) {
        shmdt(p);
        out->base = NULL;
        return rc;
    }
    out->size = (size_t)ds.shm_segsz;
    out->cpid = ds.shm_cpid;
    out->ctime = ds.shm_ctime;
    out->uid = ds.shm_perm.uid;
    out->cuid = ds.shm_perm.cuid;
    out->gid = ds.shm_perm.gid;
    return SHMSTORE_OK;
}

int shmstore_attach_id(int id, const struct shmstore_options *opts, struct shmstore_object *out)
{
    if (id < 0) {
        memset(out, 0, sizeof *out);
        out->id = id;
        return shmstore__refuse(out, SHMSTORE_EINVAL, "negative segment id", 0);
    }
    int rc = shmstore__attach(id, IPC_PRIVATE, shmstore__options(opts), out);
    if (rc == SHMSTORE__GONE)
        return shmstore__refuse(out, SHMSTORE_ENOTFOUND, "no segment has this id", (uint64_t)id);
    return rc;
}

/* How many times a lookup of a key goes round when the segment found there
 * is removed (and another made) before it is attached. */
enum { SHMSTORE__KEY_ROUNDS = 16 };

/* Attach the segment at `key` read-only (`trust` as shmstore__attach):
 * SHMSTORE_ENOTFOUND if there is none. */
static int shmstore__attach_key(key_t key, const struct shmstore_options *trust,
                                struct shmstore_object *out)
{
    for (unsigned round = 0; round < SHMSTORE__KEY_ROUNDS; round++) {
        int id = shmget(key, 0, 0);
        if (id < 0) {
            int err = errno;
            memset(out, 0, sizeof *out);
            out->id = -1;
            out->key = key;
            if (err == ENOENT) {
                out->sys_call = "shmget";
                out->sys_errno = err;
                return shmstore__refuse(out, SHMSTORE_ENOTFOUND, "no segment at the key",
                                        (uint64_t)(uint32_t)key);
            }
            return shmstore__system(out, "shmget", err);
        }
        int rc = shmstore__attach(id, key, trust, out);
        if (rc != SHMSTORE__GONE)
            return rc;
    }
    return shmstore__refuse(out, SHMSTORE_ENOTFOUND,
                            "the segment at the key was removed while being attached, again and "
                            "again",
                            (uint64_t)(uint32_t)key);
}

int shmstore_wait_ready(struct shmstore_object *obj, unsigned timeout_ms)
{
    if (obj->base == NULL)
        return shmstore__refuse(obj, SHMSTORE_EINVAL, "not attached", 0);
    if (obj->size < SHMSTORE_HEADER_SIZE)
        return SHMSTORE_OK;
    const struct shmstore_header *h = shmstore_header_of(obj);
    uint64_t start = shmstore__now_ms();
    for (;;) {
        uint32_t state = atomic_load_explicit(&h->state, memory_order_acquire);
        uint64_t magic = atomic_load_explicit(&h->magic, memory_order_relaxed);
        if (state == SHMSTORE_STATE_READY)
            return SHMSTORE_OK;
        if (state > SHMSTORE_STATE_INITIALIZING || (magic != 0 && magic != SHMSTORE_MAGIC))
            return SHMSTORE_OK;
        int named = atomic_load_explicit(&h->magic, memory_order_acquire) == SHMSTORE_MAGIC &&
                    atomic_load_explicit(&h->creator_pid, memory_order_relaxed) == obj->cpid;
        uint64_t creator_start =
            named ? atomic_load_explicit(&h->creator_start, memory_order_relaxed) : 0;
        int alive = creator_start != 0
                        ? shmstore__same_process_alive(obj->cpid, creator_start, UINT64_MAX)
                        : shmstore__alive(obj->cpid);
        if (!alive)
            return SHMSTORE_OK;
        if (shmstore__now_ms() - start >= timeout_ms)
            return shmstore__refuse(obj, SHMSTORE_ENOTREADY,
                                    "the creator did not finish in time; its pid",
                                    (uint64_t)obj->cpid);
        poll(NULL, 0, 1);
    }
}

static int shmstore__is_pow2(uint64_t x) { return x != 0 && (x & (x - 1)) == 0; }

int shmstore_validate(struct shmstore_object *obj)
{
    obj->validated = 0;
    if (obj->base == NULL)
        return shmstore__refuse(obj, SHMSTORE_EINVAL, "not attached", 0);
    if (obj->size < SHMSTORE_HEADER_SIZE)
        return shmstore__refuse(obj, SHMSTORE_ENOTSHMSTORE,
                                "the segment is smaller than a header (512 bytes)", obj->size);
    if (((uintptr_t)obj->base & 63u) != 0)
        return shmstore__refuse(obj, SHMSTORE_ECORRUPT, "the attachment is not 64-byte aligned",
                                (uint64_t)(uintptr_t)obj->base);
    const struct shmstore_header *h = shmstore_header_of(obj);

    uint64_t magic = atomic_load_explicit(&h->magic, memory_order_acquire);
    if (magic != SHMSTORE_MAGIC)
        return shmstore__refuse(obj, SHMSTORE_ENOTSHMSTORE, "the magic is not shmstore's", magic);
    uint32_t state = atomic_load_explicit(&h->state, memory_order_acquire);
    if (state != SHMSTORE_STATE_READY)
        return shmstore__refuse(obj, SHMSTORE_ENOTREADY, "state is not READY", state);

    uint32_t version = atomic_load_explicit(&h->format_version, memory_order_relaxed);
    if (version != SHMSTORE_FORMAT_VERSION)
        return shmstore__refuse(obj, SHMSTORE_EFORMAT,
                                "format version is not " SHMSTORE__STRING(SHMSTORE_FORMAT_VERSION),
                                version);
    uint32_t kind = atomic_load_explicit(&h->kind, memory_order_relaxed);
    if (kind != SHMSTORE_KIND_CELL && kind != SHMSTORE_KIND_REGION)
        return shmstore__refuse(obj, SHMSTORE_ECORRUPT, "unknown kind", kind);
    uint32_t header_size = atomic_load_explicit(&h->header_size, memory_order_relaxed);
    if (header_size != SHMSTORE_HEADER_SIZE)
        return shmstore__refuse(obj, SHMSTORE_ECORRUPT, "header size is not 512", header_size);

    uint32_t arch = atomic_load_explicit(&h->abi_arch, memory_order_relaxed);
    if (arch != SHMSTORE_ABI_ARCH)
        return shmstore__refuse(obj, SHMSTORE_EABI, "made on another architecture", arch);
    uint32_t width = atomic_load_explicit(&h->abi_pointer_width, memory_order_relaxed);
    if (width != SHMSTORE_ABI_POINTER_WIDTH)
        return shmstore__refuse(obj, SHMSTORE_EABI, "made with another pointer width", width);
    uint32_t libc = atomic_load_explicit(&h->abi_libc, memory_order_relaxed);
    if (libc != SHMSTORE_ABI_LIBC)
        return shmstore__refuse(obj, SHMSTORE_EABI, "made with another C library", libc);
    uint32_t mutex_size = atomic_load_explicit(&h->abi_mutex_size, memory_order_relaxed);
    if (mutex_size != SHMSTORE_ABI_MUTEX_SIZE)
        return shmstore__refuse(obj, SHMSTORE_EABI, "made with another pthread_mutex_t size",
                                mutex_size);

    uint32_t value_size = atomic_load_explicit(&h->value_size, memory_order_relaxed);
    uint32_t align = atomic_load_explicit(&h->value_align, memory_order_relaxed);
    uint32_t schema = atomic_load_explicit(&h->schema_version, memory_order_relaxed);
    uint64_t type_hash = atomic_load_explicit(&h->type_hash, memory_order_relaxed);
    uint64_t type_extra = atomic_load_explicit(&h->type_extra, memory_order_relaxed);
    uint32_t type_name_len = atomic_load_explicit(&h->type_name_len, memory_order_relaxed);
    if (type_name_len > SHMSTORE_TYPE_NAME_MAX)
        return shmstore__refuse(obj, SHMSTORE_ECORRUPT, "type name longer than 128 bytes",
                                type_name_len);
    uint32_t name_len = atomic_load_explicit(&h->name_len, memory_order_relaxed);
    if (name_len > SHMSTORE_NAME_MAX)
        return shmstore__refuse(obj, SHMSTORE_ECORRUPT, "name longer than 128 bytes", name_len);
    uint32_t schema_len = atomic_load_explicit(&h->schema_len, memory_order_relaxed);
    if (schema_len > SHMSTORE_SCHEMA_MAX)
        return shmstore__refuse(obj, SHMSTORE_ECORRUPT, "schema longer than 16384 bytes",
                                schema_len);
    uint64_t schema_hash = atomic_load_explicit(&h->schema_hash, memory_order_relaxed);
    if (!shmstore__is_pow2(align) || align > SHMSTORE_MAX_ALIGN)
        return shmstore__refuse(obj, SHMSTORE_ECORRUPT,
                                "value alignment is not a power of two up to 4096", align);

    uint32_t count = atomic_load_explicit(&h->slot_count, memory_order_relaxed);
    if (count < SHMSTORE_MIN_SLOTS || count > SHMSTORE_MAX_SLOTS)
        return shmstore__refuse(obj, SHMSTORE_ECORRUPT, "slot count is not 2 to 64", count);
    if (kind == SHMSTORE_KIND_CELL && !shmstore__is_pow2(count))
        return shmstore__refuse(obj, SHMSTORE_ECORRUPT, "a cell's slot count is not a power of two",
                                count);

    uint64_t data_offset = atomic_load_explicit(&h->data_offset, memory_order_relaxed);
    uint64_t stride = atomic_load_explicit(&h->slot_stride, memory_order_relaxed);
    uint64_t used_len = atomic_load_explicit(&h->used_len, memory_order_relaxed);
    uint64_t word_align = align > 8 ? align : 8;
    if (kind == SHMSTORE_KIND_CELL) {
        if (data_offset < (uint64_t)SHMSTORE_CELL_SCHEMA_OFFSET + schema_len ||
            data_offset % word_align != 0)
            return shmstore__refuse(obj, SHMSTORE_ECORRUPT,
                                    "a cell's data offset is below the header and schema or "
                                    "misaligned",
                                    data_offset);
        if (stride == 0 || stride % 8 != 0 || stride < value_size)
            return shmstore__refuse(obj, SHMSTORE_ECORRUPT,
                                    "slot stride is not a multiple of 8 holding the value", stride);
    } else {
        /* Buffers start on cache lines and at the root's alignment. */
        uint64_t unit = align > SHMSTORE_REGION_BUFFER_ALIGN ? align : SHMSTORE_REGION_BUFFER_ALIGN;
        if (data_offset < (uint64_t)SHMSTORE_REGION_SCHEMA_OFFSET + schema_len ||
            data_offset % unit != 0)
            return shmstore__refuse(obj, SHMSTORE_ECORRUPT,
                                    "a region's data offset is below its control block and schema "
                                    "or not a multiple of max(64, value_align)",
                                    data_offset);
        if (stride == 0 || stride % unit != 0 || stride < value_size)
            return shmstore__refuse(obj, SHMSTORE_ECORRUPT,
                                    "a region's buffer stride is not a multiple of "
                                    "max(64, value_align) holding the value",
                                    stride);
    }
    if (stride > (UINT64_MAX - data_offset) / count)
        return shmstore__refuse(obj, SHMSTORE_ECORRUPT, "the slots overflow", stride);
    uint64_t needed = data_offset + stride * count;
    if (used_len != needed)
        return shmstore__refuse(obj, SHMSTORE_ECORRUPT,
                                "used_len is not data_offset + slot_count * slot_stride", used_len);
    if (needed > (uint64_t)obj->size)
        return shmstore__refuse(obj, SHMSTORE_ECORRUPT, "the slots do not fit in the segment",
                                needed);

    for (uint32_t i = 0; i < type_name_len; i++)
        obj->type_name[i] =
            (char)atomic_load_explicit(&h->type_name[i], memory_order_relaxed);
    obj->type_name[type_name_len] = '\0';
    for (uint32_t i = 0; i < name_len; i++)
        obj->name[i] = (char)atomic_load_explicit(&h->name[i], memory_order_relaxed);
    obj->name[name_len] = '\0';
    obj->kind = kind;
    obj->value_size = value_size;
    obj->value_align = align;
    obj->schema_version = schema;
    obj->type_hash = type_hash;
    obj->type_extra = type_extra;
    obj->type_name_len = type_name_len;
    obj->name_len = name_len;
    obj->schema_len = schema_len;
    obj->schema_hash = schema_hash;
    obj->slot_count = count;
    obj->data_offset = data_offset;
    obj->slot_stride = stride;
    obj->used_len = used_len;
    obj->validated = 1;
    obj->detail = NULL;
    obj->detail_value = 0;
    return SHMSTORE_OK;
}

/* Internal: the object attached is removed, or being removed by a process
 * that died before it finished (FORMAT.md, "Removal"). */
enum { SHMSTORE__REMOVED = -2 };

/* Whether the kernel says the attached segment was removed: 1 if IPC_STAT
 * shows SHM_DEST (IPC_RMID was called: it goes at its last detach) or fails
 * with EINVAL or EIDRM (gone), 0 if not, -1 if it fails otherwise (`obj`'s
 * sys_call and sys_errno say why). */
static int shmstore__kernel_removed(struct shmstore_object *obj)
{
    struct shmid_ds ds;
    if (shmctl(obj->id, IPC_STAT, &ds) != 0) {
        int err = errno;
        if (err == EINVAL || err == EIDRM)
            return 1;
        shmstore__system(obj, "shmctl(IPC_STAT)", err);
        return -1;
    }
    return (ds.shm_perm.mode & SHMSTORE__SHM_DEST) != 0;
}

/* Whether the validated object may be used, by its `life` word (FORMAT.md,
 * "Removal", and the end of "Opening"): SHMSTORE_OK if it is in use, or
 * marked by a collector that died (the mark is ignored: a reader writes
 * nothing); SHMSTORE__REMOVED if it is marked REMOVING and its segment is
 * marked SHM_DEST or gone, or its remover died (shmstore finishes such a
 * removal; a reader only treats the object as removed); while a live
 * process collects or removes it, waits, up to `deadline_ms` (of
 * shmstore__now_ms), then SHMSTORE_EBUSY with that process's pid. With
 * `collector_only` (an open by id, which reaches removed objects too), only
 * a live collector's mark is waited for, and a removal does not matter. */
static int shmstore__admit(struct shmstore_object *obj, int collector_only, uint64_t deadline_ms)
{
    const struct shmstore_header *h = shmstore_header_of(obj);
    for (;;) {
        uint64_t word = atomic_load_explicit(&h->life, memory_order_acquire);
        uint64_t state = word & SHMSTORE_LIFE_STATE_MASK;
        if (state == SHMSTORE_LIFE_LIVE || (collector_only && state >= SHMSTORE_LIFE_REMOVING))
            return SHMSTORE_OK;
        int alive = shmstore__same_process_alive(SHMSTORE_LIFE_PID(word),
                                                 SHMSTORE_LIFE_START(word),
                                                 SHMSTORE_LIFE_START_MASK);
        if (state >= SHMSTORE_LIFE_REMOVING) {
            int gone = shmstore__kernel_removed(obj);
            if (gone < 0)
                return SHMSTORE_ESYSTEM;
            if (gone || !alive)
                return SHMSTORE__REMOVED;
        } else if (!alive) {
            return SHMSTORE_OK;
        }
        if (shmstore__now_ms() >= deadline_ms)
            return shmstore__refuse(obj, SHMSTORE_EBUSY,
                                    state >= SHMSTORE_LIFE_REMOVING
                                        ? "the object is being removed by the process"
                                        : "the object is being collected by the process",
                                    (uint64_t)SHMSTORE_LIFE_PID(word));
        poll(NULL, 0, 1);
    }
}

/* How an open judges the `life` word once the object is validated. */
enum {
    SHMSTORE__ADMIT_BY_ID = 0,  /* wait out a live collector only */
    SHMSTORE__ADMIT_BY_KEY = 1, /* also refuse an object being removed */
};

/* After a successful attach: wait for the creator, validate, and judge the
 * `life` word as `admit` says; the waits end at `deadline_ms`. Detaches on
 * failure. */
static int shmstore__finish_open(struct shmstore_object *obj, int admit, uint64_t deadline_ms)
{
    uint64_t now = shmstore__now_ms();
    int rc = shmstore_wait_ready(obj, deadline_ms > now ? (unsigned)(deadline_ms - now) : 0);
    if (rc == SHMSTORE_OK)
        rc = shmstore_validate(obj);
    if (rc == SHMSTORE_OK)
        rc = shmstore__admit(obj, admit == SHMSTORE__ADMIT_BY_ID, deadline_ms);
    if (rc != SHMSTORE_OK) {
        const char *detail = obj->detail;
        uint64_t value = obj->detail_value;
        shmstore_close(obj);
        obj->detail = detail;
        obj->detail_value = value;
    }
    return rc;
}

int shmstore_open_id(int id, const struct shmstore_options *opts, struct shmstore_object *out)
{
    opts = shmstore__options(opts);
    int rc = shmstore_attach_id(id, opts, out);
    if (rc != SHMSTORE_OK)
        return rc;
    return shmstore__finish_open(out, SHMSTORE__ADMIT_BY_ID,
                                 shmstore__now_ms() + opts->init_timeout_ms);
}

int shmstore_open_key(key_t key, const struct shmstore_options *opts,
                      struct shmstore_object *out)
{
    opts = shmstore__options(opts);
    if (key == IPC_PRIVATE) {
        memset(out, 0, sizeof *out);
        out->id = -1;
        return shmstore__refuse(out, SHMSTORE_EINVAL, "IPC_PRIVATE names no existing segment", 0);
    }
    int rc = shmstore__attach_key(key, opts, out);
    if (rc != SHMSTORE_OK)
        return rc;
    rc = shmstore__finish_open(out, SHMSTORE__ADMIT_BY_KEY,
                               shmstore__now_ms() + opts->init_timeout_ms);
    if (rc == SHMSTORE__REMOVED)
        return shmstore__refuse(out, SHMSTORE_ENOTFOUND, "the object at the key was removed",
                                (uint64_t)(uint32_t)key);
    return rc;
}

/* ------------------------------------------------------------------------
 * Names (FORMAT.md, "Names")
 * --------------------------------------------------------------------- */

int shmstore_name_is_valid(const char *name, size_t len)
{
    if (name == NULL || len == 0 || len > SHMSTORE_NAME_MAX)
        return 0;
    const unsigned char *s = (const unsigned char *)name;
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        size_t n;
        unsigned char lo = 0x80, hi = 0xbf;
        if (c < 0x80) {
            if (c < 0x20 || c == 0x7f)
                return 0;
            i++;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
            if (c == 0xc2)
                lo = 0xa0; /* U+0080-U+009F are control characters */
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            if (c == 0xe0)
                lo = 0xa0;
            else if (c == 0xed)
                hi = 0x9f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            if (c == 0xf0)
                lo = 0x90;
            else if (c == 0xf4)
                hi = 0x8f;
        } else {
            return 0;
        }
        if (len - i - 1 < n)
            return 0;
        if (s[i + 1] < lo || s[i + 1] > hi)
            return 0;
        for (size_t k = 2; k <= n; k++)
            if (s[i + k] < 0x80 || s[i + k] > 0xbf)
                return 0;
        i += n + 1;
    }
    return 1;
}

/* A name's key: `h` with its top bit set, as a (negative) key_t, h - 2^32,
 * computed without an out-of-range conversion. */
static key_t shmstore__name_key_t(uint32_t h)
{
    h |= UINT32_C(0x80000000);
    return (key_t)(-(int32_t)(~h) - 1);
}

key_t shmstore_name_key(const char *name, size_t len, unsigned i)
{
    static const char prefix[] = "shmstore:";
    uint32_t h = UINT32_C(0x811c9dc5);
    h = (h ^ (unsigned char)i) * UINT32_C(0x01000193);
    for (size_t k = 0; k < sizeof prefix - 1; k++)
        h = (h ^ (unsigned char)prefix[k]) * UINT32_C(0x01000193);
    for (size_t k = 0; k < len; k++)
        h = (h ^ (unsigned char)name[k]) * UINT32_C(0x01000193);
    return shmstore__name_key_t(h);
}

/* What one key of a name holds (FORMAT.md, "Names": "What counts"). */
enum shmstore__seen {
    /* No segment. */
    SHMSTORE__SEEN_NOTHING,
    /* Anything that does not count: another program's segment, one with no
     * magic yet (a creator at its first instructions is no claim), another
     * name's, a plain key's object, a claim whose creator died, an
     * untrusted segment that does not hold the name, or one this process
     * may not attach. */
    SHMSTORE__SEEN_OTHER,
    /* A segment of an untrusted owner or creator that holds the name. */
    SHMSTORE__SEEN_UNTRUSTED,
    /* A trusted claim of the name (not READY) whose creator lives. */
    SHMSTORE__SEEN_CLAIM,
    /* The name's object: trusted, the magic, the name, READY; attached. */
    SHMSTORE__SEEN_OBJECT,
};

/* Whether the attached segment holds a claim of the name (its magic, loaded
 * with acquire ordering, then the name, which the creator stored before
 * it). */
static int shmstore__claims(const struct shmstore_object *obj, const char *name,
                            size_t len)
{
    if (obj->size < SHMSTORE_HEADER_SIZE || ((uintptr_t)obj->base & 63u) != 0)
        return 0;
    const struct shmstore_header *h = shmstore_header_of(obj);
    if (atomic_load_explicit(&h->magic, memory_order_acquire) != SHMSTORE_MAGIC)
        return 0;
    if (atomic_load_explicit(&h->name_len, memory_order_relaxed) != len)
        return 0;
    for (size_t k = 0; k < len; k++)
        if (atomic_load_explicit(&h->name[k], memory_order_relaxed) != (unsigned char)name[k])
            return 0;
    return 1;
}

/* Look at `key` for the name: what it holds, trusting whom `opts` trust.
 * The object is left attached in `out`; an untrusted segment holding the
 * name leaves its owner, creator and group in `out` (uid, cuid, gid, id); a
 * live claim its creator's pid in `*claimant`. A failure that is none of
 * these is a negative error code's opposite: -code. */
static int shmstore__look(key_t key, const char *name, size_t len,
                          const struct shmstore_options *opts, struct shmstore_object *out,
                          pid_t *claimant)
{
    int rc = shmstore__attach_key(key, opts, out);
    if (rc == SHMSTORE_ENOTFOUND)
        return SHMSTORE__SEEN_NOTHING;
    if (rc == SHMSTORE_EFOREIGN) {
        /* Does it hold the name? Attached read-only whoever owns it, if its
         * mode lets this user: only to say whose it is. */
        struct shmstore_object peek;
        if (shmstore__attach_key(key, NULL, &peek) != SHMSTORE_OK)
            return SHMSTORE__SEEN_OTHER;
        int claims = shmstore__claims(&peek, name, len);
        if (claims) {
            out->id = peek.id;
            out->uid = peek.uid;
            out->cuid = peek.cuid;
            out->gid = peek.gid;
        }
        shmstore_close(&peek);
        return claims ? SHMSTORE__SEEN_UNTRUSTED : SHMSTORE__SEEN_OTHER;
    }
    if (rc == SHMSTORE_ESYSTEM && (out->sys_errno == EACCES || out->sys_errno == EPERM))
        return SHMSTORE__SEEN_OTHER; /* a segment this user may not read */
    if (rc != SHMSTORE_OK)
        return -rc;
    if (!shmstore__claims(out, name, len)) {
        shmstore_close(out);
        return SHMSTORE__SEEN_OTHER;
    }
    const struct shmstore_header *h = shmstore_header_of(out);
    if (atomic_load_explicit(&h->state, memory_order_acquire) == SHMSTORE_STATE_READY)
        return SHMSTORE__SEEN_OBJECT;
    pid_t pid = atomic_load_explicit(&h->creator_pid, memory_order_relaxed);
    uint64_t start = atomic_load_explicit(&h->creator_start, memory_order_relaxed);
    if (shmstore__same_process_alive(pid, start, UINT64_MAX)) {
        shmstore_close(out);
        *claimant = pid;
        return SHMSTORE__SEEN_CLAIM;
    }
    /* Judged dead: it may have finished, and exited, since the state was
     * loaded. */
    if (atomic_load_explicit(&h->state, memory_order_acquire) == SHMSTORE_STATE_READY)
        return SHMSTORE__SEEN_OBJECT;
    shmstore_close(out);
    return SHMSTORE__SEEN_OTHER;
}

/* Clear `out` for an open by name and check `name` (NUL-terminated): its
 * length in `*len`, or SHMSTORE_EINVAL. */
static int shmstore__name_arg(const char *name, size_t *len, struct shmstore_object *out)
{
    memset(out, 0, sizeof *out);
    out->id = -1;
    size_t n = 0;
    while (name != NULL && n <= SHMSTORE_NAME_MAX && name[n] != '\0')
        n++;
    *len = n;
    if (!shmstore_name_is_valid(name, n))
        return shmstore__refuse(out, SHMSTORE_EINVAL,
                                "a name is 1 to 128 bytes of UTF-8 without control characters", n);
    return SHMSTORE_OK;
}

/* Open the object named `name` (`len` bytes, valid) whose keys are `keys`,
 * as shmstore_open_name says. */
static int shmstore__open_named(const char *name, size_t len,
                                const key_t keys[SHMSTORE_NAME_PROBES],
                                const struct shmstore_options *opts, struct shmstore_object *out)
{
    opts = shmstore__options(opts);
    uint64_t deadline = shmstore__now_ms() + opts->init_timeout_ms;
    for (unsigned round = 0;; round++) {
        pid_t claimant = 0;
        struct shmstore_object foreign;
        memset(&foreign, 0, sizeof foreign);
        int foreign_seen = 0, others = 0, removed = 0;
        for (unsigned i = 0; i < SHMSTORE_NAME_PROBES; i++) {
            pid_t pid = 0;
            int seen = shmstore__look(keys[i], name, len, opts, out, &pid);
            if (seen < 0)
                return -seen;
            switch (seen) {
            case SHMSTORE__SEEN_OBJECT: {
                /* At most one object has the name: this one, unless it is
                 * removed (then a live claim at another key may be its
                 * successor). */
                int rc = shmstore__finish_open(out, SHMSTORE__ADMIT_BY_KEY, deadline);
                if (rc != SHMSTORE__REMOVED)
                    return rc;
                removed = 1;
                break;
            }
            case SHMSTORE__SEEN_CLAIM:
                if (claimant == 0)
                    claimant = pid;
                break;
            case SHMSTORE__SEEN_UNTRUSTED:
                if (!foreign_seen)
                    foreign = *out;
                foreign_seen = 1;
                others++;
                break;
            case SHMSTORE__SEEN_OTHER:
                others++;
                break;
            default:
                break;
            }
        }
        memset(out, 0, sizeof *out);
        out->id = -1;
        if (claimant != 0) {
            if (shmstore__now_ms() >= deadline)
                return shmstore__refuse(out, SHMSTORE_ENOTREADY,
                                        "a claim of the name did not become its object in "
                                        "time; the pid of its creator",
                                        (uint64_t)claimant);
            poll(NULL, 0, round < 5 ? 1 : 5);
            continue;
        }
        if (removed)
            return shmstore__refuse(out, SHMSTORE_ENOTFOUND, "the object of the name was removed",
                                    0);
        if (foreign_seen) {
            out->id = foreign.id;
            out->key = foreign.key;
            out->uid = foreign.uid;
            out->cuid = foreign.cuid;
            out->gid = foreign.gid;
            return shmstore__refuse(out, SHMSTORE_EFOREIGN,
                                    "no object of the name, but a segment of another user holds "
                                    "it; the untrusted uid",
                                    (uint64_t)(foreign.uid != geteuid() && foreign.uid != 0
                                                   ? foreign.uid
                                                   : foreign.cuid));
        }
        if (others == SHMSTORE_NAME_PROBES)
            return shmstore__refuse(out, SHMSTORE_ENAMETAKEN, "every key of the name is taken", 0);
        return shmstore__refuse(out, SHMSTORE_ENOTFOUND, "no object has this name", 0);
    }
}

int shmstore_open_name(const char *name, const struct shmstore_options *opts,
                       struct shmstore_object *out)
{
    size_t len;
    int rc = shmstore__name_arg(name, &len, out);
    if (rc != SHMSTORE_OK)
        return rc;
    key_t keys[SHMSTORE_NAME_PROBES];
    for (unsigned i = 0; i < SHMSTORE_NAME_PROBES; i++)
        keys[i] = shmstore_name_key(name, len, i);
    return shmstore__open_named(name, len, keys, opts, out);
}

/* ------------------------------------------------------------------------
 * Names in a private namespace (FORMAT.md, "Names in a private namespace")
 * --------------------------------------------------------------------- */

/* SipHash-2-4, fed one byte at a time. */
struct shmstore__sip {
    uint64_t v[4];
    uint64_t word;  /* the bytes of the 8-byte word being gathered */
    uint64_t count; /* bytes fed so far */
};

static uint64_t shmstore__rotl64(uint64_t x, unsigned b)
{
    return (x << b) | (x >> (64u - b)); /* b is 13, 16, 17, 21 or 32 */
}

static void shmstore__sip_round(uint64_t v[4])
{
    v[0] += v[1];
    v[1] = shmstore__rotl64(v[1], 13) ^ v[0];
    v[0] = shmstore__rotl64(v[0], 32);
    v[2] += v[3];
    v[3] = shmstore__rotl64(v[3], 16) ^ v[2];
    v[0] += v[3];
    v[3] = shmstore__rotl64(v[3], 21) ^ v[0];
    v[2] += v[1];
    v[1] = shmstore__rotl64(v[1], 17) ^ v[2];
    v[2] = shmstore__rotl64(v[2], 32);
}

/* Two rounds on one message word. */
static void shmstore__sip_compress(struct shmstore__sip *s, uint64_t m)
{
    s->v[3] ^= m;
    shmstore__sip_round(s->v);
    shmstore__sip_round(s->v);
    s->v[0] ^= m;
}

/* The little-endian 64-bit word at `p`. */
static uint64_t shmstore__le64(const uint8_t *p)
{
    uint64_t w = 0;
    for (unsigned k = 0; k < 8; k++)
        w |= (uint64_t)p[k] << (8u * k);
    return w;
}

static void shmstore__sip_init(struct shmstore__sip *s, const uint8_t key[16])
{
    uint64_t k0 = shmstore__le64(key), k1 = shmstore__le64(key + 8);
    s->v[0] = k0 ^ UINT64_C(0x736f6d6570736575);
    s->v[1] = k1 ^ UINT64_C(0x646f72616e646f6d);
    s->v[2] = k0 ^ UINT64_C(0x6c7967656e657261);
    s->v[3] = k1 ^ UINT64_C(0x7465646279746573);
    s->word = 0;
    s->count = 0;
}

static void shmstore__sip_byte(struct shmstore__sip *s, uint8_t b)
{
    s->word |= (uint64_t)b << (8u * (unsigned)(s->count & 7u));
    s->count++;
    if ((s->count & 7u) == 0) {
        shmstore__sip_compress(s, s->word);
        s->word = 0;
    }
}

static uint64_t shmstore__sip_final(struct shmstore__sip *s)
{
    /* The last word: the bytes left, and the length's low byte on top. */
    shmstore__sip_compress(s, s->word | ((s->count & 0xffu) << 56));
    s->v[2] ^= 0xffu;
    for (unsigned r = 0; r < 4; r++)
        shmstore__sip_round(s->v);
    return s->v[0] ^ s->v[1] ^ s->v[2] ^ s->v[3];
}

uint64_t shmstore_siphash24(const uint8_t key[SHMSTORE_SECRET_LEN], const void *data,
                            size_t len)
{
    struct shmstore__sip s;
    shmstore__sip_init(&s, key);
    const uint8_t *p = (const uint8_t *)data;
    for (size_t k = 0; k < len; k++)
        shmstore__sip_byte(&s, p[k]);
    return shmstore__sip_final(&s);
}

key_t shmstore_name_key_in(const uint8_t secret[SHMSTORE_SECRET_LEN],
                           const char *name, size_t len, unsigned i)
{
    static const char prefix[] = "shmstore:";
    struct shmstore__sip s;
    shmstore__sip_init(&s, secret);
    shmstore__sip_byte(&s, (uint8_t)i);
    for (size_t k = 0; k < sizeof prefix - 1; k++)
        shmstore__sip_byte(&s, (uint8_t)prefix[k]);
    for (size_t k = 0; k < len; k++)
        shmstore__sip_byte(&s, (uint8_t)name[k]);
    return shmstore__name_key_t((uint32_t)(shmstore__sip_final(&s) & UINT32_C(0xffffffff)));
}

/* Whether a namespace's directory or secret of user `uid` may be used:
 * this process's effective user's, or root's. */
static int shmstore__namespace_owner(uid_t uid)
{
    return uid == geteuid() || uid == 0;
}

/* A namespace refused because system call `call` failed with `err`. */
static int shmstore__namespace_system(struct shmstore_object *out, int code,
                                      const char *detail, const char *call, int err)
{
    out->sys_call = call;
    out->sys_errno = err;
    errno = err;
    return shmstore__refuse(out, code, detail, (uint64_t)(unsigned)err);
}

int shmstore_namespace_secret(const char *dir, uint8_t secret[SHMSTORE_SECRET_LEN],
                              struct shmstore_object *out)
{
    memset(out, 0, sizeof *out);
    out->id = -1;
    if (dir == NULL || secret == NULL)
        return shmstore__refuse(out, SHMSTORE_EINVAL, "no namespace directory or no secret buffer",
                                0);
    struct stat st;
    if (stat(dir, &st) != 0)
        return shmstore__namespace_system(out, SHMSTORE_ENAMESPACE,
                                          "the namespace's directory cannot be looked at; errno",
                                          "stat", errno);
    if (!S_ISDIR(st.st_mode))
        return shmstore__refuse(out, SHMSTORE_ENAMESPACE,
                                "the namespace's path is not a directory; its mode",
                                (uint64_t)st.st_mode);
    if (!shmstore__namespace_owner(st.st_uid))
        return shmstore__refuse(out, SHMSTORE_ENAMESPACE,
                                "the namespace's directory belongs to another user, neither this "
                                "one nor root; its owner's uid",
                                (uint64_t)st.st_uid);
    if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0)
        return shmstore__refuse(out, SHMSTORE_ENAMESPACE,
                                "its group or other users may write the namespace's directory (and "
                                "so put a secret of theirs there): chmod go-w it; its permission "
                                "bits",
                                (uint64_t)(st.st_mode & 07777));

    size_t dir_len = strlen(dir);
    char *path = malloc(dir_len + sizeof "/" SHMSTORE_SECRET_FILE);
    if (path == NULL)
        return shmstore__system(out, "malloc", ENOMEM);
    memcpy(path, dir, dir_len);
    memcpy(path + dir_len, "/" SHMSTORE_SECRET_FILE, sizeof "/" SHMSTORE_SECRET_FILE);
    /* A FIFO must not block the open; a symbolic link is not followed. */
    int flags = O_RDONLY | O_NOCTTY | O_NONBLOCK | O_NOFOLLOW;
#ifdef O_CLOEXEC
    flags |= O_CLOEXEC;
#endif
    int fd = open(path, flags);
    int err = errno;
    free(path);
    if (fd < 0 && err == ENOENT)
        return shmstore__refuse(out, SHMSTORE_ENOTFOUND,
                                "the namespace has no secret yet (shmstore makes "
                                SHMSTORE_SECRET_FILE " on the first use of a name there), so no "
                                "object is in it",
                                0);
    if (fd < 0)
        return shmstore__namespace_system(out, SHMSTORE_ENAMESPACE,
                                          SHMSTORE_SECRET_FILE " cannot be opened; errno", "open",
                                          err);

    uint8_t buf[SHMSTORE_SECRET_LEN + 1];
    ssize_t got = 0;
    int rc = SHMSTORE_OK;
    if (fstat(fd, &st) != 0) {
        rc = shmstore__namespace_system(out, SHMSTORE_ENAMESPACE,
                                        SHMSTORE_SECRET_FILE " cannot be looked at; errno",
                                        "fstat", errno);
    } else if (!S_ISREG(st.st_mode)) {
        rc = shmstore__refuse(out, SHMSTORE_ENAMESPACE,
                              SHMSTORE_SECRET_FILE " is not a regular file; its mode",
                              (uint64_t)st.st_mode);
    } else if (!shmstore__namespace_owner(st.st_uid)) {
        rc = shmstore__refuse(out, SHMSTORE_ENAMESPACE,
                              SHMSTORE_SECRET_FILE " belongs to another user, neither this one "
                              "nor root; its owner's uid",
                              (uint64_t)st.st_uid);
    } else if ((st.st_mode & (S_IROTH | S_IWOTH | S_IXOTH)) != 0) {
        rc = shmstore__refuse(out, SHMSTORE_ENAMESPACE,
                              "other users may read or use " SHMSTORE_SECRET_FILE
                              ": chmod o-rwx it; its permission bits",
                              (uint64_t)(st.st_mode & 07777));
    } else if (st.st_size != SHMSTORE_SECRET_LEN) {
        rc = shmstore__refuse(out, SHMSTORE_ENAMESPACE,
                              SHMSTORE_SECRET_FILE " is not 16 bytes",
                              (uint64_t)(st.st_size < 0 ? 0 : st.st_size));
    } else {
        /* Up to one byte more than a secret: a file that grew is refused. */
        while ((size_t)got < sizeof buf) {
            ssize_t n = read(fd, buf + got, sizeof buf - (size_t)got);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0) {
                rc = shmstore__namespace_system(out, SHMSTORE_ENAMESPACE,
                                                SHMSTORE_SECRET_FILE " cannot be read; errno",
                                                "read", errno);
                break;
            }
            if (n == 0)
                break;
            got += n;
        }
        if (rc == SHMSTORE_OK && got != SHMSTORE_SECRET_LEN)
            rc = shmstore__refuse(out, SHMSTORE_ENAMESPACE, SHMSTORE_SECRET_FILE " is not 16 bytes",
                                  (uint64_t)got);
    }
    close(fd);
    if (rc == SHMSTORE_OK)
        memcpy(secret, buf, SHMSTORE_SECRET_LEN);
    return rc;
}

int shmstore_open_name_in(const char *dir, const char *name, const struct shmstore_options *opts,
                          struct shmstore_object *out)
{
    size_t len;
    int rc = shmstore__name_arg(name, &len, out);
    if (rc != SHMSTORE_OK)
        return rc;
    uint8_t secret[SHMSTORE_SECRET_LEN];
    rc = shmstore_namespace_secret(dir, secret, out);
    if (rc != SHMSTORE_OK)
        return rc;
    key_t keys[SHMSTORE_NAME_PROBES];
    for (unsigned i = 0; i < SHMSTORE_NAME_PROBES; i++)
        keys[i] = shmstore_name_key_in(secret, name, len, i);
    return shmstore__open_named(name, len, keys, opts, out);
}

/* ------------------------------------------------------------------------
 * Types (FORMAT.md, "Type fingerprint")
 * --------------------------------------------------------------------- */

static uint64_t shmstore__fnv64(uint64_t h, const void *bytes, size_t n)
{
    const unsigned char *p = (const unsigned char *)bytes;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= UINT64_C(0x100000001b3);
    }
    return h;
}

static uint64_t shmstore__fnv64_le(uint64_t h, uint64_t v, size_t n)
{
    unsigned char b[8];
    for (size_t i = 0; i < n; i++)
        b[i] = (unsigned char)(v >> (8 * i));
    return shmstore__fnv64(h, b, n);
}

uint64_t shmstore_fingerprint(uint32_t kind, const char *type_name, size_t name_len,
                              uint32_t size, uint32_t align, uint32_t schema_version,
                              uint64_t extra)
{
    uint64_t h = UINT64_C(0xcbf29ce484222325);
    h = shmstore__fnv64_le(h, kind, 4);
    h = shmstore__fnv64_le(h, (uint64_t)name_len, 8);
    h = shmstore__fnv64(h, type_name, name_len);
    h = shmstore__fnv64_le(h, size, 4);
    h = shmstore__fnv64_le(h, align, 4);
    h = shmstore__fnv64_le(h, schema_version, 4);
    h = shmstore__fnv64_le(h, extra, 8);
    return h;
}

int shmstore_fingerprint_matches(const struct shmstore_object *obj)
{
    if (!obj->validated || obj->type_name_len >= SHMSTORE_TYPE_NAME_MAX - 3)
        return -1;
    return shmstore_fingerprint(obj->kind, obj->type_name, obj->type_name_len, obj->value_size,
                                obj->value_align, obj->schema_version,
                                obj->type_extra) == obj->type_hash;
}

int shmstore_check_type(struct shmstore_object *obj, uint32_t kind, size_t size,
                        size_t align, const char *type_name, uint32_t schema_version)
{
    if (!obj->validated)
        return shmstore__refuse(obj, SHMSTORE_EINVAL, "not a validated object", 0);
    if (obj->kind != kind)
        return shmstore__refuse(obj, SHMSTORE_ETYPE, "another kind", obj->kind);
    if (obj->value_size != size)
        return shmstore__refuse(obj, SHMSTORE_ETYPE, "another value size", obj->value_size);
    if (obj->value_align != align)
        return shmstore__refuse(obj, SHMSTORE_ETYPE, "another value alignment", obj->value_align);
    if (type_name != NULL) {
        if (obj->schema_version != schema_version)
            return shmstore__refuse(obj, SHMSTORE_ETYPE, "another schema version",
                                    obj->schema_version);
        uint64_t want = shmstore_fingerprint(kind, type_name, strlen(type_name), (uint32_t)size,
                                             (uint32_t)align, schema_version, obj->type_extra);
        if (want != obj->type_hash)
            return shmstore__refuse(obj, SHMSTORE_ETYPE, "another type (fingerprint)",
                                    obj->type_hash);
    }
    return SHMSTORE_OK;
}

/* ------------------------------------------------------------------------
 * Reading
 * --------------------------------------------------------------------- */

/* Copy `len` bytes from the 8-byte aligned shared `src` with relaxed 8-byte
 * atomic loads (the last word whole, its tail dropped). */
static void shmstore__load_words(unsigned char *dst, const unsigned char *src, size_t len)
{
    const _Atomic uint64_t *words = (const _Atomic uint64_t *)(const void *)src;
    size_t whole = len / 8, rest = len % 8;
    for (size_t w = 0; w < whole; w++) {
        uint64_t v = atomic_load_explicit(&words[w], memory_order_relaxed);
        memcpy(dst + 8 * w, &v, 8);
    }
    if (rest != 0) {
        uint64_t v = atomic_load_explicit(&words[whole], memory_order_relaxed);
        memcpy(dst + 8 * whole, &v, rest);
    }
}

int shmstore_version(const struct shmstore_object *obj, uint64_t *version)
{
    if (!obj->validated)
        return SHMSTORE_EINVAL;
    if (obj->kind == SHMSTORE_KIND_CELL)
        *version = atomic_load_explicit(&shmstore_header_of(obj)->seq, memory_order_acquire);
    else
        *version = SHMSTORE_CURRENT_VERSION(atomic_load_explicit(
            &shmstore_region_control_of(obj)->current, memory_order_acquire));
    return SHMSTORE_OK;
}

int shmstore_cell_read(struct shmstore_object *obj, void *out, size_t size,
                       uint64_t *version)
{
    if (!obj->validated || out == NULL)
        return shmstore__refuse(obj, SHMSTORE_EINVAL, "not a validated object", 0);
    if (obj->kind != SHMSTORE_KIND_CELL)
        return shmstore__refuse(obj, SHMSTORE_ETYPE, "not a cell", obj->kind);
    if (size != obj->value_size)
        return shmstore__refuse(obj, SHMSTORE_ETYPE, "another value size", obj->value_size);
    const struct shmstore_header *h = shmstore_header_of(obj);
    const uint64_t n = obj->slot_count;
    for (unsigned round = 0;; round++) {
        uint64_t s1 = atomic_load_explicit(&h->seq, memory_order_acquire);
        const unsigned char *slot =
            obj->base + obj->data_offset + (size_t)(s1 & (n - 1)) * obj->slot_stride;
        shmstore__load_words((unsigned char *)out, slot, size);
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&h->writing, memory_order_relaxed) - s1 < n ||
            atomic_load_explicit(&h->seq, memory_order_relaxed) == s1) {
            if (version != NULL)
                *version = s1;
            return SHMSTORE_OK;
        }
        obj->retries++;
        shmstore__backoff(round);
    }
}

size_t shmstore_region_capacity(const struct shmstore_object *obj)
{
    return obj->validated && obj->kind == SHMSTORE_KIND_REGION ? (size_t)obj->slot_stride : 0;
}

int shmstore_region_copy(struct shmstore_object *obj, void *buf, size_t cap,
                         size_t *len, uint64_t *version)
{
    if (!obj->validated || (buf == NULL && cap != 0) || len == NULL)
        return shmstore__refuse(obj, SHMSTORE_EINVAL, "not a validated object", 0);
    if (obj->kind != SHMSTORE_KIND_REGION)
        return shmstore__refuse(obj, SHMSTORE_ETYPE, "not a region", obj->kind);
    const struct shmstore_region_control *rc = shmstore_region_control_of(obj);
    for (unsigned round = 0;; round++) {
        uint64_t current = atomic_load_explicit(&rc->current, memory_order_acquire);
        uint64_t v = SHMSTORE_CURRENT_VERSION(current);
        if (v == 0)
            return SHMSTORE_ENOTHING;
        unsigned b = SHMSTORE_CURRENT_BUFFER(current);
        if (b >= obj->slot_count)
            return shmstore__refuse(obj, SHMSTORE_ECORRUPT, "the current buffer is out of range",
                                    b);
        const struct shmstore_buffer_meta *meta = &rc->buffers[b];
        if (atomic_load_explicit(&meta->version, memory_order_acquire) == v) {
            uint64_t n = atomic_load_explicit(&meta->len, memory_order_relaxed);
            if (n > obj->slot_stride)
                return shmstore__refuse(obj, SHMSTORE_ECORRUPT,
                                        "an archive longer than its buffer", n);
            if (n <= cap)
                shmstore__load_words((unsigned char *)buf,
                                     obj->base + obj->data_offset +
                                         (size_t)b * obj->slot_stride,
                                     (size_t)n);
            atomic_thread_fence(memory_order_acquire);
            if (atomic_load_explicit(&meta->version, memory_order_acquire) == v) {
                /* `n` is version v's length, and the copy (if made) whole. */
                *len = (size_t)n;
                if (n > cap)
                    return SHMSTORE_ETOOSMALL;
                if (version != NULL)
                    *version = v;
                return SHMSTORE_OK;
            }
        }
        /* Buffer b was rewritten: a publish moved `current` off it first. */
        if (atomic_load_explicit(&rc->current, memory_order_relaxed) == current)
            return shmstore__refuse(obj, SHMSTORE_ECORRUPT,
                                    "current names a buffer that does not hold its version", b);
        obj->retries++;
        shmstore__backoff(round);
    }
}

/* ------------------------------------------------------------------------
 * Waiting for a change (FORMAT.md, "Waiting for a change")
 * --------------------------------------------------------------------- */

/* Sleep while `word` holds `expected`, at most `ms` milliseconds: FUTEX_WAIT
 * on the shared word (no FUTEX_PRIVATE_FLAG: the kernel keys it by the page,
 * so processes meet on it whatever address they attached at; waiting only
 * reads it). Returns 0 when it woke, timed out, found the word changed
 * (EAGAIN) or was interrupted, else the errno of the failure. */
static int shmstore__futex_wait(const _Atomic uint32_t *word, uint32_t expected, unsigned ms)
{
    struct {
        shmstore__futex_time tv_sec;
        shmstore__futex_time tv_nsec;
    } timeout = {(shmstore__futex_time)(ms / 1000u),
                 (shmstore__futex_time)(ms % 1000u) * 1000000};
    /* Every argument as a long or a pointer: syscall(2) reads six longs. */
    if (syscall((long)SHMSTORE__SYS_FUTEX, (const void *)word, (long)SHMSTORE__FUTEX_WAIT,
                (long)expected, (void *)&timeout, (void *)NULL, (long)0) == 0)
        return 0;
    int err = errno;
    return err == EAGAIN || err == EINTR || err == ETIMEDOUT ? 0 : err;
}

/* Whether the `life` word marks the object removed (REMOVING, 2 or 3). */
static int shmstore__marked_removed(const struct shmstore_header *h)
{
    return (atomic_load_explicit(&h->life, memory_order_acquire) & SHMSTORE_LIFE_STATE_MASK) >=
           SHMSTORE_LIFE_REMOVING;
}

/* A waiter's look at the validated object: its version into `*now` (a cell's
 * `seq`, a region's `current` >> 8, loaded seq_cst as shmstore's waiters
 * load them), and whether it differs from `since` or the `life` word marks
 * the object removed. Only the header's fixed words and a region's
 * `current` are read (inside the validated segment), and nothing read is
 * used as an index. */
static int shmstore__wait_look(const struct shmstore_object *obj, uint64_t since, uint64_t *now)
{
    if (obj->kind == SHMSTORE_KIND_CELL)
        *now = atomic_load_explicit(&shmstore_header_of(obj)->seq, memory_order_seq_cst);
    else
        *now = SHMSTORE_CURRENT_VERSION(atomic_load_explicit(
            &shmstore_region_control_of(obj)->current, memory_order_seq_cst));
    return *now != since || shmstore__marked_removed(shmstore_header_of(obj));
}

/* SHMSTORE_EREMOVED, for the reason `detail`, with `since` as the version. */
static int shmstore__wait_removed(struct shmstore_object *obj, uint64_t since, uint64_t *version,
                                  const char *detail)
{
    if (version != NULL)
        *version = since;
    return shmstore__refuse(obj, SHMSTORE_EREMOVED, detail, (uint64_t)(unsigned)obj->id);
}

int shmstore_wait_for_change(struct shmstore_object *obj, uint64_t since, unsigned timeout_ms,
                             uint64_t *version)
{
    static const char marked[] = "the life word marks the object removed; its segment id";
    static const char destroyed[] =
        "the kernel marked the segment for destruction (SHM_DEST), or it is gone; its id";
    if (!obj->validated)
        return shmstore__refuse(obj, SHMSTORE_EINVAL, "not a validated object", 0);
    const struct shmstore_header *h = shmstore_header_of(obj);
    const int forever = timeout_ms == SHMSTORE_WAIT_FOREVER;
    const uint64_t start = shmstore__now_ms();
    /* The clock counts whole milliseconds: a deadline one past the timeout
     * makes the wait last at least timeout_ms (a zero timeout looks once). */
    const uint64_t deadline = start + timeout_ms + (timeout_ms != 0);
    const uint64_t check_every = SHMSTORE_REMOVAL_CHECK_MS < SHMSTORE_WAIT_SLICE_MS
                                     ? SHMSTORE_REMOVAL_CHECK_MS
                                     : SHMSTORE_WAIT_SLICE_MS;
    uint64_t now;
    if (!shmstore__wait_look(obj, since, &now)) {
        /* An ipcrm marks nothing: ask the kernel once at the start. */
        int gone = shmstore__kernel_removed(obj);
        if (gone < 0)
            return SHMSTORE_ESYSTEM;
        if (gone)
            return shmstore__wait_removed(obj, since, version, destroyed);
    }
    if (now == since && shmstore__marked_removed(h))
        return shmstore__wait_removed(obj, since, version, marked);
    uint64_t checked = start;
    for (;;) {
        unsigned slice = SHMSTORE_WAIT_SLICE_MS;
        if (!forever) {
            uint64_t t = shmstore__now_ms();
            if (t >= deadline) {
                /* Out of time: one last look, so that even a zero timeout
                 * sees a change made before the call. */
                if (shmstore__wait_look(obj, since, &now) && now == since)
                    return shmstore__wait_removed(obj, since, version, marked);
                break;
            }
            if (deadline - t < slice)
                slice = (unsigned)(deadline - t);
        }
        /* One round: load the word, look, and sleep while the word still
         * holds what was loaded, at most a slice (a writer's or a remover's
         * wake, or any write to the word, ends it early). */
        uint32_t word = atomic_load_explicit(&h->notify, memory_order_seq_cst);
        int moved = shmstore__wait_look(obj, since, &now);
        if (!moved) {
            int err = shmstore__futex_wait(&h->notify, word, slice);
            if (err != 0)
                return shmstore__system(obj, "futex(FUTEX_WAIT)", err);
            moved = shmstore__wait_look(obj, since, &now);
        }
        if (moved) {
            if (now == since)
                return shmstore__wait_removed(obj, since, version, marked);
            break;
        }
        uint64_t t = shmstore__now_ms();
        if (t - checked >= check_every) {
            int gone = shmstore__kernel_removed(obj);
            if (gone < 0)
                return SHMSTORE_ESYSTEM;
            if (gone)
                return shmstore__wait_removed(obj, since, version, destroyed);
            checked = t;
        }
    }
    if (version != NULL)
        *version = now;
    if (now == since)
        return shmstore__refuse(obj, SHMSTORE_ETIMEDOUT,
                                "the version did not change within the timeout (ms)",
                                (uint64_t)timeout_ms);
    obj->detail = NULL;
    obj->detail_value = 0;
    return SHMSTORE_OK;
}

/* ------------------------------------------------------------------------
 * Schemas (FORMAT.md, "Schema (optional)", "Region archives")
 * --------------------------------------------------------------------- */

int shmstore_schema(struct shmstore_object *obj, char *buf, size_t cap, size_t *len)
{
    if (obj == NULL || len == NULL)
        return SHMSTORE_EINVAL;
    if (!obj->validated)
        return shmstore__refuse(obj, SHMSTORE_EINVAL, "not a validated object", 0);
    size_t n = obj->schema_len;
    *len = n;
    if (n == 0)
        return shmstore__refuse(obj, SHMSTORE_ENOSCHEMA, "the object stores no schema", 0);
    if (buf == NULL || cap < n)
        return shmstore__refuse(obj, SHMSTORE_ETOOSMALL, "the buffer is smaller than the schema",
                                n);
    size_t at = obj->kind == SHMSTORE_KIND_CELL ? (size_t)SHMSTORE_CELL_SCHEMA_OFFSET
                                                : (size_t)SHMSTORE_REGION_SCHEMA_OFFSET;
    /* Validation put data_offset, a multiple of 8, at or past the schema's
     * end, so the schema's last whole word lies in the segment. */
    shmstore__load_words((unsigned char *)buf, obj->base + at, n);
    uint64_t hash = shmstore__fnv64(UINT64_C(0xcbf29ce484222325), buf, n);
    if (hash != obj->schema_hash)
        return shmstore__refuse(obj, SHMSTORE_ECORRUPT,
                                "the schema's bytes do not have its schema_hash", hash);
    return SHMSTORE_OK;
}

/* The parser: recursive descent over the grammar, at most
 * SHMSTORE_SCHEMA_MAX_DEPTH calls deep. */
struct shmstore__parser {
    const char *s;
    size_t len;
    size_t at;
    struct shmstore_schema_node *nodes;
    size_t cap;
    size_t count;
    uint32_t kind;
    const char *error;
    size_t error_at;
    int no_room;
};

static int shmstore__fail(struct shmstore__parser *p, const char *why)
{
    if (p->error == NULL) {
        p->error = why;
        p->error_at = p->at;
    }
    return -1;
}

static int shmstore__peek(const struct shmstore__parser *p)
{
    return p->at < p->len ? (unsigned char)p->s[p->at] : -1;
}

static int shmstore__lit(struct shmstore__parser *p, const char *lit)
{
    size_t n = strlen(lit);
    if (p->len - p->at >= n && memcmp(p->s + p->at, lit, n) == 0) {
        p->at += n;
        return 1;
    }
    return 0;
}

static int shmstore__expect(struct shmstore__parser *p, const char *lit)
{
    return shmstore__lit(p, lit) ? 0 : shmstore__fail(p, "unexpected byte");
}

static int shmstore__is_alpha(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static int shmstore__is_digit(int c) { return c >= '0' && c <= '9'; }

static int shmstore__ident(struct shmstore__parser *p, const char **name, uint32_t *len)
{
    size_t start = p->at;
    if (!shmstore__is_alpha(shmstore__peek(p)))
        return shmstore__fail(p, "a name was expected");
    while (shmstore__is_alpha(shmstore__peek(p)) || shmstore__is_digit(shmstore__peek(p)))
        p->at++;
    *name = p->s + start;
    *len = (uint32_t)(p->at - start);
    return 0;
}

static int shmstore__number(struct shmstore__parser *p, uint64_t max, uint64_t *out)
{
    size_t start = p->at;
    uint64_t v = 0;
    if (!shmstore__is_digit(shmstore__peek(p)))
        return shmstore__fail(p, "a number was expected");
    while (shmstore__is_digit(shmstore__peek(p))) {
        unsigned d = (unsigned)(shmstore__peek(p) - '0');
        if (v > (max - d) / 10)
            return shmstore__fail(p, "a number too large");
        v = v * 10 + d;
        p->at++;
    }
    if (p->at - start > 1 && p->s[start] == '0') {
        p->at = start;
        return shmstore__fail(p, "a number with a leading zero");
    }
    *out = v;
    return 0;
}

static long shmstore__node(struct shmstore__parser *p, uint8_t type, unsigned depth)
{
    if (p->count >= p->cap || p->count >= UINT32_MAX) {
        p->no_room = 1;
        return shmstore__fail(p, "more nodes than room for them");
    }
    struct shmstore_schema_node *n = &p->nodes[p->count];
    memset(n, 0, sizeof *n);
    n->type = type;
    n->depth = (uint16_t)depth;
    n->align = 1;
    return (long)p->count++;
}

/* Append `child` to `parent`'s children (`*last` its last child, 0 none). */
static void shmstore__adopt(struct shmstore__parser *p, long parent, long child, uint32_t *last)
{
    if (*last == 0)
        p->nodes[parent].first_child = (uint32_t)child;
    else
        p->nodes[*last].next = (uint32_t)child;
    *last = (uint32_t)child;
    p->nodes[parent].count++;
}

static uint64_t shmstore__round_up(uint64_t x, uint64_t align)
{
    return (x + align - 1) / align * align;
}

/* Lay `parent`'s children out as a C struct's fields from offset `start`
 * (1 for a variant, after its tag); size and alignment to the parent. */
static int shmstore__lay_struct(struct shmstore__parser *p, long parent, uint64_t start)
{
    uint64_t at = start, align = 1;
    for (uint32_t c = p->nodes[parent].first_child; c != 0; c = p->nodes[c].next) {
        struct shmstore_schema_node *f = &p->nodes[c];
        at = shmstore__round_up(at, f->align);
        f->offset = (uint32_t)at;
        at += f->size;
        if (at > UINT32_MAX)
            return shmstore__fail(p, "a type larger than 4 GiB");
        if (f->align > align)
            align = f->align;
    }
    at = shmstore__round_up(at, align);
    if (at > UINT32_MAX)
        return shmstore__fail(p, "a type larger than 4 GiB");
    p->nodes[parent].size = (uint32_t)at;
    p->nodes[parent].align = (uint32_t)align;
    return 0;
}

/* An enum's (or result's) layout from its variants'. */
static int shmstore__lay_enum(struct shmstore__parser *p, long e)
{
    uint64_t size = 1, align = 1;
    for (uint32_t v = p->nodes[e].first_child; v != 0; v = p->nodes[v].next) {
        if (shmstore__lay_struct(p, v, 1) != 0)
            return -1;
        p->nodes[v].offset = 0;
        if (p->nodes[v].size > size)
            size = p->nodes[v].size;
        if (p->nodes[v].align > align)
            align = p->nodes[v].align;
    }
    size = shmstore__round_up(size, align);
    if (size > UINT32_MAX)
        return shmstore__fail(p, "a type larger than 4 GiB");
    p->nodes[e].size = (uint32_t)size;
    p->nodes[e].align = (uint32_t)align;
    return 0;
}

static const struct {
    const char *name;
    uint8_t type;
    uint8_t size; /* in a region; a cell's usize and isize are size_t's */
} shmstore__prims[] = {
    {"u8", SHMSTORE_T_U8, 1},       {"i8", SHMSTORE_T_I8, 1},
    {"u16", SHMSTORE_T_U16, 2},     {"i16", SHMSTORE_T_I16, 2},
    {"u32", SHMSTORE_T_U32, 4},     {"i32", SHMSTORE_T_I32, 4},
    {"u64", SHMSTORE_T_U64, 8},     {"i64", SHMSTORE_T_I64, 8},
    {"u128", SHMSTORE_T_U128, 16},  {"i128", SHMSTORE_T_I128, 16},
    {"usize", SHMSTORE_T_USIZE, 4}, {"isize", SHMSTORE_T_ISIZE, 4},
    {"f32", SHMSTORE_T_F32, 4},     {"f64", SHMSTORE_T_F64, 8},
    {"bool", SHMSTORE_T_BOOL, 1},   {"char", SHMSTORE_T_CHAR, 4},
};

static int shmstore__same(const char *a, uint32_t alen, const char *b)
{
    return strlen(b) == alen && memcmp(a, b, alen) == 0;
}

/* Whether a child of `parent` before `upto` has the label `label`. */
static int shmstore__label_taken(const struct shmstore__parser *p, long parent, uint32_t upto)
{
    const struct shmstore_schema_node *u = &p->nodes[upto];
    for (uint32_t c = p->nodes[parent].first_child; c != 0 && c != upto; c = p->nodes[c].next)
        if (p->nodes[c].label_len == u->label_len &&
            memcmp(p->nodes[c].label, u->label, u->label_len) == 0)
            return 1;
    return 0;
}

static long shmstore__type(struct shmstore__parser *p, unsigned depth);

/* `name:type` fields up to `close`, at least one unless `may_be_empty`. */
static int shmstore__fields(struct shmstore__parser *p, long parent, unsigned depth, char close,
                            int may_be_empty)
{
    uint32_t last = 0;
    if (may_be_empty && shmstore__peek(p) == close) {
        p->at++;
        return 0;
    }
    for (;;) {
        const char *label;
        uint32_t label_len;
        size_t at = p->at;
        if (shmstore__ident(p, &label, &label_len) != 0 || shmstore__expect(p, ":") != 0)
            return -1;
        long f = shmstore__type(p, depth + 1);
        if (f < 0)
            return -1;
        p->nodes[f].label = label;
        p->nodes[f].label_len = label_len;
        shmstore__adopt(p, parent, f, &last);
        if (shmstore__label_taken(p, parent, (uint32_t)f)) {
            p->at = at;
            return shmstore__fail(p, "a field named twice");
        }
        if (shmstore__peek(p) == close) {
            p->at++;
            return 0;
        }
        if (shmstore__expect(p, ",") != 0)
            return -1;
    }
}

/* `type{,type}` up to `close`: one at least. */
static int shmstore__types(struct shmstore__parser *p, long parent, unsigned depth, char close)
{
    uint32_t last = 0;
    for (;;) {
        long t = shmstore__type(p, depth + 1);
        if (t < 0)
            return -1;
        shmstore__adopt(p, parent, t, &last);
        if (shmstore__peek(p) == close) {
            p->at++;
            return 0;
        }
        if (shmstore__expect(p, ",") != 0)
            return -1;
    }
}

static int shmstore__cell_form(struct shmstore__parser *p, uint8_t type)
{
    if (p->kind != SHMSTORE_KIND_CELL)
        return 0;
    switch (type) {
    case SHMSTORE_T_UNIT:
    case SHMSTORE_T_BOOL:
    case SHMSTORE_T_CHAR:
    case SHMSTORE_T_STR:
    case SHMSTORE_T_VEC:
    case SHMSTORE_T_BOX:
    case SHMSTORE_T_BOX_STR:
    case SHMSTORE_T_BOX_SLICE:
    case SHMSTORE_T_OPTION:
    case SHMSTORE_T_RESULT:
    case SHMSTORE_T_HASH_MAP:
    case SHMSTORE_T_HASH_SET:
    case SHMSTORE_T_BTREE_MAP:
    case SHMSTORE_T_BTREE_SET:
    case SHMSTORE_T_ENUM:
        return shmstore__fail(p, "a form a cell's (Pod) value cannot have");
    default:
        return 0;
    }
}

/* A synthetic variant (a result's Ok or Err) holding `field`. */
static long shmstore__variant_of(struct shmstore__parser *p, long parent, uint32_t *last,
                                 const char *label, uint8_t tag, unsigned depth)
{
    long v = shmstore__node(p, SHMSTORE_T_VARIANT, depth);
    if (v < 0)
        return -1;
    p->nodes[v].label = label;
    p->nodes[v].label_len = (uint32_t)strlen(label);
    p->nodes[v].tag = tag;
    shmstore__adopt(p, parent, v, last);
    return v;
}

static long shmstore__type(struct shmstore__parser *p, unsigned depth)
{
    if (depth > SHMSTORE_SCHEMA_MAX_DEPTH)
        return shmstore__fail(p, "nested deeper than 32");
    size_t start = p->at;
    int c = shmstore__peek(p);
    long n;
    if (c == '[') {
        p->at++;
        if ((n = shmstore__node(p, SHMSTORE_T_ARRAY, depth)) < 0)
            return -1;
        long e = shmstore__type(p, depth + 1);
        uint64_t count;
        if (e < 0 || shmstore__expect(p, ";") != 0 || shmstore__number(p, UINT32_MAX, &count) != 0 ||
            shmstore__expect(p, "]") != 0)
            return -1;
        p->nodes[n].first_child = (uint32_t)e;
        p->nodes[n].count = count;
        p->nodes[n].align = p->nodes[e].align;
        if (count != 0 && p->nodes[e].size > UINT32_MAX / count)
            return shmstore__fail(p, "a type larger than 4 GiB");
        p->nodes[n].size = (uint32_t)(count * p->nodes[e].size);
        return n;
    }
    if (c == '(') {
        if (shmstore__lit(p, "()")) {
            if (shmstore__cell_form(p, SHMSTORE_T_UNIT) != 0)
                return -1;
            if ((n = shmstore__node(p, SHMSTORE_T_UNIT, depth)) < 0)
                return -1;
            return n;
        }
        p->at++;
        if ((n = shmstore__node(p, SHMSTORE_T_TUPLE, depth)) < 0)
            return -1;
        uint32_t last = 0;
        long e = shmstore__type(p, depth + 1);
        if (e < 0 || shmstore__expect(p, ",") != 0)
            return -1;
        shmstore__adopt(p, n, e, &last);
        if (shmstore__peek(p) == ')')
            p->at++;
        else {
            for (;;) {
                if ((e = shmstore__type(p, depth + 1)) < 0)
                    return -1;
                shmstore__adopt(p, n, e, &last);
                if (shmstore__lit(p, ")"))
                    break;
                if (shmstore__expect(p, ",") != 0)
                    return -1;
            }
        }
        return shmstore__lay_struct(p, n, 0) == 0 ? n : -1;
    }

    const char *ident;
    uint32_t ident_len;
    if (shmstore__ident(p, &ident, &ident_len) != 0)
        return -1;
    c = shmstore__peek(p);
    if (c == '{' || c == '(') {
        p->at++;
        n = shmstore__node(p, c == '{' ? SHMSTORE_T_STRUCT : SHMSTORE_T_TUPLE_STRUCT, depth);
        if (n < 0)
            return -1;
        p->nodes[n].name = ident;
        p->nodes[n].name_len = ident_len;
        int rc = c == '{' ? shmstore__fields(p, n, depth, '}', 1)
                          : shmstore__types(p, n, depth, ')');
        if (rc != 0)
            return -1;
        return shmstore__lay_struct(p, n, 0) == 0 ? n : -1;
    }
    if (c == ' ' && shmstore__same(ident, ident_len, "enum")) {
        p->at++;
        if (shmstore__cell_form(p, SHMSTORE_T_ENUM) != 0)
            return -1;
        if ((n = shmstore__node(p, SHMSTORE_T_ENUM, depth)) < 0)
            return -1;
        if (shmstore__ident(p, &p->nodes[n].name, &p->nodes[n].name_len) != 0 ||
            shmstore__expect(p, "{") != 0)
            return -1;
        uint8_t seen[32] = {0};
        uint32_t last = 0;
        for (;;) {
            size_t at = p->at;
            const char *label;
            uint32_t label_len;
            uint64_t tag;
            if (shmstore__ident(p, &label, &label_len) != 0 || shmstore__expect(p, "=") != 0 ||
                shmstore__number(p, 255, &tag) != 0)
                return -1;
            if (seen[tag / 8] & (1u << (tag % 8))) {
                p->at = at;
                return shmstore__fail(p, "a variant's tag given twice");
            }
            seen[tag / 8] |= (uint8_t)(1u << (tag % 8));
            long v = shmstore__node(p, SHMSTORE_T_VARIANT, depth);
            if (v < 0)
                return -1;
            p->nodes[v].label = label;
            p->nodes[v].label_len = label_len;
            p->nodes[v].tag = (uint8_t)tag;
            shmstore__adopt(p, n, v, &last);
            if (shmstore__label_taken(p, n, (uint32_t)v)) {
                p->at = at;
                return shmstore__fail(p, "a variant named twice");
            }
            if (shmstore__lit(p, "(")) {
                if (shmstore__types(p, v, depth, ')') != 0)
                    return -1;
            } else if (shmstore__lit(p, "{")) {
                if (shmstore__fields(p, v, depth, '}', 0) != 0)
                    return -1;
            }
            if (shmstore__lit(p, "}"))
                break;
            if (shmstore__expect(p, ",") != 0)
                return -1;
        }
        return shmstore__lay_enum(p, n) == 0 ? n : -1;
    }
    if (c == '<') {
        static const struct {
            const char *name;
            uint8_t type;
            uint8_t args;
        } generics[] = {
            {"vec", SHMSTORE_T_VEC, 1},           {"box", SHMSTORE_T_BOX, 1},
            {"option", SHMSTORE_T_OPTION, 1},     {"result", SHMSTORE_T_RESULT, 2},
            {"hash_map", SHMSTORE_T_HASH_MAP, 2}, {"hash_set", SHMSTORE_T_HASH_SET, 1},
            {"btree_map", SHMSTORE_T_BTREE_MAP, 2}, {"btree_set", SHMSTORE_T_BTREE_SET, 1},
        };
        size_t g = 0;
        while (g < sizeof generics / sizeof generics[0] &&
               !shmstore__same(ident, ident_len, generics[g].name))
            g++;
        if (g == sizeof generics / sizeof generics[0]) {
            p->at = start;
            return shmstore__fail(p, "an unknown type");
        }
        p->at++;
        uint8_t type = generics[g].type;
        if (type == SHMSTORE_T_BOX && shmstore__lit(p, "str>"))
            type = SHMSTORE_T_BOX_STR;
        if (shmstore__cell_form(p, type) != 0)
            return -1;
        if ((n = shmstore__node(p, type, depth)) < 0)
            return -1;
        struct shmstore_schema_node *node;
        uint32_t last = 0;
        switch (type) {
        case SHMSTORE_T_BOX_STR:
            p->nodes[n].size = 8;
            p->nodes[n].align = 4;
            return n;
        case SHMSTORE_T_BOX:
            if (shmstore__peek(p) == '[') {
                /* box<[T]> (a slice) or box<[T;N]> (a boxed array). */
                p->at++;
                long a = shmstore__node(p, SHMSTORE_T_ARRAY, depth + 1);
                long e = a < 0 ? -1 : shmstore__type(p, depth + 2);
                if (e < 0)
                    return -1;
                if (shmstore__lit(p, "]>")) {
                    p->nodes[n].type = SHMSTORE_T_BOX_SLICE;
                    p->nodes[a].type = SHMSTORE_T_UNIT; /* unused */
                    shmstore__adopt(p, n, e, &last);
                    p->nodes[n].size = 8;
                    p->nodes[n].align = 4;
                    return n;
                }
                uint64_t count;
                if (shmstore__expect(p, ";") != 0 ||
                    shmstore__number(p, UINT32_MAX, &count) != 0 ||
                    shmstore__expect(p, "]>") != 0)
                    return -1;
                p->nodes[a].first_child = (uint32_t)e;
                p->nodes[a].count = count;
                p->nodes[a].align = p->nodes[e].align;
                if (count != 0 && p->nodes[e].size > UINT32_MAX / count)
                    return shmstore__fail(p, "a type larger than 4 GiB");
                p->nodes[a].size = (uint32_t)(count * p->nodes[e].size);
                shmstore__adopt(p, n, a, &last);
                p->nodes[n].size = 4;
                p->nodes[n].align = 4;
                return n;
            }
            break;
        default:
            break;
        }
        long k = shmstore__type(p, depth + 1);
        if (k < 0)
            return -1;
        long v = -1;
        if (generics[g].args == 2) {
            if (shmstore__expect(p, ",") != 0 || (v = shmstore__type(p, depth + 1)) < 0)
                return -1;
        }
        if (shmstore__expect(p, ">") != 0)
            return -1;
        node = &p->nodes[n];
        switch (type) {
        case SHMSTORE_T_VEC:
        case SHMSTORE_T_BOX:
            shmstore__adopt(p, n, k, &last);
            node->size = type == SHMSTORE_T_VEC ? 8 : 4;
            node->align = 4;
            return n;
        case SHMSTORE_T_OPTION: {
            shmstore__adopt(p, n, k, &last);
            uint64_t align = p->nodes[k].align;
            uint64_t off = shmstore__round_up(1, align);
            uint64_t size = shmstore__round_up(off + p->nodes[k].size, align);
            if (size > UINT32_MAX)
                return shmstore__fail(p, "a type larger than 4 GiB");
            p->nodes[k].offset = (uint32_t)off;
            node->size = (uint32_t)size;
            node->align = (uint32_t)align;
            return n;
        }
        case SHMSTORE_T_RESULT: {
            /* Archived as enum { Ok(T) = 0, Err(E) = 1 }. */
            uint32_t vlast = 0;
            long ok = shmstore__variant_of(p, n, &last, "Ok", 0, depth);
            if (ok < 0)
                return -1;
            shmstore__adopt(p, ok, k, &vlast);
            vlast = 0;
            long err = shmstore__variant_of(p, n, &last, "Err", 1, depth);
            if (err < 0)
                return -1;
            shmstore__adopt(p, err, v, &vlast);
            return shmstore__lay_enum(p, n) == 0 ? n : -1;
        }
        case SHMSTORE_T_HASH_MAP:
        case SHMSTORE_T_BTREE_MAP:
        case SHMSTORE_T_HASH_SET:
        case SHMSTORE_T_BTREE_SET:
            shmstore__adopt(p, n, k, &last);
            if (v >= 0)
                shmstore__adopt(p, n, v, &last);
            node->size = type == SHMSTORE_T_HASH_MAP || type == SHMSTORE_T_HASH_SET ? 12 : 8;
            node->align = 4;
            return n;
        default:
            return shmstore__fail(p, "an unknown type");
        }
    }
    for (size_t i = 0; i < sizeof shmstore__prims / sizeof shmstore__prims[0]; i++) {
        if (!shmstore__same(ident, ident_len, shmstore__prims[i].name))
            continue;
        uint8_t type = shmstore__prims[i].type;
        if (shmstore__cell_form(p, type) != 0) {
            p->at = start;
            return -1;
        }
        if ((n = shmstore__node(p, type, depth)) < 0)
            return -1;
        uint32_t size = shmstore__prims[i].size;
        if (p->kind == SHMSTORE_KIND_CELL &&
            (type == SHMSTORE_T_USIZE || type == SHMSTORE_T_ISIZE))
            size = (uint32_t)sizeof(size_t);
        p->nodes[n].size = size;
        p->nodes[n].align = size;
        return n;
    }
    if (shmstore__same(ident, ident_len, "str")) {
        if (shmstore__cell_form(p, SHMSTORE_T_STR) != 0) {
            p->at = start;
            return -1;
        }
        if ((n = shmstore__node(p, SHMSTORE_T_STR, depth)) < 0)
            return -1;
        p->nodes[n].size = 8;
        p->nodes[n].align = 4;
        return n;
    }
    p->at = start;
    return shmstore__fail(p, "an unknown type");
}

int shmstore_schema_parse(const char *text, size_t len, uint32_t kind,
                          struct shmstore_schema_node *nodes, size_t cap,
                          struct shmstore_schema *out)
{
    if (out == NULL)
        return SHMSTORE_EINVAL;
    memset(out, 0, sizeof *out);
    if (text == NULL || (nodes == NULL && cap != 0) ||
        (kind != SHMSTORE_KIND_CELL && kind != SHMSTORE_KIND_REGION))
        return SHMSTORE_EINVAL;
    out->text = text;
    out->text_len = len;
    out->nodes = nodes;
    out->kind = kind;
    if (len == 0 || len > SHMSTORE_SCHEMA_MAX) {
        out->error = len == 0 ? "an empty schema" : "a schema longer than 16384 bytes";
        return SHMSTORE_ESCHEMA;
    }
    struct shmstore__parser p = {0};
    p.s = text;
    p.len = len;
    p.nodes = nodes;
    p.cap = cap;
    p.kind = kind;
    long root = shmstore__type(&p, 1);
    if (root >= 0 && p.at != len)
        shmstore__fail(&p, "bytes after the type");
    if (p.error != NULL) {
        out->error = p.error;
        out->error_at = p.error_at;
        out->node_count = 0;
        /* No text needs more nodes than SHMSTORE_SCHEMA_NODES_FOR(len):
         * one that would with that many is not a schema. */
        if (p.no_room && cap >= SHMSTORE_SCHEMA_NODES_FOR(len))
            out->error = "more nodes than a schema of this length has";
        return p.no_room && cap < SHMSTORE_SCHEMA_NODES_FOR(len) ? SHMSTORE_ETOOSMALL
                                                                 : SHMSTORE_ESCHEMA;
    }
    out->node_count = p.count;
    return SHMSTORE_OK;
}

int shmstore_schema_check(const struct shmstore_schema *schema, uint32_t size, uint32_t align)
{
    if (schema == NULL || schema->node_count == 0)
        return SHMSTORE_EINVAL;
    if (schema->nodes[0].size != size)
        return SHMSTORE_ESCHEMA;
    if (schema->nodes[0].align != align)
        return SHMSTORE_ESCHEMA;
    return SHMSTORE_OK;
}

void shmstore_schema_free(struct shmstore_schema *schema)
{
    if (schema == NULL)
        return;
    free(schema->owned);
    memset(schema, 0, sizeof *schema);
}

int shmstore_schema_load(struct shmstore_object *obj, struct shmstore_schema *out)
{
    if (obj == NULL || out == NULL)
        return SHMSTORE_EINVAL;
    memset(out, 0, sizeof *out);
    if (!obj->validated)
        return shmstore__refuse(obj, SHMSTORE_EINVAL, "not a validated object", 0);
    if (obj->schema_len == 0)
        return shmstore__refuse(obj, SHMSTORE_ENOSCHEMA, "the object stores no schema", 0);
    if (obj->kind == SHMSTORE_KIND_REGION && obj->type_extra != SHMSTORE_RKYV_FORMAT)
        return shmstore__refuse(obj, SHMSTORE_ETYPE,
                                "the region's archives are not in the rkyv format described",
                                obj->type_extra);
    size_t len = obj->schema_len;
    size_t cap = SHMSTORE_SCHEMA_NODES_FOR(len);
    /* The nodes first (aligned as malloc aligns), then the text. */
    size_t nodes_bytes = cap * sizeof(struct shmstore_schema_node);
    unsigned char *mem = (unsigned char *)malloc(nodes_bytes + len + 8);
    if (mem == NULL)
        return shmstore__system(obj, "malloc", errno);
    char *text = (char *)mem + nodes_bytes;
    size_t got;
    int rc = shmstore_schema(obj, text, len, &got);
    if (rc == SHMSTORE_OK) {
        rc = shmstore_schema_parse(text, got, obj->kind, (struct shmstore_schema_node *)(void *)mem,
                                   cap, out);
        if (rc != SHMSTORE_OK)
            shmstore__refuse(obj, rc, out->error, out->error_at);
    }
    if (rc == SHMSTORE_OK) {
        rc = shmstore_schema_check(out, obj->value_size, obj->value_align);
        if (rc != SHMSTORE_OK) {
            out->error = out->nodes[0].size != obj->value_size
                             ? "the schema's size is not the value's"
                             : "the schema's alignment is not the value's";
            shmstore__refuse(obj, rc, out->error,
                             out->nodes[0].size != obj->value_size ? out->nodes[0].size
                                                                   : out->nodes[0].align);
        }
    }
    if (rc != SHMSTORE_OK) {
        const char *error = out->error;
        size_t error_at = out->error_at;
        free(mem);
        memset(out, 0, sizeof *out);
        out->error = error;
        out->error_at = error_at;
        return rc;
    }
    out->owned = mem;
    return SHMSTORE_OK;
}

/* ------------------------------------------------------------------------
 * Values read through a schema
 * --------------------------------------------------------------------- */

static const struct shmstore_schema_node *shmstore__at(const struct shmstore_value *v)
{
    return &v->schema->nodes[v->node];
}

static uint64_t shmstore__le(const unsigned char *b, size_t n)
{
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++)
        x |= (uint64_t)b[i] << (8 * i);
    return x;
}

int shmstore_value_root(const struct shmstore_schema *schema, const void *bytes, size_t len,
                        struct shmstore_value *out)
{
    if (schema == NULL || out == NULL || schema->node_count == 0 || (bytes == NULL && len != 0))
        return SHMSTORE_EINVAL;
    const struct shmstore_schema_node *root = &schema->nodes[0];
    out->schema = schema;
    out->bytes = (const unsigned char *)bytes;
    out->len = len;
    out->node = 0;
    out->pos = 0;
    if (schema->kind == SHMSTORE_KIND_CELL) {
        if (len != root->size)
            return SHMSTORE_EINVAL;
        return SHMSTORE_OK;
    }
    if (len < root->size || (len - root->size) % root->align != 0)
        return SHMSTORE_ECORRUPT;
    out->pos = len - root->size;
    return SHMSTORE_OK;
}

int shmstore_read_value(struct shmstore_object *obj, const struct shmstore_schema *schema,
                        void *buf, size_t cap, struct shmstore_value *out, uint64_t *version)
{
    if (obj == NULL || schema == NULL || out == NULL || buf == NULL)
        return SHMSTORE_EINVAL;
    if (!obj->validated)
        return shmstore__refuse(obj, SHMSTORE_EINVAL, "not a validated object", 0);
    if (schema->kind != obj->kind || schema->node_count == 0 ||
        shmstore_schema_check(schema, obj->value_size, obj->value_align) != SHMSTORE_OK)
        return shmstore__refuse(obj, SHMSTORE_ETYPE, "the schema is not the object's", 0);
    size_t len;
    int rc;
    if (obj->kind == SHMSTORE_KIND_CELL) {
        if (cap < obj->value_size)
            return shmstore__refuse(obj, SHMSTORE_ETOOSMALL, "the buffer is smaller than the value",
                                    obj->value_size);
        len = obj->value_size;
        rc = shmstore_cell_read(obj, buf, len, version);
    } else {
        rc = shmstore_region_copy(obj, buf, cap, &len, version);
    }
    if (rc != SHMSTORE_OK)
        return rc;
    return shmstore_value_root(schema, buf, len, out);
}

/* Where `count` elements of `elem` start, after the relative pointer at
 * `at`: checked to lie in the bytes, aligned for the element. */
static int shmstore__follow(const struct shmstore_value *v, size_t at, uint64_t count,
                            const struct shmstore_schema_node *elem, size_t *target)
{
    int32_t off = (int32_t)(uint32_t)shmstore__le(v->bytes + at, 4);
    int64_t t = (int64_t)at + off;
    if (t < 0 || (uint64_t)t > v->len)
        return SHMSTORE_ECORRUPT;
    if ((uint64_t)t % elem->align != 0)
        return SHMSTORE_ECORRUPT;
    if (elem->size != 0 && count > (v->len - (uint64_t)t) / elem->size)
        return SHMSTORE_ECORRUPT;
    *target = (size_t)t;
    return SHMSTORE_OK;
}

/* The child of `node` numbered `i`, or 0. */
static uint32_t shmstore__child(const struct shmstore_schema *s, uint32_t node, uint64_t i)
{
    uint32_t c = s->nodes[node].first_child;
    while (c != 0 && i-- > 0)
        c = s->nodes[c].next;
    return c;
}

/* Go through boxes and options: the value a box points at, the value of an
 * option's Some (SHMSTORE_ENONE for None). */
static int shmstore__unwrap(struct shmstore_value *v)
{
    for (;;) {
        const struct shmstore_schema_node *n = shmstore__at(v);
        if (n->type == SHMSTORE_T_BOX) {
            const struct shmstore_schema_node *c = &v->schema->nodes[n->first_child];
            size_t target;
            int rc = shmstore__follow(v, v->pos, 1, c, &target);
            if (rc != SHMSTORE_OK)
                return rc;
            v->pos = target;
            v->node = n->first_child;
        } else if (n->type == SHMSTORE_T_OPTION) {
            unsigned char tag = v->bytes[v->pos];
            if (tag == 0)
                return SHMSTORE_ENONE;
            if (tag != 1)
                return SHMSTORE_ECORRUPT;
            v->pos += v->schema->nodes[n->first_child].offset;
            v->node = n->first_child;
        } else {
            return SHMSTORE_OK;
        }
    }
}

/* The variant an enum or result holds. */
static int shmstore__variant(const struct shmstore_value *v, uint32_t *variant)
{
    unsigned char tag = v->bytes[v->pos];
    for (uint32_t c = shmstore__at(v)->first_child; c != 0; c = v->schema->nodes[c].next)
        if (v->schema->nodes[c].tag == tag) {
            *variant = c;
            return SHMSTORE_OK;
        }
    return SHMSTORE_ECORRUPT;
}

/* A vector's, boxed slice's or boxed str's elements: where, and how many. */
static int shmstore__elements(const struct shmstore_value *v, const struct shmstore_schema_node *elem,
                              size_t *target, uint64_t *count)
{
    *count = shmstore__le(v->bytes + v->pos + 4, 4);
    *target = 0;
    if (*count == 0)
        return SHMSTORE_OK; /* the pointer of an empty vector is not followed */
    return shmstore__follow(v, v->pos, *count, elem, target);
}

static const struct shmstore_schema_node shmstore__byte = {.type = SHMSTORE_T_U8, .size = 1,
                                                           .align = 1};

/* A string's bytes: an archived String (inline or out of line) or a
 * box<str>. */
static int shmstore__string(const struct shmstore_value *v, size_t *start, size_t *n)
{
    const unsigned char *b = v->bytes + v->pos;
    if (shmstore__at(v)->type == SHMSTORE_T_BOX_STR) {
        uint64_t count;
        int rc = shmstore__elements(v, &shmstore__byte, start, &count);
        *n = (size_t)count;
        return rc;
    }
    if ((b[0] & 0xc0) != 0x80) {
        size_t len = 0;
        while (len < 8 && b[len] != 0xff)
            len++;
        *start = v->pos;
        *n = len;
        return SHMSTORE_OK;
    }
    uint64_t word = shmstore__le(b, 4);
    uint64_t len = (word & 0x3f) | ((word & 0xffffff00u) >> 2);
    if (len <= 8)
        return SHMSTORE_ECORRUPT;
    int32_t off = (int32_t)(uint32_t)shmstore__le(b + 4, 4);
    int64_t t = (int64_t)v->pos + off;
    if (t < 0 || (uint64_t)t > v->len || len > v->len - (uint64_t)t)
        return SHMSTORE_ECORRUPT;
    *start = (size_t)t;
    *n = (size_t)len;
    return SHMSTORE_OK;
}

static int shmstore__utf8(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t k;
        uint32_t cp, min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            k = 1, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            k = 2, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            k = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return 0;
        }
        if (n - i <= k)
            return 0;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + j] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += k + 1;
    }
    return 1;
}

/* Maps and sets (rkyv 0.8's collections), read by a scan of every entry:
 * no hashing and no reliance on order, and the whole table or tree is
 * checked to hold exactly `len` entries before any is used, as rkyv's
 * validation requires; a scribbled map can make a key not found, or the
 * bytes corrupt, but never a read outside them or a walk without end. */

/* A map's or set's layout, and the state of a walk over its entries. */
struct shmstore__map {
    const struct shmstore_value *v;
    uint32_t kn, vn;        /* the key's and the value's nodes (vn 0: a set) */
    uint64_t len;           /* the entries the map says it has */
    uint64_t entry, entry_align, value_at; /* a hash table's bucket */
    uint64_t keys_at, values_at, links_at, node_align, ksize, vsize; /* a B-tree's node */
    uint64_t seen, inner;   /* entries and inner nodes met */
    uint64_t nodes_left;    /* B-tree nodes a walk may still meet */
    uint64_t *budget;       /* places a walk may still visit (NULL: no budget) */
    int (*fn)(void *ctx, size_t key_at, size_t value_at);
    void *ctx;
};

static void shmstore__map_init(struct shmstore__map *m, const struct shmstore_value *v)
{
    const struct shmstore_schema *s = v->schema;
    const struct shmstore_schema_node *n = shmstore__at(v);
    memset(m, 0, sizeof *m);
    m->v = v;
    m->kn = n->first_child;
    int is_map = n->type == SHMSTORE_T_HASH_MAP || n->type == SHMSTORE_T_BTREE_MAP;
    m->vn = is_map ? s->nodes[m->kn].next : 0;
    const struct shmstore_schema_node *k = &s->nodes[m->kn];
    uint64_t valign = is_map ? s->nodes[m->vn].align : 1;
    m->ksize = k->size;
    m->vsize = is_map ? s->nodes[m->vn].size : 0;
    m->entry_align = k->align > valign ? k->align : valign;
    m->len = shmstore__le(v->bytes + v->pos + 4, 4);
    /* An entry { key, value } laid out as a C struct. */
    m->value_at = shmstore__round_up(m->ksize, valign);
    m->entry = shmstore__round_up(m->value_at + m->vsize, m->entry_align);
    /* A node { u8 kind; K keys[5]; V values[5] }, then a leaf's u32 count
     * or an inner node's 6 links, aligned to at least 4. */
    m->keys_at = shmstore__round_up(1, k->align);
    m->values_at = shmstore__round_up(m->keys_at + 5 * m->ksize, valign);
    m->links_at = shmstore__round_up(
        shmstore__round_up(m->values_at + 5 * m->vsize, m->entry_align), 4);
    m->node_align = m->entry_align < 4 ? 4 : m->entry_align;
}

/* A swiss table (hash_map, hash_set): `ptr` (relative, at +0) to the
 * control bytes, `len` at +4, `cap` at +8; bucket i ends where bucket
 * i - 1 starts, bucket 0 ending at `ptr`; control byte i with its top bit
 * clear says bucket i is full. */
static int shmstore__hash_entries(struct shmstore__map *m)
{
    const struct shmstore_value *v = m->v;
    uint64_t cap = shmstore__le(v->bytes + v->pos + 8, 4);
    if (m->len == 0)
        return SHMSTORE_OK; /* the pointer of an empty map is not followed */
    /* rkyv leaves a bucket empty in every table. */
    if (m->len >= cap)
        return SHMSTORE_ECORRUPT;
    uint64_t controls = (cap + 15) / 16 * 16 + 15;
    int32_t off = (int32_t)(uint32_t)shmstore__le(v->bytes + v->pos, 4);
    int64_t t = (int64_t)v->pos + off;
    if (t < 0 || (uint64_t)t > v->len || controls > v->len - (uint64_t)t ||
        (uint64_t)t % m->entry_align != 0 || (m->entry != 0 && cap > (uint64_t)t / m->entry))
        return SHMSTORE_ECORRUPT;
    if (m->budget != NULL) {
        if (*m->budget < cap)
            return SHMSTORE_ERANGE;
        *m->budget -= cap;
    }
    const unsigned char *ctrl = v->bytes + (size_t)t;
    uint64_t full = 0;
    for (uint64_t i = 0; i < cap; i++)
        full += !(ctrl[i] & 0x80);
    if (full != m->len)
        return SHMSTORE_ECORRUPT;
    if (m->fn == NULL)
        return SHMSTORE_OK;
    for (uint64_t i = 0; i < cap; i++) {
        if (ctrl[i] & 0x80)
            continue;
        size_t at = (size_t)((uint64_t)t - (i + 1) * m->entry);
        int rc = m->fn(m->ctx, at, at + (size_t)m->value_at);
        if (rc != 0)
            return rc;
    }
    return SHMSTORE_OK;
}

/* A B-tree (btree_map, btree_set; 5 entries a node): `root` (relative, at
 * +0) and `len` at +4. A leaf (kind 0) has a u32 count of its entries, an
 * inner node (kind 1, whose 5 entries are all used) 5 relative pointers to
 * lesser nodes and one to a greater node, each absent when its offset is
 * 1. Walked in key order, stopping past `len` entries, `len / 5` inner
 * nodes, 64 levels, or more nodes than the bytes can hold apart (nodes
 * shared by many links would otherwise make a walk of `len` entries,
 * billions, out of a few bytes). */
static int shmstore__btree_walk(struct shmstore__map *m, size_t ptr_at, unsigned depth)
{
    const struct shmstore_value *v = m->v;
    if (depth > 64 || m->nodes_left == 0)
        return SHMSTORE_ECORRUPT;
    m->nodes_left--;
    if (m->budget != NULL) {
        if (*m->budget == 0)
            return SHMSTORE_ERANGE;
        --*m->budget;
    }
    int32_t off = (int32_t)(uint32_t)shmstore__le(v->bytes + ptr_at, 4);
    int64_t t = (int64_t)ptr_at + off;
    if (t < 0 || (uint64_t)t > v->len || (uint64_t)t % m->node_align != 0 ||
        m->links_at + 4 > v->len - (uint64_t)t)
        return SHMSTORE_ECORRUPT;
    size_t node = (size_t)t;
    unsigned char kind = v->bytes[node];
    uint64_t count;
    if (kind == 0) {
        count = shmstore__le(v->bytes + node + m->links_at, 4);
        if (count > 5)
            return SHMSTORE_ECORRUPT;
    } else if (kind == 1) {
        count = 5;
        if (m->links_at + 24 > v->len - (uint64_t)t || ++m->inner > m->len / 5)
            return SHMSTORE_ECORRUPT;
    } else {
        return SHMSTORE_ECORRUPT;
    }
    int rc;
    for (uint64_t i = 0; i <= count; i++) {
        size_t link = node + (size_t)(m->links_at + 4 * i);
        if (kind == 1 && shmstore__le(v->bytes + link, 4) != 1 &&
            (rc = shmstore__btree_walk(m, link, depth + 1)) != 0)
            return rc;
        if (i == count)
            break;
        if (++m->seen > m->len)
            return SHMSTORE_ECORRUPT;
        if (m->fn != NULL &&
            (rc = m->fn(m->ctx, node + (size_t)(m->keys_at + i * m->ksize),
                        node + (size_t)(m->values_at + i * m->vsize))) != 0)
            return rc;
    }
    return SHMSTORE_OK;
}

/* Check the map or set at `v` (into `m`), then call `fn` (unless NULL)
 * with each entry's key and value positions in the map's order until it
 * returns non-zero, which is returned. `budget`, if not NULL, is charged
 * a place a bucket or node (SHMSTORE_ERANGE once spent). */
static int shmstore__map_entries(struct shmstore__map *m, const struct shmstore_value *v,
                                 uint64_t *budget, int (*fn)(void *ctx, size_t, size_t),
                                 void *ctx)
{
    shmstore__map_init(m, v);
    m->budget = budget;
    int type = shmstore__at(v)->type;
    if (type == SHMSTORE_T_HASH_MAP || type == SHMSTORE_T_HASH_SET) {
        m->fn = fn;
        m->ctx = ctx;
        return shmstore__hash_entries(m);
    }
    if (m->len == 0)
        return SHMSTORE_OK;
    uint64_t nodes = v->len / (m->links_at + 4) + 1;
    m->nodes_left = nodes;
    int rc = shmstore__btree_walk(m, v->pos, 0);
    if (rc != SHMSTORE_OK)
        return rc;
    if (m->seen != m->len)
        return SHMSTORE_ECORRUPT;
    if (fn == NULL)
        return SHMSTORE_OK;
    m->seen = m->inner = 0;
    m->nodes_left = nodes;
    m->fn = fn;
    m->ctx = ctx;
    return shmstore__btree_walk(m, v->pos, 0);
}

/* One step of a path: `.name` (or a first `name`), `.N` (or a first `N`),
 * `[literal]` (an index, or a map's key) or `{literal}` (a set's
 * element). A literal is a string `"text"` (no escapes, no `"` inside),
 * an integer `N` or `-N`, `true` or `false`, or a char `'c'` (one UTF-8
 * scalar value). */
enum {
    SHMSTORE__LIT_STR = 1,
    SHMSTORE__LIT_INT,
    SHMSTORE__LIT_BOOL,
    SHMSTORE__LIT_CHAR,
};

struct shmstore__step {
    int kind;         /* 0 end, 1 `.name`, 2 `.N`, 3 `[literal]`, 4 `{literal}` */
    int lit;          /* SHMSTORE__LIT_*, for 3 and 4 */
    const char *name; /* a name; a string's bytes */
    size_t len;
    uint64_t index;   /* `.N`; an integer's magnitude; a bool (0, 1); a char's value */
    uint64_t index_hi; /* an integer's magnitude above 64 bits */
    int negative;     /* an integer written with `-` (and not 0) */
};

/* The literal at `*path`, then `close`. */
static int shmstore__literal(const char **path, char close, struct shmstore__step *st)
{
    const char *p = *path;
    if (*p == '"') {
        const char *k = ++p;
        while (*p != '\0' && *p != '"')
            p++;
        if (p[0] != '"' || p[1] != close)
            return SHMSTORE_ENOPATH;
        st->lit = SHMSTORE__LIT_STR;
        st->name = k;
        st->len = (size_t)(p - k);
        *path = p + 2;
        return SHMSTORE_OK;
    }
    if (*p == '\'') {
        const unsigned char *c = (const unsigned char *)p + 1;
        size_t k = c[0] < 0x80 ? 1 : (c[0] & 0xe0) == 0xc0 ? 2 : (c[0] & 0xf0) == 0xe0 ? 3
                 : (c[0] & 0xf8) == 0xf0 ? 4 : 0;
        for (size_t j = 0; j < k; j++)
            if (c[j] == '\0')
                return SHMSTORE_ENOPATH;
        if (k == 0 || !shmstore__utf8(c, k) || c[k] != '\'' || c[k + 1] != (unsigned char)close)
            return SHMSTORE_ENOPATH;
        uint64_t cp = k == 1 ? c[0] : (uint64_t)(c[0] & (0x7f >> k));
        for (size_t j = 1; j < k; j++)
            cp = (cp << 6) | (c[j] & 0x3f);
        st->lit = SHMSTORE__LIT_CHAR;
        st->index = cp;
        *path = (const char *)c + k + 2;
        return SHMSTORE_OK;
    }
    if (strncmp(p, "true", 4) == 0 || strncmp(p, "false", 5) == 0) {
        size_t n = *p == 't' ? 4 : 5;
        if (p[n] != close)
            return SHMSTORE_ENOPATH;
        st->lit = SHMSTORE__LIT_BOOL;
        st->index = *p == 't';
        *path = p + n + 1;
        return SHMSTORE_OK;
    }
    int negative = *p == '-';
    p += negative;
    uint64_t hi = 0, lo = 0;
    const char *d = p;
    while (shmstore__is_digit((unsigned char)*p)) {
        /* hi:lo = hi:lo * 10 + digit, refused past 2^128 - 1. */
        uint64_t low = (lo & 0xffffffffu) * 10 + (unsigned)(*p - '0');
        uint64_t high = (lo >> 32) * 10 + (low >> 32);
        uint64_t carry = high >> 32;
        if (hi > (UINT64_MAX - carry) / 10)
            return SHMSTORE_ENOPATH;
        hi = hi * 10 + carry;
        lo = (high << 32) | (low & 0xffffffffu);
        p++;
    }
    if (p == d || *p != close)
        return SHMSTORE_ENOPATH;
    st->lit = SHMSTORE__LIT_INT;
    st->index = lo;
    st->index_hi = hi;
    st->negative = negative && (hi | lo) != 0;
    *path = p + 1;
    return SHMSTORE_OK;
}

static int shmstore__next_step(const char **path, int first, struct shmstore__step *st)
{
    const char *p = *path;
    memset(st, 0, sizeof *st);
    if (*p == '\0')
        return SHMSTORE_OK;
    if (*p == '[' || *p == '{') {
        st->kind = *p == '[' ? 3 : 4;
        char close = *p == '[' ? ']' : '}';
        *path = p + 1;
        return shmstore__literal(path, close, st);
    }
    if (*p == '.')
        p++;
    else if (!first)
        return SHMSTORE_ENOPATH;
    const char *s = p;
    while (shmstore__is_alpha((unsigned char)*p) || shmstore__is_digit((unsigned char)*p))
        p++;
    if (p == s)
        return SHMSTORE_ENOPATH;
    st->name = s;
    st->len = (size_t)(p - s);
    st->kind = 1;
    if (shmstore__is_digit((unsigned char)*s)) {
        uint64_t i = 0;
        for (const char *d = s; d < p; d++) {
            if (!shmstore__is_digit((unsigned char)*d) || i > UINT64_MAX / 10 - 9)
                return SHMSTORE_ENOPATH;
            i = i * 10 + (unsigned)(*d - '0');
        }
        st->index = i;
        st->kind = 2;
        st->name = NULL;
    }
    *path = p;
    return SHMSTORE_OK;
}

static int shmstore__integer(const struct shmstore_value *v, int *negative, uint64_t *hi,
                             uint64_t *lo);

/* Which literals name a key of type `type`: SHMSTORE__LIT_*, or 0 for a
 * type whose keys a path cannot name (a struct, a tuple, a float...). */
static int shmstore__key_lit(int type)
{
    switch (type) {
    case SHMSTORE_T_STR: case SHMSTORE_T_BOX_STR:
        return SHMSTORE__LIT_STR;
    case SHMSTORE_T_U8: case SHMSTORE_T_I8: case SHMSTORE_T_U16: case SHMSTORE_T_I16:
    case SHMSTORE_T_U32: case SHMSTORE_T_I32: case SHMSTORE_T_U64: case SHMSTORE_T_I64:
    case SHMSTORE_T_U128: case SHMSTORE_T_I128: case SHMSTORE_T_USIZE: case SHMSTORE_T_ISIZE:
        return SHMSTORE__LIT_INT;
    case SHMSTORE_T_BOOL:
        return SHMSTORE__LIT_BOOL;
    case SHMSTORE_T_CHAR:
        return SHMSTORE__LIT_CHAR;
    default:
        return 0;
    }
}

/* Whether the key at `at` (of the node `key_node`) is the literal of
 * `st`: 1, 0, or a negative error. */
static int shmstore__key_is(const struct shmstore_value *map, uint32_t key_node, size_t at,
                            const struct shmstore__step *st)
{
    struct shmstore_value k = *map;
    k.node = key_node;
    k.pos = at;
    int rc;
    switch (shmstore__at(&k)->type) {
    case SHMSTORE_T_STR:
    case SHMSTORE_T_BOX_STR: {
        size_t start, len;
        if ((rc = shmstore__string(&k, &start, &len)) != SHMSTORE_OK)
            return -rc;
        return len == st->len && memcmp(k.bytes + start, st->name, len) == 0;
    }
    case SHMSTORE_T_BOOL:
        if (k.bytes[at] > 1)
            return -SHMSTORE_ECORRUPT;
        return k.bytes[at] == st->index;
    default: {
        int neg;
        uint64_t hi, lo;
        if ((rc = shmstore__integer(&k, &neg, &hi, &lo)) != SHMSTORE_OK)
            return -rc;
        return hi == st->index_hi && lo == st->index && neg == st->negative;
    }
    }
}

/* A lookup: every entry compared, the one that matches kept; a second is
 * corrupt. */
struct shmstore__find {
    const struct shmstore__map *m;
    const struct shmstore__step *st;
    size_t key_at, value_at;
    int found;
};

static int shmstore__find_entry(void *ctx, size_t key_at, size_t value_at)
{
    struct shmstore__find *f = (struct shmstore__find *)ctx;
    int is = shmstore__key_is(f->m->v, f->m->kn, key_at, f->st);
    if (is < 0)
        return -is;
    if (is) {
        if (f->found)
            return SHMSTORE_ECORRUPT;
        f->found = 1;
        f->key_at = key_at;
        f->value_at = value_at;
    }
    return 0;
}

/* Go from the map `v` to the value of the key `st` names, or from the set
 * `v` to the element. */
static int shmstore__map_find(struct shmstore_value *v, const struct shmstore__step *st)
{
    int type = shmstore__at(v)->type;
    int is_set = type == SHMSTORE_T_HASH_SET || type == SHMSTORE_T_BTREE_SET;
    if (st->kind != (is_set ? 4 : 3))
        return SHMSTORE_ENOPATH;
    int lit = shmstore__key_lit(v->schema->nodes[shmstore__at(v)->first_child].type);
    if (lit == 0)
        return SHMSTORE_ENOTSUP;
    /* A char key is also named by its scalar value. */
    if (st->lit != lit && !(lit == SHMSTORE__LIT_CHAR && st->lit == SHMSTORE__LIT_INT))
        return SHMSTORE_ENOPATH;
    struct shmstore__map m;
    struct shmstore__find f = {&m, st, 0, 0, 0};
    int rc = shmstore__map_entries(&m, v, NULL, shmstore__find_entry, &f);
    if (rc != SHMSTORE_OK)
        return rc;
    if (!f.found)
        return SHMSTORE_ENONE;
    v->node = is_set ? m.kn : m.vn;
    v->pos = is_set ? f.key_at : f.value_at;
    return SHMSTORE_OK;
}

/* Take one step from `v`, which is neither a box nor an option. */
static int shmstore__step(struct shmstore_value *v, const struct shmstore__step *st)
{
    const struct shmstore_schema *s = v->schema;
    const struct shmstore_schema_node *n = shmstore__at(v);
    switch (n->type) {
    case SHMSTORE_T_STRUCT:
    case SHMSTORE_T_TUPLE_STRUCT:
    case SHMSTORE_T_TUPLE:
    case SHMSTORE_T_VARIANT: {
        uint32_t c = 0;
        if (st->kind == 1) {
            for (c = n->first_child; c != 0; c = s->nodes[c].next)
                if (s->nodes[c].label != NULL && s->nodes[c].label_len == st->len &&
                    memcmp(s->nodes[c].label, st->name, st->len) == 0)
                    break;
        } else if (st->kind == 2 && n->type != SHMSTORE_T_STRUCT) {
            if (st->index < n->count)
                c = shmstore__child(s, v->node, st->index);
            if (c != 0 && s->nodes[c].label != NULL)
                c = 0; /* a named field is named */
        }
        if (c == 0)
            return SHMSTORE_ENOPATH;
        v->pos += s->nodes[c].offset;
        v->node = c;
        return SHMSTORE_OK;
    }
    case SHMSTORE_T_ENUM:
    case SHMSTORE_T_RESULT: {
        if (st->kind != 1)
            return SHMSTORE_ENOPATH;
        uint32_t c;
        for (c = n->first_child; c != 0; c = s->nodes[c].next)
            if (s->nodes[c].label_len == st->len &&
                memcmp(s->nodes[c].label, st->name, st->len) == 0)
                break;
        if (c == 0)
            return SHMSTORE_ENOPATH;
        uint32_t held;
        int rc = shmstore__variant(v, &held);
        if (rc != SHMSTORE_OK)
            return rc;
        if (held != c)
            return SHMSTORE_ENONE;
        v->node = c; /* a variant's fields are placed from the enum's start */
        return SHMSTORE_OK;
    }
    case SHMSTORE_T_ARRAY: {
        if (st->kind != 3 || st->lit != SHMSTORE__LIT_INT || st->negative || st->index_hi != 0)
            return SHMSTORE_ENOPATH;
        if (st->index >= n->count)
            return SHMSTORE_ENOPATH;
        v->node = n->first_child;
        v->pos += (size_t)st->index * s->nodes[n->first_child].size;
        return SHMSTORE_OK;
    }
    case SHMSTORE_T_VEC:
    case SHMSTORE_T_BOX_SLICE: {
        if (st->kind != 3 || st->lit != SHMSTORE__LIT_INT || st->negative || st->index_hi != 0)
            return SHMSTORE_ENOPATH;
        const struct shmstore_schema_node *e = &s->nodes[n->first_child];
        size_t target;
        uint64_t count;
        int rc = shmstore__elements(v, e, &target, &count);
        if (rc != SHMSTORE_OK)
            return rc;
        if (st->index >= count)
            return SHMSTORE_ENONE;
        v->node = n->first_child;
        v->pos = target + (size_t)st->index * e->size;
        return SHMSTORE_OK;
    }
    case SHMSTORE_T_HASH_MAP:
    case SHMSTORE_T_BTREE_MAP:
    case SHMSTORE_T_HASH_SET:
    case SHMSTORE_T_BTREE_SET:
        return shmstore__map_find(v, st);
    default:
        return SHMSTORE_ENOPATH;
    }
}

/* shmstore_value_at; `last_key` says whether the last step taken was a
 * map's key or a set's element and the path's last. */
static int shmstore__path(const struct shmstore_value *value, const char *path,
                          struct shmstore_value *out, int *last_key)
{
    *last_key = 0;
    if (value == NULL || path == NULL || out == NULL || value->schema == NULL ||
        value->node >= value->schema->node_count)
        return SHMSTORE_EINVAL;
    struct shmstore_value v = *value;
    int first = 1;
    for (;;) {
        struct shmstore__step st;
        int rc = shmstore__next_step(&path, first, &st);
        if (rc != SHMSTORE_OK)
            return rc;
        if (st.kind == 0)
            break;
        if ((rc = shmstore__unwrap(&v)) != SHMSTORE_OK)
            return rc;
        int type = shmstore__at(&v)->type;
        *last_key = (st.kind == 3 || st.kind == 4) && *path == '\0' &&
                    (type == SHMSTORE_T_HASH_MAP || type == SHMSTORE_T_BTREE_MAP ||
                     type == SHMSTORE_T_HASH_SET || type == SHMSTORE_T_BTREE_SET);
        if ((rc = shmstore__step(&v, &st)) != SHMSTORE_OK)
            return rc;
        first = 0;
    }
    *out = v;
    return SHMSTORE_OK;
}

int shmstore_value_at(const struct shmstore_value *value, const char *path,
                      struct shmstore_value *out)
{
    int last_key;
    return shmstore__path(value, path, out, &last_key);
}

int shmstore_contains(const struct shmstore_value *value, const char *path, bool *found)
{
    struct shmstore_value v;
    int last_key;
    if (found == NULL)
        return SHMSTORE_EINVAL;
    int rc = shmstore__path(value, path, &v, &last_key);
    if (!last_key)
        return rc == SHMSTORE_OK ? SHMSTORE_ENOPATH : rc;
    if (rc == SHMSTORE_OK || rc == SHMSTORE_ENONE) {
        *found = rc == SHMSTORE_OK;
        return SHMSTORE_OK;
    }
    return rc;
}

int shmstore_value_type(const struct shmstore_value *value)
{
    return shmstore__at(value)->type;
}

/* The place a getter reads: `path` from `value`, boxes and options gone
 * through. */
static int shmstore__leaf(const struct shmstore_value *value, const char *path,
                          struct shmstore_value *v)
{
    int rc = shmstore_value_at(value, path, v);
    return rc != SHMSTORE_OK ? rc : shmstore__unwrap(v);
}

/* An integer place's value as a sign and a 128-bit magnitude, or ETYPE. */
static int shmstore__integer(const struct shmstore_value *v, int *negative, uint64_t *hi,
                             uint64_t *lo)
{
    const struct shmstore_schema_node *n = shmstore__at(v);
    const unsigned char *b = v->bytes + v->pos;
    int is_signed;
    switch (n->type) {
    case SHMSTORE_T_U8: case SHMSTORE_T_U16: case SHMSTORE_T_U32: case SHMSTORE_T_U64:
    case SHMSTORE_T_U128: case SHMSTORE_T_USIZE:
        is_signed = 0;
        break;
    case SHMSTORE_T_I8: case SHMSTORE_T_I16: case SHMSTORE_T_I32: case SHMSTORE_T_I64:
    case SHMSTORE_T_I128: case SHMSTORE_T_ISIZE:
        is_signed = 1;
        break;
    case SHMSTORE_T_CHAR: {
        uint64_t c = shmstore__le(b, 4);
        if (c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
            return SHMSTORE_ECORRUPT;
        *negative = 0;
        *hi = 0;
        *lo = c;
        return SHMSTORE_OK;
    }
    default:
        return SHMSTORE_ETYPE;
    }
    size_t size = n->size;
    uint64_t l = shmstore__le(b, size < 8 ? size : 8);
    uint64_t h = size > 8 ? shmstore__le(b + 8, 8) : 0;
    int neg = is_signed && (b[size - 1] & 0x80);
    if (neg) {
        /* Sign-extend to 128 bits, then take the magnitude. */
        if (size < 8)
            l |= ~UINT64_C(0) << (8 * size);
        if (size <= 8)
            h = ~UINT64_C(0);
        h = ~h;
        l = ~l;
        if (++l == 0)
            h++;
    }
    *negative = neg;
    *hi = h;
    *lo = l;
    return SHMSTORE_OK;
}

int shmstore_get_u64(const struct shmstore_value *value, const char *path, uint64_t *out)
{
    struct shmstore_value v;
    int neg;
    uint64_t hi, lo;
    int rc = shmstore__leaf(value, path, &v);
    if (rc == SHMSTORE_OK)
        rc = shmstore__integer(&v, &neg, &hi, &lo);
    if (rc != SHMSTORE_OK)
        return rc;
    if ((neg && (hi | lo) != 0) || hi != 0)
        return SHMSTORE_ERANGE;
    *out = lo;
    return SHMSTORE_OK;
}

int shmstore_get_i64(const struct shmstore_value *value, const char *path, int64_t *out)
{
    struct shmstore_value v;
    int neg;
    uint64_t hi, lo;
    int rc = shmstore__leaf(value, path, &v);
    if (rc == SHMSTORE_OK)
        rc = shmstore__integer(&v, &neg, &hi, &lo);
    if (rc != SHMSTORE_OK)
        return rc;
    if (hi != 0 || lo > (neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX))
        return SHMSTORE_ERANGE;
    if (!neg)
        *out = (int64_t)lo;
    else if (lo == (uint64_t)INT64_MAX + 1)
        *out = INT64_MIN;
    else
        *out = -(int64_t)lo;
    return SHMSTORE_OK;
}

/* The integer at `path`: its sign and magnitude `h:l`. */
static int shmstore__get_wide(const struct shmstore_value *value, const char *path, const void *hi,
                              const void *lo, int *neg, uint64_t *h, uint64_t *l)
{
    struct shmstore_value v;
    if (hi == NULL || lo == NULL)
        return SHMSTORE_EINVAL;
    int rc = shmstore__leaf(value, path, &v);
    if (rc == SHMSTORE_OK)
        rc = shmstore__integer(&v, neg, h, l);
    return rc;
}

int shmstore_get_u128(const struct shmstore_value *value, const char *path, uint64_t *hi,
                      uint64_t *lo)
{
    int neg;
    uint64_t h, l;
    int rc = shmstore__get_wide(value, path, hi, lo, &neg, &h, &l);
    if (rc != SHMSTORE_OK)
        return rc;
    if (neg)
        return SHMSTORE_ERANGE;
    *hi = h;
    *lo = l;
    return SHMSTORE_OK;
}

int shmstore_get_i128(const struct shmstore_value *value, const char *path, int64_t *hi,
                      uint64_t *lo)
{
    int neg;
    uint64_t h, l;
    int rc = shmstore__get_wide(value, path, hi, lo, &neg, &h, &l);
    if (rc != SHMSTORE_OK)
        return rc;
    const uint64_t top = UINT64_C(1) << 63;
    if (h > top || (h == top && (!neg || l != 0)))
        return SHMSTORE_ERANGE;
    if (neg) {
        /* The two's complement of the magnitude. */
        h = ~h;
        l = ~l;
        if (++l == 0)
            h++;
    }
    memcpy(hi, &h, sizeof h); /* int64_t is two's complement */
    *lo = l;
    return SHMSTORE_OK;
}

int shmstore_get_f64(const struct shmstore_value *value, const char *path, double *out)
{
    struct shmstore_value v;
    int rc = shmstore__leaf(value, path, &v);
    if (rc != SHMSTORE_OK)
        return rc;
    const unsigned char *b = v.bytes + v.pos;
    if (shmstore__at(&v)->type == SHMSTORE_T_F64) {
        uint64_t bits = shmstore__le(b, 8);
        memcpy(out, &bits, 8);
    } else if (shmstore__at(&v)->type == SHMSTORE_T_F32) {
        uint32_t bits = (uint32_t)shmstore__le(b, 4);
        float f;
        memcpy(&f, &bits, 4);
        *out = f;
    } else {
        return SHMSTORE_ETYPE;
    }
    return SHMSTORE_OK;
}

_Static_assert(sizeof(double) == 8 && sizeof(float) == 4, "IEEE 754 binary64 and binary32");

int shmstore_get_bool(const struct shmstore_value *value, const char *path, bool *out)
{
    struct shmstore_value v;
    int rc = shmstore__leaf(value, path, &v);
    if (rc != SHMSTORE_OK)
        return rc;
    if (shmstore__at(&v)->type != SHMSTORE_T_BOOL)
        return SHMSTORE_ETYPE;
    unsigned char b = v.bytes[v.pos];
    if (b > 1)
        return SHMSTORE_ECORRUPT;
    *out = b == 1;
    return SHMSTORE_OK;
}

int shmstore_get_str(const struct shmstore_value *value, const char *path, char *buf, size_t cap,
                     size_t *len)
{
    struct shmstore_value v;
    int rc = shmstore__leaf(value, path, &v);
    if (rc != SHMSTORE_OK)
        return rc;
    int type = shmstore__at(&v)->type;
    if (type != SHMSTORE_T_STR && type != SHMSTORE_T_BOX_STR)
        return SHMSTORE_ETYPE;
    size_t start, n;
    if ((rc = shmstore__string(&v, &start, &n)) != SHMSTORE_OK)
        return rc;
    if (!shmstore__utf8(v.bytes + start, n))
        return SHMSTORE_ECORRUPT;
    if (len != NULL)
        *len = n;
    if (buf == NULL || cap <= n)
        return SHMSTORE_ETOOSMALL;
    memcpy(buf, v.bytes + start, n);
    buf[n] = '\0';
    return SHMSTORE_OK;
}

int shmstore_get_len(const struct shmstore_value *value, const char *path, uint64_t *out)
{
    struct shmstore_value v;
    int rc = shmstore__leaf(value, path, &v);
    if (rc != SHMSTORE_OK)
        return rc;
    const struct shmstore_schema_node *n = shmstore__at(&v);
    switch (n->type) {
    case SHMSTORE_T_ARRAY:
    case SHMSTORE_T_STRUCT:
    case SHMSTORE_T_TUPLE_STRUCT:
    case SHMSTORE_T_TUPLE:
    case SHMSTORE_T_VARIANT:
        *out = n->count;
        return SHMSTORE_OK;
    case SHMSTORE_T_VEC:
    case SHMSTORE_T_BOX_SLICE: {
        size_t target;
        rc = shmstore__elements(&v, &v.schema->nodes[n->first_child], &target, out);
        return rc;
    }
    case SHMSTORE_T_STR:
    case SHMSTORE_T_BOX_STR: {
        size_t start, len;
        rc = shmstore__string(&v, &start, &len);
        if (rc == SHMSTORE_OK)
            *out = len;
        return rc;
    }
    case SHMSTORE_T_HASH_MAP:
    case SHMSTORE_T_HASH_SET:
    case SHMSTORE_T_BTREE_MAP:
    case SHMSTORE_T_BTREE_SET: {
        /* The entries the map says it has, once its table or tree is
         * found to hold that many. */
        struct shmstore__map m;
        if ((rc = shmstore__map_entries(&m, &v, NULL, NULL, NULL)) == SHMSTORE_OK)
            *out = m.len;
        return rc;
    }
    default:
        return SHMSTORE_ETYPE;
    }
}

int shmstore_get_variant(const struct shmstore_value *value, const char *path, const char **name,
                         size_t *name_len, unsigned *tag)
{
    struct shmstore_value v;
    int rc = shmstore__leaf(value, path, &v);
    if (rc != SHMSTORE_OK)
        return rc;
    int type = shmstore__at(&v)->type;
    if (type != SHMSTORE_T_ENUM && type != SHMSTORE_T_RESULT)
        return SHMSTORE_ETYPE;
    uint32_t c;
    if ((rc = shmstore__variant(&v, &c)) != SHMSTORE_OK)
        return rc;
    const struct shmstore_schema_node *var = &v.schema->nodes[c];
    if (name != NULL)
        *name = var->label;
    if (name_len != NULL)
        *name_len = var->label_len;
    if (tag != NULL)
        *tag = var->tag;
    return SHMSTORE_OK;
}

/* The visitor: a walk over the schema's tree, with its path in `path`. */
struct shmstore__walk {
    int (*fn)(void *ctx, const char *path, const struct shmstore_value *leaf);
    void *ctx;
    uint64_t budget;
    char path[SHMSTORE_PATH_MAX];
};

/* Append to the walk's path at `at`: returns the new end, or 0 if full. */
static size_t shmstore__path_add(struct shmstore__walk *w, size_t at, const char *fmt_pre,
                                 const char *s, size_t n, const char *fmt_post)
{
    size_t pre = strlen(fmt_pre), post = strlen(fmt_post);
    if (at + pre + n + post + 1 > sizeof w->path)
        return 0;
    memcpy(w->path + at, fmt_pre, pre);
    memcpy(w->path + at + pre, s, n);
    memcpy(w->path + at + pre + n, fmt_post, post);
    w->path[at + pre + n + post] = '\0';
    return at + pre + n + post;
}

static size_t shmstore__path_index(struct shmstore__walk *w, size_t at, const char *pre,
                                   uint64_t i, const char *post)
{
    char digits[24];
    size_t n = sizeof digits;
    do {
        digits[--n] = (char)('0' + i % 10);
        i /= 10;
    } while (i != 0);
    return shmstore__path_add(w, at, pre, digits + n, sizeof digits - n, post);
}

/* `hi:lo` in decimal, written backwards from `end`: returns its start. */
static char *shmstore__decimal(uint64_t hi, uint64_t lo, char *end)
{
    do {
        uint64_t a = ((hi % 10) << 32) | (lo >> 32);
        uint64_t b = ((a % 10) << 32) | (lo & 0xffffffffu);
        hi /= 10;
        lo = ((a / 10) << 32) | (b / 10);
        *--end = (char)('0' + b % 10);
    } while ((hi | lo) != 0);
    return end;
}

static int shmstore__walk(struct shmstore__walk *w, struct shmstore_value v, size_t at);

/* A walk into a map's or set's entries: the map, and where its path ends. */
struct shmstore__walk_map {
    struct shmstore__walk *w;
    const struct shmstore__map *m;
    size_t at;
    int is_set;
};

/* Append the key at `k` to the walk's path at `at` as a path names it
 * (`["text"]`, `[-3]`, `[true]`, `['c']`; in braces for a set's element):
 * returns the new end, or 0 with `*rc` set. */
static size_t shmstore__path_key(struct shmstore__walk *w, size_t at,
                                 const struct shmstore_value *k, int is_set, int *rc)
{
    const char *open = is_set ? "{" : "[", *close = is_set ? "}" : "]";
    char pre[3] = {open[0], 0, 0}, post[3] = {0, close[0], 0};
    char buf[48];
    const char *text = buf;
    size_t n;
    *rc = SHMSTORE_OK;
    switch (shmstore__at(k)->type) {
    case SHMSTORE_T_STR:
    case SHMSTORE_T_BOX_STR: {
        size_t start;
        if ((*rc = shmstore__string(k, &start, &n)) != SHMSTORE_OK)
            return 0;
        if (!shmstore__utf8(k->bytes + start, n)) {
            *rc = SHMSTORE_ECORRUPT;
            return 0;
        }
        text = (const char *)k->bytes + start;
        pre[1] = '"';
        post[0] = '"';
        break;
    }
    case SHMSTORE_T_BOOL:
        if (k->bytes[k->pos] > 1) {
            *rc = SHMSTORE_ECORRUPT;
            return 0;
        }
        text = k->bytes[k->pos] ? "true" : "false";
        n = strlen(text);
        break;
    case SHMSTORE_T_CHAR: {
        int neg;
        uint64_t hi, c;
        if ((*rc = shmstore__integer(k, &neg, &hi, &c)) != SHMSTORE_OK)
            return 0;
        if (c < 0x80) {
            buf[0] = (char)c, n = 1;
        } else if (c < 0x800) {
            buf[0] = (char)(0xc0 | (c >> 6)), n = 2;
        } else if (c < 0x10000) {
            buf[0] = (char)(0xe0 | (c >> 12)), n = 3;
        } else {
            buf[0] = (char)(0xf0 | (c >> 18)), n = 4;
        }
        for (size_t i = 1; i < n; i++)
            buf[i] = (char)(0x80 | ((c >> (6 * (n - 1 - i))) & 0x3f));
        pre[1] = '\'';
        post[0] = '\'';
        break;
    }
    default: {
        int neg;
        uint64_t hi, lo;
        if ((*rc = shmstore__integer(k, &neg, &hi, &lo)) != SHMSTORE_OK)
            return 0;
        char *start = shmstore__decimal(hi, lo, buf + sizeof buf);
        if (neg)
            *--start = '-';
        text = start;
        n = (size_t)(buf + sizeof buf - start);
        break;
    }
    }
    if (post[0] == 0) {
        post[0] = post[1];
        post[1] = 0;
    }
    size_t end = shmstore__path_add(w, at, pre, text, n, post);
    if (end == 0)
        *rc = SHMSTORE_ERANGE;
    return end;
}

/* One entry of a walk into a map (its value) or a set (its element). */
static int shmstore__walk_entry(void *ctx, size_t key_at, size_t value_at)
{
    struct shmstore__walk_map *e = (struct shmstore__walk_map *)ctx;
    struct shmstore_value k = *e->m->v;
    k.node = e->m->kn;
    k.pos = key_at;
    int rc;
    size_t end = shmstore__path_key(e->w, e->at, &k, e->is_set, &rc);
    if (end == 0)
        return rc;
    struct shmstore_value place = k;
    if (!e->is_set) {
        place.node = e->m->vn;
        place.pos = value_at;
    }
    rc = shmstore__walk(e->w, place, end);
    e->w->path[e->at] = '\0';
    return rc;
}

static int shmstore__walk(struct shmstore__walk *w, struct shmstore_value v, size_t at)
{
    if (w->budget == 0)
        return SHMSTORE_ERANGE;
    w->budget--;
    int rc = shmstore__unwrap(&v);
    if (rc == SHMSTORE_ENONE) {
        /* v is the option that is None. */
        return w->fn(w->ctx, w->path, &v);
    }
    if (rc != SHMSTORE_OK)
        return rc;
    const struct shmstore_schema *s = v.schema;
    const struct shmstore_schema_node *n = shmstore__at(&v);
    const char *dot = at == 0 ? "" : ".";
    switch (n->type) {
    case SHMSTORE_T_STRUCT:
    case SHMSTORE_T_TUPLE_STRUCT:
    case SHMSTORE_T_TUPLE:
    case SHMSTORE_T_VARIANT: {
        if (n->first_child == 0)
            return n->type == SHMSTORE_T_VARIANT ? w->fn(w->ctx, w->path, &v) : SHMSTORE_OK;
        uint64_t i = 0;
        for (uint32_t c = n->first_child; c != 0; c = s->nodes[c].next, i++) {
            const struct shmstore_schema_node *f = &s->nodes[c];
            size_t end = f->label != NULL ? shmstore__path_add(w, at, dot, f->label, f->label_len, "")
                                          : shmstore__path_index(w, at, dot, i, "");
            if (end == 0)
                return SHMSTORE_ERANGE;
            struct shmstore_value fv = v;
            fv.node = c;
            fv.pos = v.pos + f->offset;
            if ((rc = shmstore__walk(w, fv, end)) != 0)
                return rc;
            w->path[at] = '\0';
        }
        return SHMSTORE_OK;
    }
    case SHMSTORE_T_ENUM:
    case SHMSTORE_T_RESULT: {
        uint32_t c;
        if ((rc = shmstore__variant(&v, &c)) != SHMSTORE_OK)
            return rc;
        size_t end = shmstore__path_add(w, at, dot, s->nodes[c].label, s->nodes[c].label_len, "");
        if (end == 0)
            return SHMSTORE_ERANGE;
        struct shmstore_value fv = v;
        fv.node = c;
        rc = shmstore__walk(w, fv, end);
        w->path[at] = '\0';
        return rc;
    }
    case SHMSTORE_T_ARRAY:
    case SHMSTORE_T_VEC:
    case SHMSTORE_T_BOX_SLICE: {
        const struct shmstore_schema_node *e = &s->nodes[n->first_child];
        size_t start = v.pos;
        uint64_t count = n->count;
        if (n->type != SHMSTORE_T_ARRAY &&
            (rc = shmstore__elements(&v, e, &start, &count)) != SHMSTORE_OK)
            return rc;
        for (uint64_t i = 0; i < count; i++) {
            size_t end = shmstore__path_index(w, at, "[", i, "]");
            if (end == 0)
                return SHMSTORE_ERANGE;
            struct shmstore_value ev = v;
            ev.node = n->first_child;
            ev.pos = start + (size_t)i * e->size;
            if ((rc = shmstore__walk(w, ev, end)) != 0)
                return rc;
            w->path[at] = '\0';
        }
        return SHMSTORE_OK;
    }
    case SHMSTORE_T_HASH_MAP:
    case SHMSTORE_T_BTREE_MAP:
    case SHMSTORE_T_HASH_SET:
    case SHMSTORE_T_BTREE_SET: {
        /* A map whose keys a path cannot name is a leaf. */
        if (shmstore__key_lit(s->nodes[n->first_child].type) == 0)
            return w->fn(w->ctx, w->path, &v);
        struct shmstore__map m;
        struct shmstore__walk_map e = {w, &m, at,
                                       n->type == SHMSTORE_T_HASH_SET ||
                                           n->type == SHMSTORE_T_BTREE_SET};
        return shmstore__map_entries(&m, &v, &w->budget, shmstore__walk_entry, &e);
    }
    default:
        return w->fn(w->ctx, w->path, &v);
    }
}

int shmstore_visit(const struct shmstore_value *value,
                   int (*fn)(void *ctx, const char *path, const struct shmstore_value *leaf),
                   void *ctx)
{
    if (value == NULL || fn == NULL || value->schema == NULL ||
        value->node >= value->schema->node_count)
        return SHMSTORE_EINVAL;
    struct shmstore__walk *w = (struct shmstore__walk *)malloc(sizeof *w);
    if (w == NULL)
        return SHMSTORE_ESYSTEM;
    w->fn = fn;
    w->ctx = ctx;
    w->budget = (value->len > (UINT64_MAX - (UINT64_C(1) << 20)) / 32)
                    ? UINT64_MAX
                    : 32 * (uint64_t)value->len + (UINT64_C(1) << 20);
    w->path[0] = '\0';
    int rc = shmstore__walk(w, *value, 0);
    free(w);
    return rc;
}

#endif /* SHMSTORE_IMPLEMENTATION */
