/*
 * Prints the keys of a name's sequence as include/shmstore.h derives them
 * (FORMAT.md, "Names"), or in the private namespace of a directory
 * ("Names in a private namespace").
 *
 * usage: name_keys NAME
 *        name_keys --namespace DIR NAME
 *
 * Prints the 8 keys, one a line, as unsigned hexadecimal (0x8bcb4d9b), in
 * the sequence's order. Exit status: 0, 2 on bad usage or an invalid name,
 * 3 if the namespace is refused or has no secret yet, 4 if a system call
 * fails.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define SHMSTORE_IMPLEMENTATION
#include "shmstore.h"
#include "target.h"

int main(int argc, char **argv)
{
    int in_namespace = argc == 4 && strcmp(argv[1], "--namespace") == 0;
    const char *name = argv[argc - 1];
    if ((argc != 2 && !in_namespace) || !shmstore_name_is_valid(name, strlen(name))) {
        fprintf(stderr, "usage: name_keys [--namespace DIR] NAME (1 to 128 bytes of UTF-8, no "
                        "control character)\n");
        return EXIT_USAGE;
    }
    uint8_t secret[SHMSTORE_SECRET_LEN];
    if (in_namespace) {
        struct shmstore_object obj;
        int rc = shmstore_namespace_secret(argv[2], secret, &obj);
        if (rc != SHMSTORE_OK)
            return report_error("name_keys", "namespace", rc, &obj);
    }
    for (unsigned i = 0; i < SHMSTORE_NAME_PROBES; i++) {
        key_t key = in_namespace ? shmstore_name_key_in(secret, name, strlen(name), i)
                                 : shmstore_name_key(name, strlen(name), i);
        printf("%#010" PRIx32 "\n", (uint32_t)key);
    }
    return fflush(stdout) == 0 ? 0 : EXIT_SYSTEM;
}
