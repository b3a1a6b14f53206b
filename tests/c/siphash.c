/*
 * Prints SipHash-2-4 as include/shmstore.h computes it, on the reference
 * vectors' inputs: the key 00 01 ... 0f and the messages 00 01 ... (n - 1)
 * for n from 0 to 63.
 *
 * usage: siphash
 *
 * Prints 64 lines, "N 0xHASH" (the hash as unsigned hexadecimal, 16
 * digits). Exit status: 0, or 2 on bad usage.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>

#define SHMSTORE_IMPLEMENTATION
#include "shmstore.h"
#include "target.h"

int main(int argc, char **argv)
{
    (void)argv;
    if (argc != 1) {
        fprintf(stderr, "usage: siphash\n");
        return EXIT_USAGE;
    }
    uint8_t key[SHMSTORE_SECRET_LEN], message[64];
    for (unsigned i = 0; i < sizeof key; i++)
        key[i] = (uint8_t)i;
    for (unsigned i = 0; i < sizeof message; i++)
        message[i] = (uint8_t)i;
    for (size_t n = 0; n < sizeof message; n++)
        printf("%zu %#018" PRIx64 "\n", n, shmstore_siphash24(key, message, n));
    return fflush(stdout) == 0 ? 0 : EXIT_SYSTEM;
}
