/*
 * Read an object through the schema it stores, through include/shmstore.h.
 *
 * usage: schema_object [OPTIONS] SHMID|--key KEY|--name NAME [QUERY...]
 *
 * Opens the object (tests/c/target.h), copies its schema
 * (shmstore_schema) and prints it as `schema=TEXT`, loads it
 * (shmstore_schema_load: parsed, and checked against the header), reads
 * the value (shmstore_read_value) and prints `version=V`, every leaf and
 * each QUERY's answer as tests/c/schema_print.h says. A failure is
 * reported on stderr with the exit status of target.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SHMSTORE_IMPLEMENTATION
#include "shmstore.h"
#include "schema_print.h"
#include "target.h"

static const char *const PROG = "schema_object";

int main(int argc, char **argv)
{
    int i = 1;
    struct shmstore_object obj;
    int status = open_target(PROG, argc, argv, &i, &obj);
    if (status != 0)
        return status;
    static char text[SHMSTORE_SCHEMA_MAX];
    size_t len;
    int rc = shmstore_schema(&obj, text, sizeof text, &len);
    if (rc != SHMSTORE_OK)
        return report_error(PROG, "schema", rc, &obj);
    printf("schema=%.*s\n", (int)len, text);
    fflush(stdout);

    struct shmstore_schema schema;
    rc = shmstore_schema_load(&obj, &schema);
    if (rc != SHMSTORE_OK)
        return report_error(PROG, "load", rc, &obj);
    size_t cap = obj.kind == SHMSTORE_KIND_CELL ? obj.value_size : shmstore_region_capacity(&obj);
    unsigned char *buf = malloc(cap != 0 ? cap : 1);
    if (buf == NULL)
        return EXIT_SYSTEM;
    struct shmstore_value value;
    uint64_t version;
    rc = shmstore_read_value(&obj, &schema, buf, cap, &value, &version);
    if (rc != SHMSTORE_OK)
        return report_error(PROG, "read", rc, &obj);
    printf("version=%llu\n", (unsigned long long)version);
    rc = shmstore_visit(&value, visit, NULL);
    for (; i < argc; i++)
        query(&value, argv[i]);
    if (rc != SHMSTORE_OK)
        printf("visit=!%d\n", rc);
    free(buf);
    shmstore_schema_free(&schema);
    shmstore_close(&obj);
    return rc == SHMSTORE_OK ? 0 : EXIT_REFUSED;
}
