/*
 * Printing what a schema reads, shared by the test programs schema_read.c
 * and schema_object.c: each leaf shmstore_visit() finds as `PATH=VALUE`,
 * and the answers to queries as `QUERY=VALUE` or `QUERY=!CODE`. A QUERY is
 * `u64:PATH`, `i64:PATH`, `u128:PATH`, `i128:PATH`, `f64:PATH`,
 * `bool:PATH`, `str:PATH`, `len:PATH`, `variant:PATH` (printed
 * `NAME/TAG`) or `contains:PATH` (`true` or `false`). VALUE is a number (f64 printed with %.17g), `true` or
 * `false`, a string in double quotes with `\` and `"` and bytes outside
 * 0x20-0x7e escaped as \xNN, `None` (an option that is None), a unit
 * variant's name, `()`, or `<type N>` for a map or set the visitor does
 * not go into.
 * The visitor's context, if not NULL, counts the leaves instead.
 */
#ifndef SHMSTORE_TEST_SCHEMA_PRINT_H
#define SHMSTORE_TEST_SCHEMA_PRINT_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shmstore.h"

static inline void print_str(const char *s, size_t n)
{
    putchar('"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\\' || c == '"')
            printf("\\%c", c);
        else if (c < 0x20 || c > 0x7e)
            printf("\\x%02x", c);
        else
            putchar(c);
    }
    putchar('"');
}

/* Print `hi` * 2^64 + `lo` in decimal, `-` first if `negative` (the
 * header's own decimal writer, which its including file compiled). */
static inline void print_u128(int negative, uint64_t hi, uint64_t lo)
{
    char buf[48];
    char *end = buf + sizeof buf - 1;
    *end = '\0';
    printf("%s%s", negative ? "-" : "", shmstore__decimal(hi, lo, end));
}

/* Print an i128 given as halves: its sign, then its magnitude. */
static inline void print_i128(int64_t hi, uint64_t lo)
{
    uint64_t h = (uint64_t)hi, l = lo;
    int negative = hi < 0;
    if (negative) {
        h = ~h;
        l = ~l;
        if (++l == 0)
            h++;
    }
    print_u128(negative, h, l);
}

/* Print the leaf `v` (the empty path) by its type. */
static inline int print_leaf(const struct shmstore_value *v)
{
    int type = shmstore_value_type(v);
    int rc;
    switch (type) {
    case SHMSTORE_T_U128: {
        uint64_t hi, lo;
        if ((rc = shmstore_get_u128(v, "", &hi, &lo)) != SHMSTORE_OK)
            return rc;
        print_u128(0, hi, lo);
        return SHMSTORE_OK;
    }
    case SHMSTORE_T_I128: {
        int64_t hi;
        uint64_t lo;
        if ((rc = shmstore_get_i128(v, "", &hi, &lo)) != SHMSTORE_OK)
            return rc;
        print_i128(hi, lo);
        return SHMSTORE_OK;
    }
    case SHMSTORE_T_U8: case SHMSTORE_T_U16: case SHMSTORE_T_U32: case SHMSTORE_T_U64:
    case SHMSTORE_T_USIZE: case SHMSTORE_T_CHAR: {
        uint64_t x;
        if ((rc = shmstore_get_u64(v, "", &x)) != SHMSTORE_OK)
            return rc;
        printf("%llu", (unsigned long long)x);
        return SHMSTORE_OK;
    }
    case SHMSTORE_T_I8: case SHMSTORE_T_I16: case SHMSTORE_T_I32: case SHMSTORE_T_I64:
    case SHMSTORE_T_ISIZE: {
        int64_t x;
        if ((rc = shmstore_get_i64(v, "", &x)) != SHMSTORE_OK)
            return rc;
        printf("%lld", (long long)x);
        return SHMSTORE_OK;
    }
    case SHMSTORE_T_F32: case SHMSTORE_T_F64: {
        double x;
        if ((rc = shmstore_get_f64(v, "", &x)) != SHMSTORE_OK)
            return rc;
        printf("%.17g", x);
        return SHMSTORE_OK;
    }
    case SHMSTORE_T_BOOL: {
        bool b;
        if ((rc = shmstore_get_bool(v, "", &b)) != SHMSTORE_OK)
            return rc;
        printf("%s", b ? "true" : "false");
        return SHMSTORE_OK;
    }
    case SHMSTORE_T_STR: case SHMSTORE_T_BOX_STR: {
        static char buf[1 << 20];
        size_t n;
        if ((rc = shmstore_get_str(v, "", buf, sizeof buf, &n)) != SHMSTORE_OK)
            return rc;
        print_str(buf, n);
        return SHMSTORE_OK;
    }
    case SHMSTORE_T_OPTION:
        printf("None");
        return SHMSTORE_OK;
    case SHMSTORE_T_UNIT:
        printf("()");
        return SHMSTORE_OK;
    case SHMSTORE_T_VARIANT: {
        const struct shmstore_schema_node *n = &v->schema->nodes[v->node];
        printf("%.*s", (int)n->label_len, n->label);
        return SHMSTORE_OK;
    }
    default:
        printf("<type %d>", type);
        return SHMSTORE_OK;
    }
}

static inline int visit(void *ctx, const char *path, const struct shmstore_value *leaf)
{
    unsigned long long *counted = ctx;
    if (counted != NULL) {
        ++*counted;
        return 0;
    }
    printf("%s=", path);
    int rc = print_leaf(leaf);
    if (rc != SHMSTORE_OK)
        printf("!%d", rc);
    putchar('\n');
    return 0;
}

static inline void query(const struct shmstore_value *root, const char *q)
{
    const char *colon = strchr(q, ':');
    if (colon == NULL) {
        fprintf(stderr, "bad query %s\n", q);
        exit(2);
    }
    const char *path = colon + 1;
    size_t kind = (size_t)(colon - q);
    int rc;
    printf("%s=", q);
    if (kind == 3 && memcmp(q, "u64", 3) == 0) {
        uint64_t x;
        if ((rc = shmstore_get_u64(root, path, &x)) == SHMSTORE_OK)
            printf("%llu", (unsigned long long)x);
    } else if (kind == 3 && memcmp(q, "i64", 3) == 0) {
        int64_t x;
        if ((rc = shmstore_get_i64(root, path, &x)) == SHMSTORE_OK)
            printf("%lld", (long long)x);
    } else if (kind == 4 && memcmp(q, "u128", 4) == 0) {
        uint64_t hi, lo;
        if ((rc = shmstore_get_u128(root, path, &hi, &lo)) == SHMSTORE_OK)
            print_u128(0, hi, lo);
    } else if (kind == 4 && memcmp(q, "i128", 4) == 0) {
        int64_t hi;
        uint64_t lo;
        if ((rc = shmstore_get_i128(root, path, &hi, &lo)) == SHMSTORE_OK)
            print_i128(hi, lo);
    } else if (kind == 3 && memcmp(q, "f64", 3) == 0) {
        double x;
        if ((rc = shmstore_get_f64(root, path, &x)) == SHMSTORE_OK)
            printf("%.17g", x);
    } else if (kind == 4 && memcmp(q, "bool", 4) == 0) {
        bool b;
        if ((rc = shmstore_get_bool(root, path, &b)) == SHMSTORE_OK)
            printf("%s", b ? "true" : "false");
    } else if (kind == 3 && memcmp(q, "str", 3) == 0) {
        char small[16];
        size_t n = 0;
        rc = shmstore_get_str(root, path, small, sizeof small, &n);
        if (rc == SHMSTORE_ETOOSMALL) {
            /* Again with the length the first call gave. */
            char *buf = malloc(n + 1);
            rc = buf == NULL ? SHMSTORE_ESYSTEM : shmstore_get_str(root, path, buf, n + 1, &n);
            if (rc == SHMSTORE_OK)
                print_str(buf, n);
            free(buf);
        } else if (rc == SHMSTORE_OK) {
            print_str(small, n);
        }
    } else if (kind == 3 && memcmp(q, "len", 3) == 0) {
        uint64_t n;
        if ((rc = shmstore_get_len(root, path, &n)) == SHMSTORE_OK)
            printf("%llu", (unsigned long long)n);
    } else if (kind == 7 && memcmp(q, "variant", 7) == 0) {
        const char *name;
        size_t n;
        unsigned tag;
        if ((rc = shmstore_get_variant(root, path, &name, &n, &tag)) == SHMSTORE_OK)
            printf("%.*s/%u", (int)n, name, tag);
    } else if (kind == 8 && memcmp(q, "contains", 8) == 0) {
        bool found;
        if ((rc = shmstore_contains(root, path, &found)) == SHMSTORE_OK)
            printf("%s", found ? "true" : "false");
    } else {
        fprintf(stderr, "bad query %s\n", q);
        exit(2);
    }
    if (rc != SHMSTORE_OK)
        printf("!%d", rc);
    putchar('\n');
}

#endif
