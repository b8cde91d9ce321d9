/* test_hostmem.c — checked sizes and the host memory budget (engine/base/hostmem.h): byte
 * counts that overflow, sizes with suffixes, the limit over tracked bytes, the CPU
 * backend's refusal as a MemoryError with its last_oom message, and strings. */
#include <stdint.h>
#include <stdlib.h>

#include "check.h"
#include "engine/tensor/backend.h"
#include "engine/base/hostmem.h"
#include "engine/lang/value.h"

static void test_parse_bytes(void)
{
    size_t v = 0;
    CHECK(eng_parse_bytes("1048576", &v) == 0 && v == 1048576);
    CHECK(eng_parse_bytes("2G", &v) == 0 && v == (size_t)2 << 30);
    CHECK(eng_parse_bytes("512M", &v) == 0 && v == (size_t)512 << 20);
    CHECK(eng_parse_bytes("64k", &v) == 0 && v == 65536);
    CHECK(eng_parse_bytes("1.5GiB", &v) == 0 && v == (size_t)3 << 29);
    CHECK(eng_parse_bytes("3T", &v) == 0 && v == (size_t)3 << 40);
    CHECK(eng_parse_bytes("10B", &v) == 0 && v == 10);
    CHECK(eng_parse_bytes("", &v) < 0);
    CHECK(eng_parse_bytes("lots", &v) < 0);
    CHECK(eng_parse_bytes("-1G", &v) < 0);
    CHECK(eng_parse_bytes("2X", &v) < 0);
    CHECK(eng_parse_bytes("99999999999T", &v) < 0);
}

static void test_shape_bytes(void)
{
    eng_error err = {0};
    int64_t n;
    size_t b;
    int64_t ok[2] = {3, 4}, big[2] = {(int64_t)1 << 40, (int64_t)1 << 40}, wrap[1] = {(int64_t)1 << 61};
    int64_t empty[3] = {0, (int64_t)1 << 40, (int64_t)1 << 20}, empty_big[2] = {0, (int64_t)1 << 62};
    CHECK(eng_shape_bytes("zeros", 2, ok, 4, "f32", &n, &b, &err) == 0 && n == 12 && b == 48);
    CHECK(eng_shape_bytes("zeros", 0, NULL, 8, "f64", &n, &b, &err) == 0 && n == 1 && b == 8);
    /* 2^80 elements */
    CHECK(eng_shape_bytes("zeros", 2, big, 4, "f32", &n, &b, &err) < 0 && err.kind == ERR_MEMORY);
    CHECK_STR(err.msg, "zeros: shape [1099511627776, 1099511627776] of f32 is too large: its size passes 2^62 bytes");
    /* 2^61 doubles: sizeof(double) * n wraps to 0 in size_t arithmetic */
    err = (eng_error){0};
    CHECK(eng_shape_bytes("linspace", 1, wrap, 8, NULL, &n, &b, &err) < 0);
    CHECK_STR(err.msg, "linspace: shape [2305843009213693952] is too large: its size passes 2^62 bytes");
    /* an empty tensor: 0 bytes, while its other dims still multiply within 2^62 */
    CHECK(eng_shape_bytes("zeros", 3, empty, 4, "f32", &n, &b, &err) == 0 && n == 0 && b == 0);
    err = (eng_error){0};
    CHECK(eng_shape_bytes("zeros", 2, empty_big, 4, "f32", &n, &b, &err) < 0 && err.kind == ERR_MEMORY);
    int64_t neg[2] = {3, -1};
    err = (eng_error){0};
    CHECK(eng_shape_bytes("ones", 2, neg, 4, "f32", &n, &b, &err) < 0 && err.kind == ERR_VALUE);
    CHECK_STR(err.msg, "ones: negative dimension in shape [3, -1]");
    size_t out;
    CHECK(eng_size_mul(SIZE_MAX / 2 + 1, 2, &out) < 0);
    CHECK(eng_size_add(SIZE_MAX, 1, &out) < 0);
    CHECK(eng_size_mul(1 << 20, 1 << 20, &out) == 0 && out == (size_t)1 << 40);
}

/* the limit over tracked bytes, through the CPU backend and tensor_empty */
static void test_limit(void)
{
    eng_set_current_backend(&cpu_backend);
    size_t base = eng_hostmem_used();
    eng_hostmem_set_limit(base + ((size_t)6 << 20), "test");
    eng_error err = {0};
    int64_t s4[1] = {1 << 20}; /* 4 MiB of f32 */
    tensor *a = tensor_full(DT_F32, 1, s4, 1, &err);
    CHECK(a && err.kind == ERR_NONE);
    CHECK(eng_hostmem_used() >= base + ((size_t)4 << 20));
    tensor *b = tensor_full(DT_F32, 1, s4, 2, &err); /* 8 MiB: past the limit of 6 */
    CHECK(!b && err.kind == ERR_MEMORY);
    CHECK(strstr(err.msg, "out of memory on cpu for an f32 tensor of shape [1048576]") != NULL);
    CHECK(strstr(err.msg, "asked for 4.00 MiB (4194304 bytes), over the host memory limit of") != NULL);
    CHECK(strstr(err.msg, "(test)") != NULL);
    char why[400];
    cpu_backend.last_oom(why, sizeof why);
    CHECK(strstr(why, "asked for 4.00 MiB") == why);
    /* nothing asked for always fits: a variable can be freed by assigning zeros(0) */
    int64_t s0[1] = {0};
    err = (eng_error){0};
    tensor *z = tensor_empty(DT_F32, 1, s0, &err);
    CHECK(z != NULL);
    tensor_decref(z);
    tensor_decref(a); /* freed (or cached): no longer counted */
    CHECK(eng_hostmem_used() == base);
    err = (eng_error){0};
    b = tensor_full(DT_F32, 1, s4, 2, &err);
    CHECK(b != NULL);
    tensor_decref(b);
    /* strings count too */
    err = (eng_error){0};
    eng_string *str = eng_string_alloc((int64_t)7 << 20, "joining strings", &err);
    CHECK(!str && err.kind == ERR_MEMORY);
    CHECK(strstr(err.msg, "joining strings: out of memory: asked for 7.00 MiB") == err.msg);
    err = (eng_error){0};
    CHECK(!eng_string_alloc(-1, "joining strings", &err) && err.kind == ERR_MEMORY);
    eng_string *ok = eng_string_new("abc", 3);
    CHECK(ok && ok->len == 3 && !strcmp(ok->data, "abc"));
    CHECK(eng_hostmem_used() > base);
    value_decref((value){.type = VAL_STRING, .as.s = ok});
    CHECK(eng_hostmem_used() == base);
    eng_hostmem_set_limit(0, "");
    CHECK(eng_hostmem_limit() == 0);
    CHECK(eng_hostmem_limit_source()[0] == 0);
}

/* with no limit: a request past three quarters of what the machine has */
static void test_machine(void)
{
    size_t avail = eng_hostmem_available();
    if (avail == SIZE_MAX) {
        printf("no /proc/meminfo: machine check skipped\n");
        return;
    }
    CHECK(avail > 0);
    eng_error err = {0};
    CHECK(eng_hostmem_check(avail, "test", &err) < 0 && err.kind == ERR_MEMORY);
    CHECK(strstr(err.msg, "test: out of memory: asked for") == err.msg);
    CHECK(strstr(err.msg, "available") != NULL);
    CHECK(eng_hostmem_check(HOSTMEM_PROBE - 1, "test", NULL) == 0);
    err = (eng_error){0};
    void *p = eng_host_malloc(avail, "copying", &err);
    CHECK(!p && err.kind == ERR_MEMORY);
}

int main(void)
{
    test_parse_bytes();
    test_shape_bytes();
    test_limit();
    test_machine();
    return check_finish("test_hostmem");
}
