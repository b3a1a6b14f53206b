/*
 * Validates a segment's header with include/shmstore.h, as a reader does
 * before it reads anything, and says what it found.
 *
 * usage: validate SHMID
 *
 * Attaches segment SHMID read-only and validates it at once (it does not
 * wait for a creator). Prints one line:
 *
 *     valid kind=K slots=N data_offset=D slot_stride=S value_size=V name_len=L
 *     refused code=C: MESSAGE: DETAIL (found X)
 *
 * A region's line ends in " rkyv_format=ok" if its type_extra is
 * SHMSTORE_RKYV_FORMAT, " rkyv_format=other" if not.
 *
 * Exit status: 0 if valid, 2 on bad usage, 3 if refused, 4 if a system call
 * fails.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define SHMSTORE_IMPLEMENTATION
#include "shmstore.h"
#include "target.h"

int main(int argc, char **argv)
{
    long long id;
    if (argc != 2 || !parse_long(argv[1], 10, 0, INT32_MAX, &id)) {
        fprintf(stderr, "usage: validate SHMID\n");
        return EXIT_USAGE;
    }
    struct shmstore_object obj;
    int rc = shmstore_attach_id((int)id, NULL, &obj);
    if (rc != SHMSTORE_OK)
        return report_error("validate", "attach", rc, &obj);
    rc = shmstore_validate(&obj);
    int status = 0;
    if (rc == SHMSTORE_OK) {
        printf("valid kind=%" PRIu32 " slots=%" PRIu32 " data_offset=%" PRIu64
               " slot_stride=%" PRIu64 " value_size=%" PRIu32 " name_len=%" PRIu32,
               obj.kind, obj.slot_count, obj.data_offset, obj.slot_stride, obj.value_size,
               obj.name_len);
        if (obj.kind == SHMSTORE_KIND_REGION)
            printf(" rkyv_format=%s", obj.type_extra == SHMSTORE_RKYV_FORMAT ? "ok" : "other");
        putchar('\n');
    } else if (rc == SHMSTORE_ESYSTEM) {
        status = report_error("validate", "validate", rc, &obj);
    } else {
        printf("refused code=%d: %s: %s (found %" PRIu64 ")\n", rc, shmstore_strerror(rc),
               obj.detail ? obj.detail : "?", obj.detail_value);
        status = EXIT_REFUSED;
    }
    if (fflush(stdout) != 0 && status == 0)
        status = EXIT_SYSTEM;
    if (shmstore_close(&obj) != SHMSTORE_OK)
        return report_error("validate", "close", SHMSTORE_ESYSTEM, &obj);
    return status;
}
