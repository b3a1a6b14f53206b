/*
 * Prints the keys of a name's sequence as include/shmstore.h derives them
 * (FORMAT.md, "Names").
 *
 * usage: name_keys NAME
 *
 * Prints the 8 keys, one a line, as unsigned hexadecimal (0x8bcb4d9b), in
 * the sequence's order. Exit status: 0, or 2 on bad usage or an invalid
 * name.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "shmstore.h"
#include "target.h"

int main(int argc, char **argv)
{
    if (argc != 2 || !shmstore_name_is_valid(argv[1], strlen(argv[1]))) {
        fprintf(stderr, "usage: name_keys NAME (1 to 128 bytes of UTF-8, no control character)\n");
        return EXIT_USAGE;
    }
    for (unsigned i = 0; i < SHMSTORE_NAME_PROBES; i++)
        printf("%#010" PRIx32 "\n", (uint32_t)shmstore_name_key(argv[1], strlen(argv[1]), i));
    return fflush(stdout) == 0 ? 0 : EXIT_SYSTEM;
}
