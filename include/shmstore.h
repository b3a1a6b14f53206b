/*
 * shmstore.h: read shmstore objects (on-segment format version 5) from C.
 *
 * A single C11 header; every function is static inline, so there is
 * nothing to link. It attaches segments read-only (SHM_RDONLY) and never
 * writes a byte of them: it reads a SharedCell's value with the lock-free
 * protocol of FORMAT.md ("Reading a cell") and copies a SharedRegion's
 * current rkyv archive ("Reading a region by copying"). It does not take the
 * writers' mutex, pin region buffers or wait for changes.
 *
 *     #include "shmstore.h"
 *
 *     struct shmstore_object obj;
 *     int rc = shmstore_open_name("acme/counter", &obj);
 *     if (rc == SHMSTORE_OK)
 *         rc = shmstore_check_type(&obj, SHMSTORE_KIND_CELL, sizeof(uint64_t),
 *                                  _Alignof(uint64_t), NULL, 0);
 *     if (rc != SHMSTORE_OK) {
 *         fprintf(stderr, "%s\n", shmstore_strerror(rc));
 *         shmstore_close(&obj);
 *         return 1;
 *     }
 *     uint64_t value, version;
 *     shmstore_cell_read(&obj, &value, sizeof value, &version);
 *     shmstore_close(&obj);
 *
 * Every function returns SHMSTORE_OK (0) or an error code (enum
 * shmstore_error); shmstore_strerror() says what a code means. The object
 * keeps what the last failure was about: `sys_call` and `sys_errno` for
 * SHMSTORE_ESYSTEM (errno is left set too), `detail` and `detail_value`
 * for a refused header, also after a failed open.
 *
 * The format is little-endian; this header refuses to compile on a
 * big-endian target. Define SHMSTORE_INIT_TIMEOUT_MS before including it to
 * change how long an open waits for a creator to finish (5000 ms by
 * default), and SHMSTORE_ABI_LIBC if the C library is neither glibc nor
 * musl as detected below.
 *
 * As shmstore does, it opens only segments whose owner and creator are this
 * process's effective user or root (SHMSTORE_EFOREIGN otherwise; a name skips
 * such a segment): another user could put a segment of its own at a known
 * key or at a name's key. Define SHMSTORE_TRUST_GROUP to a group id to also
 * trust the members of that group in a segment of that group, or
 * SHMSTORE_ALLOW_FOREIGN_OWNER to 1 to open any user's segments.
 */
#ifndef SHMSTORE_H
#define SHMSTORE_H

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <poll.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <sys/types.h>
#include <unistd.h>

#ifdef SHMSTORE_TRUST_GROUP
#include <grp.h>
#include <pwd.h>
#endif

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "shmstore's on-segment format is little-endian; big-endian targets are not supported"
#endif

_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2,
               "64-bit atomic loads must be lock-free: a lock (or a compare-and-swap) "
               "would write to a read-only attachment");

/* ------------------------------------------------------------------------
 * Constants (FORMAT.md, "Header", "Names", "Region data")
 * --------------------------------------------------------------------- */

/* The first eight bytes of every segment: "shmstore", little-endian. */
#define SHMSTORE_MAGIC UINT64_C(0x65726f74736d6873)

/* A region's `type_extra` when its archives are in the rkyv format FORMAT.md
 * ("Region archives") describes: rkyv 0.8, little-endian, 32-bit relative
 * pointers and lengths, aligned. A program that decodes archives by those
 * rules refuses a region with another `type_extra`. */
#define SHMSTORE_RKYV_FORMAT UINT64_C(0x72010404)

enum {
    SHMSTORE_FORMAT_VERSION = 5,
    SHMSTORE_HEADER_SIZE = 512,
    SHMSTORE_TYPE_NAME_MAX = 128,
    SHMSTORE_NAME_MAX = 128,
    SHMSTORE_NAME_PROBES = 8,
    SHMSTORE_MUTEX_ROOM = 64,
    SHMSTORE_MIN_SLOTS = 2,
    SHMSTORE_MAX_SLOTS = 64,
    SHMSTORE_MAX_ALIGN = 4096,

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
    unsigned char reserved0[12];
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

#ifndef SHMSTORE_INIT_TIMEOUT_MS
#define SHMSTORE_INIT_TIMEOUT_MS 5000u
#endif

#ifndef SHMSTORE_ALLOW_FOREIGN_OWNER
#define SHMSTORE_ALLOW_FOREIGN_OWNER 0
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
    /* The caller's buffer is smaller than the archive (its length is
     * returned). */
    SHMSTORE_ETOOSMALL = 12,
    /* The segment's owner or creator is another user than this process's
     * effective user and root (see SHMSTORE_TRUST_GROUP and
     * SHMSTORE_ALLOW_FOREIGN_OWNER above). */
    SHMSTORE_EFOREIGN = 13,
};

/* A sentence for each error code. */
static inline const char *shmstore_strerror(int code)
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
        return "the segment's header is corrupt";
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
        return "the buffer is smaller than the archive";
    case SHMSTORE_EFOREIGN:
        return "the segment belongs to another user (neither this one nor root)";
    default:
        return "unknown shmstore error";
    }
}

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
    /* IPC_STAT: the real size, the creating process and the creation time. */
    size_t size;
    pid_t cpid;
    time_t ctime;

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

    /* The last failure: which system call and its errno (SHMSTORE_ESYSTEM),
     * or which check refused the header and the value it found. */
    const char *sys_call;
    int sys_errno;
    const char *detail;
    uint64_t detail_value;
};

static inline const struct shmstore_header *shmstore_header_of(const struct shmstore_object *obj)
{
    return (const struct shmstore_header *)(const void *)obj->base;
}

static inline const struct shmstore_region_control *
shmstore_region_control_of(const struct shmstore_object *obj)
{
    return (const struct shmstore_region_control *)(const void *)(obj->base +
                                                                   SHMSTORE_REGION_CONTROL_OFFSET);
}

static inline int shmstore__refuse(struct shmstore_object *obj, int code, const char *detail,
                                   uint64_t value)
{
    obj->detail = detail;
    obj->detail_value = value;
    return code;
}

static inline int shmstore__system(struct shmstore_object *obj, const char *call, int err)
{
    obj->sys_call = call;
    obj->sys_errno = err;
    obj->detail = call;
    obj->detail_value = (uint64_t)(unsigned)err;
    errno = err;
    return SHMSTORE_ESYSTEM;
}

/* Detach (if attached). The error fields are kept, so that a caller can
 * still report why an open failed. */
static inline int shmstore_close(struct shmstore_object *obj)
{
    int rc = SHMSTORE_OK;
    if (obj->base != NULL && shmdt(obj->base) != 0)
        rc = shmstore__system(obj, "shmdt", errno);
    obj->base = NULL;
    obj->validated = 0;
    return rc;
}

/* Milliseconds of a monotonic-enough clock (C11's timespec_get). */
static inline uint64_t shmstore__now_ms(void)
{
    struct timespec ts;
    if (timespec_get(&ts, TIME_UTC) != TIME_UTC)
        return 0;
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Back off in a retry loop: spin a little, then yield the processor. */
static inline void shmstore__backoff(unsigned round)
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
static inline int shmstore__stat_lives(const char *path)
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
 * in /proc/PID/stat while its other threads run.) A simplification of
 * FORMAT.md's rule (which also compares start times): it serves only to stop
 * waiting early for a creator that died, and every wait is bounded anyway. */
static inline int shmstore__alive(pid_t pid)
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

#ifdef SHMSTORE_TRUST_GROUP
/* Whether the user database puts user `uid` in group `gid`, as its primary
 * group or a supplementary one. It calls getpwuid and getgrgid, which are
 * not thread-safe. */
static inline int shmstore__user_in_group(uid_t uid, gid_t gid)
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
#endif

/* Whether user `uid`, the owner or the creator of the segment `ds`
 * describes, is trusted: this process's effective user, root, or (with
 * SHMSTORE_TRUST_GROUP) a member of that group in a segment of that group,
 * the creator counting as one when the kernel recorded the group as its
 * group (cgid). */
static inline int shmstore__trusted_user(uid_t uid, const struct shmid_ds *ds)
{
    if (uid == geteuid() || uid == 0)
        return 1;
#ifdef SHMSTORE_TRUST_GROUP
    const gid_t group = (gid_t)(SHMSTORE_TRUST_GROUP);
    if (ds->shm_perm.gid == group &&
        ((uid == ds->shm_perm.cuid && ds->shm_perm.cgid == group) ||
         shmstore__user_in_group(uid, group)))
        return 1;
#else
    (void)ds;
#endif
    return 0;
}

/* Attach segment `id` read-only and learn its real size, without looking at
 * its bytes. A segment owned or created by another user is refused
 * (SHMSTORE_EFOREIGN, the user's id in `detail_value`) before it is
 * attached, unless SHMSTORE_ALLOW_FOREIGN_OWNER is 1. */
static inline int shmstore_attach_id(int id, struct shmstore_object *out)
{
    memset(out, 0, sizeof *out);
    out->id = id;
    out->key = IPC_PRIVATE;
    if (id < 0)
        return shmstore__refuse(out, SHMSTORE_EINVAL, "negative segment id", 0);
    struct shmid_ds ds;
    if (shmctl(id, IPC_STAT, &ds) != 0) {
        int err = errno;
        if (err == EINVAL || err == EIDRM) {
            out->sys_call = "shmctl(IPC_STAT)";
            out->sys_errno = err;
            return shmstore__refuse(out, SHMSTORE_ENOTFOUND, "no segment has this id",
                                    (uint64_t)id);
        }
        return shmstore__system(out, "shmctl(IPC_STAT)", err);
    }
    if (!SHMSTORE_ALLOW_FOREIGN_OWNER) {
        int owner = shmstore__trusted_user(ds.shm_perm.uid, &ds);
        if (!owner || !shmstore__trusted_user(ds.shm_perm.cuid, &ds))
            return shmstore__refuse(out, SHMSTORE_EFOREIGN,
                                    owner ? "the segment was created by another user"
                                          : "the segment is owned by another user",
                                    owner ? (uint64_t)ds.shm_perm.cuid
                                          : (uint64_t)ds.shm_perm.uid);
    }
    void *p = shmat(id, NULL, SHM_RDONLY);
    if (p == (void *)-1) {
        int err = errno;
        if (err == EINVAL || err == EIDRM) {
            out->sys_call = "shmat";
            out->sys_errno = err;
            return shmstore__refuse(out, SHMSTORE_ENOTFOUND, "no segment has this id",
                                    (uint64_t)id);
        }
        return shmstore__system(out, "shmat", err);
    }
    out->base = p;
    out->size = (size_t)ds.shm_segsz;
    out->cpid = ds.shm_cpid;
    out->ctime = ds.shm_ctime;
    return SHMSTORE_OK;
}

/* Wait, at most `timeout_ms`, while the attached segment looks like one
 * being created (FORMAT.md, "Creation"): `state` 0 or 1 with `magic` 0 or
 * the magic, and its creator (shm_cpid) alive. A segment that is all but
 * zero and more than 2 seconds old is not being created. Returns
 * SHMSTORE_OK when there is no more reason to wait, SHMSTORE_ENOTREADY if
 * the time ran out; shmstore_validate() says what the segment is. */
static inline int shmstore_wait_ready(struct shmstore_object *obj, unsigned timeout_ms)
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
        if (magic == 0 && state == SHMSTORE_STATE_FRESH && time(NULL) > obj->ctime + 2)
            return SHMSTORE_OK;
        if (!shmstore__alive(obj->cpid))
            return SHMSTORE_OK;
        if (shmstore__now_ms() - start >= timeout_ms)
            return shmstore__refuse(obj, SHMSTORE_ENOTREADY, "the creator did not finish in time",
                                    state);
        poll(NULL, 0, 1);
    }
}

static inline int shmstore__is_pow2(uint64_t x) { return x != 0 && (x & (x - 1)) == 0; }

/* Check the attached segment's header: everything FORMAT.md has a reader
 * check, read once each and kept in `obj`. Nothing but `magic` and `state`
 * is read before `state` reads READY (acquire). */
static inline int shmstore_validate(struct shmstore_object *obj)
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
        return shmstore__refuse(obj, SHMSTORE_EFORMAT, "format version is not 5", version);
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
        if (data_offset < SHMSTORE_HEADER_SIZE || data_offset % word_align != 0)
            return shmstore__refuse(obj, SHMSTORE_ECORRUPT,
                                    "a cell's data offset is below the header or misaligned",
                                    data_offset);
        if (stride == 0 || stride % 8 != 0 || stride < value_size)
            return shmstore__refuse(obj, SHMSTORE_ECORRUPT,
                                    "slot stride is not a multiple of 8 holding the value", stride);
    } else {
        /* Buffers start on cache lines and at the root's alignment. */
        uint64_t unit = align > SHMSTORE_REGION_BUFFER_ALIGN ? align : SHMSTORE_REGION_BUFFER_ALIGN;
        if (data_offset < SHMSTORE_REGION_DATA_MIN || data_offset % unit != 0)
            return shmstore__refuse(obj, SHMSTORE_ECORRUPT,
                                    "a region's data offset is below its control block or not a "
                                    "multiple of max(64, value_align)",
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
    obj->slot_count = count;
    obj->data_offset = data_offset;
    obj->slot_stride = stride;
    obj->used_len = used_len;
    obj->validated = 1;
    obj->detail = NULL;
    obj->detail_value = 0;
    return SHMSTORE_OK;
}

/* After a successful attach: wait for the creator, validate, and detach on
 * failure. */
static inline int shmstore__finish_open(struct shmstore_object *obj)
{
    int rc = shmstore_wait_ready(obj, SHMSTORE_INIT_TIMEOUT_MS);
    if (rc == SHMSTORE_OK)
        rc = shmstore_validate(obj);
    if (rc != SHMSTORE_OK) {
        const char *detail = obj->detail;
        uint64_t value = obj->detail_value;
        shmstore_close(obj);
        obj->detail = detail;
        obj->detail_value = value;
    }
    return rc;
}

/* Open the object in segment `id`: attach read-only, wait (bounded) for its
 * creator to finish, validate. */
static inline int shmstore_open_id(int id, struct shmstore_object *out)
{
    int rc = shmstore_attach_id(id, out);
    if (rc != SHMSTORE_OK)
        return rc;
    return shmstore__finish_open(out);
}

/* Open the object at `key` (shmget with no flags: it must exist). */
static inline int shmstore_open_key(key_t key, struct shmstore_object *out)
{
    memset(out, 0, sizeof *out);
    out->id = -1;
    if (key == IPC_PRIVATE)
        return shmstore__refuse(out, SHMSTORE_EINVAL, "IPC_PRIVATE names no existing segment", 0);
    int id = shmget(key, 0, 0);
    if (id < 0) {
        int err = errno;
        if (err == ENOENT) {
            out->sys_call = "shmget";
            out->sys_errno = err;
            return shmstore__refuse(out, SHMSTORE_ENOTFOUND, "no segment at the key",
                                    (uint64_t)(uint32_t)key);
        }
        return shmstore__system(out, "shmget", err);
    }
    int rc = shmstore_attach_id(id, out);
    out->key = key;
    if (rc != SHMSTORE_OK)
        return rc;
    return shmstore__finish_open(out);
}

/* ------------------------------------------------------------------------
 * Names (FORMAT.md, "Names")
 * --------------------------------------------------------------------- */

/* Whether `name` (`len` bytes) can name an object: 1 to 128 bytes of
 * well-formed UTF-8 without control characters (U+0000-U+001F,
 * U+007F-U+009F). */
static inline int shmstore_name_is_valid(const char *name, size_t len)
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

/* Key `i` (0 to 7) of the sequence of `name`: 32-bit FNV-1a over
 * "shmstore:", the name's bytes and the byte i, with the top bit set. */
static inline key_t shmstore_name_key(const char *name, size_t len, unsigned i)
{
    static const char prefix[] = "shmstore:";
    uint32_t h = UINT32_C(0x811c9dc5);
    for (size_t k = 0; k < sizeof prefix - 1; k++)
        h = (h ^ (unsigned char)prefix[k]) * UINT32_C(0x01000193);
    for (size_t k = 0; k < len; k++)
        h = (h ^ (unsigned char)name[k]) * UINT32_C(0x01000193);
    h = (h ^ (unsigned char)i) * UINT32_C(0x01000193);
    h |= UINT32_C(0x80000000);
    /* h - 2^32, computed without an out-of-range conversion. */
    return (key_t)(-(int32_t)(~h) - 1);
}

/* What key `key` holds for the name: 1 the object (left attached in `out`),
 * 0 nothing, -1 another segment; or a negative error code below -1. */
enum { SHMSTORE__HOLDS_THIS = 1, SHMSTORE__HOLDS_NOTHING = 0, SHMSTORE__HOLDS_OTHER = -1 };

static inline int shmstore__holds(key_t key, const char *name, size_t len,
                                  struct shmstore_object *out, int *rc)
{
    *rc = SHMSTORE_OK;
    memset(out, 0, sizeof *out);
    int id = shmget(key, 0, 0);
    if (id < 0) {
        if (errno == ENOENT)
            return SHMSTORE__HOLDS_NOTHING;
        if (errno == EACCES)
            return SHMSTORE__HOLDS_OTHER;
        *rc = shmstore__system(out, "shmget", errno);
        return SHMSTORE__HOLDS_OTHER;
    }
    int arc = shmstore_attach_id(id, out);
    out->key = key;
    if (arc == SHMSTORE_ENOTFOUND)
        return SHMSTORE__HOLDS_NOTHING; /* removed meanwhile */
    if ((arc == SHMSTORE_ESYSTEM && out->sys_errno == EACCES) || arc == SHMSTORE_EFOREIGN)
        return SHMSTORE__HOLDS_OTHER; /* a segment this process may not open */
    if (arc != SHMSTORE_OK) {
        *rc = arc;
        return SHMSTORE__HOLDS_OTHER;
    }
    if (out->size < SHMSTORE_HEADER_SIZE || ((uintptr_t)out->base & 63u) != 0) {
        shmstore_close(out);
        return SHMSTORE__HOLDS_OTHER;
    }
    const struct shmstore_header *h = shmstore_header_of(out);
    uint64_t start = shmstore__now_ms();
    for (;;) {
        /* The name is written before the magic (release). */
        uint64_t magic = atomic_load_explicit(&h->magic, memory_order_acquire);
        if (magic != SHMSTORE_MAGIC) {
            uint32_t state = atomic_load_explicit(&h->state, memory_order_acquire);
            if (magic != 0 || state > SHMSTORE_STATE_READY) {
                shmstore_close(out);
                return SHMSTORE__HOLDS_OTHER;
            }
            /* No magic yet. READY (release) comes after the magic: the
             * creator finished between the two loads. Else a creator at its
             * first instructions (its state may be seen before its magic):
             * wait while it lives and the segment is less than 2 seconds
             * old. One judged dead may have finished and exited since the
             * loads above. Either way, look at the magic once more. */
            if (state != SHMSTORE_STATE_READY && shmstore__alive(out->cpid) &&
                time(NULL) <= out->ctime + 2 &&
                shmstore__now_ms() - start < SHMSTORE_INIT_TIMEOUT_MS) {
                poll(NULL, 0, 1);
                continue;
            }
            if (atomic_load_explicit(&h->magic, memory_order_acquire) != SHMSTORE_MAGIC) {
                shmstore_close(out);
                return SHMSTORE__HOLDS_OTHER;
            }
        }
        uint32_t stored = atomic_load_explicit(&h->name_len, memory_order_relaxed);
        int same = stored == len;
        for (size_t k = 0; same && k < len; k++)
            same = atomic_load_explicit(&h->name[k], memory_order_relaxed) ==
                   (unsigned char)name[k];
        if (same)
            return SHMSTORE__HOLDS_THIS;
        shmstore_close(out);
        return SHMSTORE__HOLDS_OTHER;
    }
}

/* Open the object named `name` (a NUL-terminated string): try the 8 keys of
 * its sequence in order, skip keys with no segment, segments this process
 * may not open (another user's, or no permission), segments of another name
 * or of none and segments that are not shmstore's, and open the first one
 * that holds the name, on the attachment that showed the name. */
static inline int shmstore_open_name(const char *name, struct shmstore_object *out)
{
    memset(out, 0, sizeof *out);
    out->id = -1;
    size_t len = 0;
    while (name != NULL && len <= SHMSTORE_NAME_MAX && name[len] != '\0')
        len++;
    if (!shmstore_name_is_valid(name, len))
        return shmstore__refuse(out, SHMSTORE_EINVAL,
                                "a name is 1 to 128 bytes of UTF-8 without control characters",
                                len);
    int others = 0;
    for (unsigned i = 0; i < SHMSTORE_NAME_PROBES; i++) {
        int rc;
        int holds = shmstore__holds(shmstore_name_key(name, len, i), name, len, out, &rc);
        if (rc != SHMSTORE_OK)
            return rc;
        if (holds == SHMSTORE__HOLDS_THIS)
            return shmstore__finish_open(out);
        others += holds == SHMSTORE__HOLDS_OTHER;
    }
    memset(out, 0, sizeof *out);
    out->id = -1;
    if (others == SHMSTORE_NAME_PROBES)
        return shmstore__refuse(out, SHMSTORE_ENAMETAKEN, "every key of the name is taken", 0);
    return shmstore__refuse(out, SHMSTORE_ENOTFOUND, "no object has this name", 0);
}

/* ------------------------------------------------------------------------
 * Types (FORMAT.md, "Type fingerprint")
 * --------------------------------------------------------------------- */

static inline uint64_t shmstore__fnv64(uint64_t h, const void *bytes, size_t n)
{
    const unsigned char *p = (const unsigned char *)bytes;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= UINT64_C(0x100000001b3);
    }
    return h;
}

static inline uint64_t shmstore__fnv64_le(uint64_t h, uint64_t v, size_t n)
{
    unsigned char b[8];
    for (size_t i = 0; i < n; i++)
        b[i] = (unsigned char)(v >> (8 * i));
    return shmstore__fnv64(h, b, n);
}

/* The type fingerprint of a type described by these fields (`type_name`
 * being the whole name, `name_len` bytes). */
static inline uint64_t shmstore_fingerprint(uint32_t kind, const char *type_name, size_t name_len,
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

/* Whether the validated header's fingerprint matches its own fields: 1 it
 * does, 0 it does not, -1 unknown (a type name of 125 bytes or more may have
 * been cut to fit, and the whole name is hashed). */
static inline int shmstore_fingerprint_matches(const struct shmstore_object *obj)
{
    if (!obj->validated || obj->type_name_len >= SHMSTORE_TYPE_NAME_MAX - 3)
        return -1;
    return shmstore_fingerprint(obj->kind, obj->type_name, obj->type_name_len, obj->value_size,
                                obj->value_align, obj->schema_version,
                                obj->type_extra) == obj->type_hash;
}

/* Check that the validated object is of `kind` (SHMSTORE_KIND_CELL or
 * SHMSTORE_KIND_REGION) with values of `size` bytes aligned to `align`.
 * With a `type_name` (NUL-terminated, the whole name as the writer gave it),
 * also check the fingerprint of that name with `schema_version`, the size
 * and alignment, and the stored `type_extra`. The stored `type_extra` itself
 * is not checked (for regions, rkyv's format word, which C does not
 * interpret): a program that decodes a region's archives compares it with
 * SHMSTORE_RKYV_FORMAT. */
static inline int shmstore_check_type(struct shmstore_object *obj, uint32_t kind, size_t size,
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
static inline void shmstore__load_words(unsigned char *dst, const unsigned char *src, size_t len)
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

/* The current version: a cell's `seq`, a region's `current` >> 8 (acquire). */
static inline int shmstore_version(const struct shmstore_object *obj, uint64_t *version)
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

/* Read a cell's current value into `out` (`size` bytes, the value's size):
 * the lock-free seqlock over a ring of slots of FORMAT.md ("Reading a
 * cell"). The copy returned is never torn; `version` (if not NULL) gets its
 * version. */
static inline int shmstore_cell_read(struct shmstore_object *obj, void *out, size_t size,
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
        shmstore__backoff(round);
    }
}

/* The most bytes a region's archive can have: its buffers' stride. */
static inline size_t shmstore_region_capacity(const struct shmstore_object *obj)
{
    return obj->validated && obj->kind == SHMSTORE_KIND_REGION ? (size_t)obj->slot_stride : 0;
}

/* Copy a region's current archive into `buf` (`cap` bytes; any alignment,
 * though rkyv reads it in place only at max(16, value_align), since an
 * archive aligns its parts relative to its start): FORMAT.md, "Reading a
 * region by copying". `len` gets the archive's length and `version` (if not
 * NULL) its version. A copy that a writer may have overwritten meanwhile is
 * made again. The bytes are an rkyv archive that C does not check: validate it
 * before trusting it. SHMSTORE_ETOOSMALL sets `len` to the length needed
 * (at most shmstore_region_capacity()). */
static inline int shmstore_region_copy(struct shmstore_object *obj, void *buf, size_t cap,
                                       size_t *len, uint64_t *version)
{
    if (!obj->validated || (buf == NULL && cap != 0) || len == NULL)
        return shmstore__refuse(obj, SHMSTORE_EINVAL, "not a validated object", 0);
    if (obj->kind != SHMSTORE_KIND_REGION)
        return shmstore__refuse(obj, SHMSTORE_ETYPE, "not a region", obj->kind);
    const struct shmstore_region_control *rc = shmstore_region_control_of(obj);
    for (unsigned round = 0;; round++) {
        uint64_t current = atomic_load_explicit(&rc->current, memory_order_acquire);
        if (SHMSTORE_CURRENT_VERSION(current) == 0)
            return SHMSTORE_ENOTHING;
        unsigned b = SHMSTORE_CURRENT_BUFFER(current);
        if (b >= obj->slot_count)
            return shmstore__refuse(obj, SHMSTORE_ECORRUPT, "the current buffer is out of range",
                                    b);
        uint64_t n = atomic_load_explicit(&rc->buffers[b].len, memory_order_acquire);
        if (n > obj->slot_stride)
            return shmstore__refuse(obj, SHMSTORE_ECORRUPT, "an archive longer than its buffer",
                                    n);
        if (n > cap) {
            if (atomic_load_explicit(&rc->current, memory_order_acquire) != current)
                continue; /* the length may be a later archive's */
            *len = (size_t)n;
            return SHMSTORE_ETOOSMALL;
        }
        shmstore__load_words((unsigned char *)buf,
                             obj->base + obj->data_offset + (size_t)b * obj->slot_stride,
                             (size_t)n);
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&rc->current, memory_order_relaxed) == current) {
            *len = (size_t)n;
            if (version != NULL)
                *version = SHMSTORE_CURRENT_VERSION(current);
            return SHMSTORE_OK;
        }
        shmstore__backoff(round);
    }
}

#endif /* SHMSTORE_H */
