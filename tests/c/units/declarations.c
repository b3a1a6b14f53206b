/*
 * A translation unit that includes shmstore.h without its implementation,
 * and nothing else: it must compile as strict C11 (and as C++), and link
 * with the one unit that compiles the implementation (implementation.c).
 *
 * usage: declarations NAME
 *
 * Opens the cell of [u64; 4] named NAME with the default options, but no
 * wait for a creator, and reads it. Exit status: 0 if it holds 2, 7, 1, 8;
 * 1 on bad usage; 2 if the default options are not the documented ones; 3
 * if it holds something else; 10 + the error code if a call fails.
 */
#include "shmstore.h"

#ifdef __cplusplus
#define ALIGNOF(type) alignof(type)
#else
#define ALIGNOF(type) _Alignof(type)
#endif

int main(int argc, char **argv)
{
    if (argc != 2)
        return 1;
    struct shmstore_options opts = shmstore_options_default();
    if (opts.init_timeout_ms != 5000 || opts.trust_user || opts.trust_group ||
        opts.allow_foreign_owner)
        return 2;
    opts.init_timeout_ms = 0;
    struct shmstore_object obj;
    int rc = shmstore_open_name(argv[1], &opts, &obj);
    if (rc == SHMSTORE_OK)
        rc = shmstore_check_type(&obj, SHMSTORE_KIND_CELL, 4 * sizeof(uint64_t),
                                 ALIGNOF(uint64_t), NULL, 0);
    uint64_t words[4] = {0}, version = 0;
    if (rc == SHMSTORE_OK)
        rc = shmstore_cell_read(&obj, words, sizeof words, &version);
    if (shmstore_close(&obj) != SHMSTORE_OK && rc == SHMSTORE_OK)
        rc = SHMSTORE_ESYSTEM;
    if (rc != SHMSTORE_OK)
        return 10 + rc;
    return words[0] == 2 && words[1] == 7 && words[2] == 1 && words[3] == 8 ? 0 : 3;
}
