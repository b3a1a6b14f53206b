/*
 * Parse a schema and read a value through it, from files:
 *
 *     schema_read cell|region SCHEMA_FILE VALUE_FILE [QUERY...]
 *
 * SCHEMA_FILE holds the schema's text; VALUE_FILE a cell's value (the
 * root's size) or a region's archive. Prints `size=S align=A nodes=N`,
 * then for each QUERY `check:SIZE,ALIGN` the code of shmstore_schema_check
 * against them (`check:SIZE,ALIGN=CODE`), then (unless VALUE_FILE is `-`:
 * parse only), one a line, every leaf shmstore_visit() finds as `PATH=VALUE`,
 * then each QUERY's answer, as tests/c/schema_print.h says; the query
 * `quiet` has the leaves counted, not printed (`leaves=N`). A refused
 * schema prints `refused CODE at POS: WHY` and exits with 3; a value that
 * is not read `root=!CODE`, and a visit that fails, after the leaves it
 * found, `visit=!CODE`: both exit with 4.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SHMSTORE_IMPLEMENTATION
#include "shmstore.h"
#include "schema_print.h"

static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        exit(2);
    }
    size_t cap = 1 << 16, n = 0;
    /* 16-byte aligned, as shmstore_region_copy's callers align archives. */
    unsigned char *buf = aligned_alloc(16, cap);
    for (;;) {
        if (buf == NULL) {
            perror("alloc");
            exit(2);
        }
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap)
            break;
        unsigned char *bigger = aligned_alloc(16, 2 * cap);
        if (bigger != NULL)
            memcpy(bigger, buf, n);
        free(buf);
        buf = bigger;
        cap *= 2;
    }
    fclose(f);
    *len = n;
    return buf;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s cell|region SCHEMA_FILE VALUE_FILE [QUERY...]\n", argv[0]);
        return 2;
    }
    uint32_t kind = strcmp(argv[1], "cell") == 0 ? SHMSTORE_KIND_CELL : SHMSTORE_KIND_REGION;
    size_t text_len, len;
    unsigned char *text = slurp(argv[2], &text_len);
    /* "-": parse only. */
    unsigned char *bytes = strcmp(argv[3], "-") == 0 ? NULL : slurp(argv[3], &len);
    size_t cap = SHMSTORE_SCHEMA_NODES_FOR(text_len);
    struct shmstore_schema_node *nodes = malloc(cap * sizeof *nodes);
    struct shmstore_schema schema;
    int rc = shmstore_schema_parse((const char *)text, text_len, kind, nodes, cap, &schema);
    if (rc != SHMSTORE_OK) {
        printf("refused %d at %zu: %s\n", rc, schema.error_at,
               schema.error != NULL ? schema.error : "?");
        return 3;
    }
    printf("size=%u align=%u nodes=%zu\n", schema.nodes[0].size, schema.nodes[0].align,
           schema.node_count);
    for (int i = 4; i < argc; i++) {
        unsigned size, align;
        if (sscanf(argv[i], "check:%u,%u", &size, &align) == 2)
            printf("%s=%d\n", argv[i], shmstore_schema_check(&schema, size, align));
    }
    if (bytes == NULL)
        return 0;
    struct shmstore_value root;
    rc = shmstore_value_root(&schema, bytes, len, &root);
    if (rc != SHMSTORE_OK) {
        printf("root=!%d\n", rc);
        return 4;
    }
    int quiet = 0;
    for (int i = 4; i < argc; i++)
        quiet |= strcmp(argv[i], "quiet") == 0;
    unsigned long long counted = 0;
    rc = shmstore_visit(&root, visit, quiet ? &counted : NULL);
    if (quiet)
        printf("leaves=%llu\n", counted);
    for (int i = 4; i < argc; i++)
        if (strncmp(argv[i], "check:", 6) != 0 && strcmp(argv[i], "quiet") != 0)
            query(&root, argv[i]);
    if (rc != SHMSTORE_OK) {
        printf("visit=!%d\n", rc);
        return 4;
    }
    free(nodes);
    free(text);
    free(bytes);
    return 0;
}
