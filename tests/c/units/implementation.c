/*
 * The one translation unit of a program that compiles shmstore.h's
 * implementation (with declarations.c). The implementation needs
 * POSIX.1-2008, asked for before any system header is included.
 */
#define _POSIX_C_SOURCE 200809L
#define SHMSTORE_IMPLEMENTATION
#include "shmstore.h"
