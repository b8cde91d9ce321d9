/* test_kernels.c — the engine's side of custom kernels (engine/lang/kernels.c) against a
 * recording driver: signature parsing, translation units, and what a launch hands the
 * driver (converted scalars, tensor addresses, contiguous copies, limits, caching). */
#include <stdlib.h>
#include <string.h>

#include "engine/tensor/backend.h"
#include "engine/lang/kernels.h"
#include "tests/unit/check.h"

/* ---- a driver that records ---- */
struct eng_kmodule {
    int id;
};
static int ncompiles, nlaunches, nreleases, last_check;
static char last_tu[4096];
static unsigned last_grid[3], last_block[3];
static size_t last_shared;
static unsigned char last_args[8][8];
static void *last_ptr[8];
static float first_float_read; /* what the kernel reads at [1] through argument 2 */

static eng_kmodule *fake_compile(const char *src, const char *kname, const eng_kparam *params, int nparams, int check,
                                 eng_kinfo *info, eng_error *err)
{
    snprintf(last_tu, sizeof last_tu, "%s", src);
    last_check = check;
    if (strstr(src, "SYNTAX_ERROR"))
        return eng_fail(err, ERR_COMPILE, "cell[7]:2:5: warning: meh\ncell[7]:3:1: error: 'x' was not declared"),
               NULL;
    eng_kmodule *m = calloc(1, sizeof *m);
    m->id = ++ncompiles;
    info->max_threads = strstr(src, "SMALL") ? 128 : 1024;
    info->static_shared = strstr(src, "BIGSHARED") ? 40000 : 0;
    info->regs = 10;
    return m;
}
static void fake_release(eng_kmodule *m)
{
    nreleases++;
    free(m);
}
static void fake_limits(eng_klimits *l)
{
    *l = (eng_klimits){{1024, 1024, 64}, 1024, {2147483647u, 65535, 65535}, 48 * 1024};
}
static int fake_launch(eng_kmodule *m, const unsigned grid[3], const unsigned block[3], size_t shared, void **args,
                       eng_error *err)
{
    nlaunches++;
    memcpy(last_grid, grid, sizeof last_grid);
    memcpy(last_block, block, sizeof last_block);
    last_shared = shared;
    for (int i = 0; i < 8 && args[i]; i++) {
        memcpy(last_args[i], args[i], 8);
        memcpy(&last_ptr[i], args[i], sizeof(void *));
    }
    first_float_read = ((float *)last_ptr[1])[1];
    return 0;
}
static int fake_sync(eng_error *err) { return 0; }
static char *fake_code(eng_kmodule *m, eng_error *err) { return strdup("code"); }
static const eng_kdriver fake_driver = {.name = "fake", .compile = fake_compile, .release = fake_release,
                                        .limits = fake_limits, .launch = fake_launch, .sync = fake_sync,
                                        .code = fake_code};

static eng_backend fake_backend;

static tensor *on_fake(tensor *t)
{
    t->storage->backend = &fake_backend;
    return t;
}

static void test_params(void)
{
    eng_kparam *p;
    int n;
    eng_error e = {0};
    CHECK(!eng_kernel_parse_params("__global__ void k(const float *__restrict__ a, float* __restrict__ b, int n,"
                                   " /* c */ unsigned char *c, int64_t *d, long long *e2, size_t m, bool *f,"
                                   " __half *h, __nv_bfloat16 *bf, double s, const int *const q, unsigned u) {}",
                                   "k", &p, &n, &e));
    CHECK(n == 13);
    if (n == 13) {
        CHECK(p[0].is_ptr && p[0].is_const && p[0].ctype == KT_F32 && !strcmp(p[0].name, "a"));
        CHECK_STR(p[0].type, "const float *__restrict__");
        CHECK(p[1].is_ptr && !p[1].is_const && p[1].ctype == KT_F32);
        CHECK(!p[2].is_ptr && p[2].ctype == KT_I32 && !strcmp(p[2].name, "n"));
        CHECK(p[3].ctype == KT_U8 && !strcmp(p[3].name, "c"));
        CHECK(p[4].ctype == KT_I64 && p[5].ctype == KT_I64);
        CHECK(!p[6].is_ptr && p[6].ctype == KT_U64);
        CHECK(p[7].ctype == KT_BOOL && p[8].ctype == KT_F16 && p[9].ctype == KT_BF16);
        CHECK(!p[10].is_ptr && p[10].ctype == KT_F64);
        CHECK(p[11].is_ptr && p[11].is_const && p[11].ctype == KT_I32);
        CHECK(p[12].ctype == KT_U32);
    }
    free(p);
    CHECK(!eng_kernel_parse_params("#define N 4\n__global__ void __launch_bounds__(256) k(void) {}", "k", &p, &n, &e));
    CHECK(n == 0 && !p);
    const char *bad[][2] = {{"__global__ void k(float4 *x) {}", "'float4'"},
                            {"__global__ void k(float **x) {}", "pointer to a pointer"},
                            {"__global__ void k(int &x) {}", "reference"},
                            {"__global__ void k(struct S s) {}", "struct"},
                            {"__global__ void k(std::vector<int> v) {}", "::"},
                            {"__global__ void k(unsigned *x) {}", "no tensor dtype"},
                            {"__global__ void k(float x[]) {}", "array"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        eng_error be = {0};
        CHECK(eng_kernel_parse_params(bad[i][0], "k", &p, &n, &be) == -1);
        CHECK(be.kind == ERR_TYPE && strstr(be.msg, bad[i][1]) && strstr(be.msg, "parameter 1"));
        if (!strstr(be.msg, bad[i][1]))
            fprintf(stderr, "  %s -> %s\n", bad[i][0], be.msg);
    }
}

static void test_launch(void)
{
    eng_ktable *t = eng_ktable_new();
    eng_error e = {0};
    const char *dev = "__device__ float sq(float v) { return v * v; }";
    const char *ker = "__global__ void k(float *out, const float *a, int n, float s, unsigned char c) {}";
    CHECK(!eng_kernel_define(t, dev, (int)strlen(dev), NULL, "sq", 0, "cell[1]", 1, &e));
    CHECK(!eng_kernel_define(t, ker, (int)strlen(ker), NULL, "k", 1, "cell[2]", 3, &e));
    eng_kernel *k = eng_kernel_find(t, "k", 1);
    CHECK(k && k->nparams == 5);
    char *tu = eng_kernel_tu(t, k);
    CHECK_STR(tu, "#line 1 \"cell[1]\"\n__device__ float sq(float v) { return v * v; }\n"
                  "#line 3 \"cell[2]\"\n__global__ void k(float *out, const float *a, int n, float s, unsigned char c) {}\n");
    free(tu);

    int64_t shape[2] = {4, 3};
    tensor *out = on_fake(tensor_empty(DT_F32, 1, shape, &e));
    tensor *m = on_fake(tensor_arange(0, 12, 1, DT_F32, &e));
    tensor *m2 = tensor_reshape(m, 2, shape, &e);
    tensor *mt = tensor_transpose(m2, 0, 1, &e); /* not contiguous: [3, 4], first row 0 3 6 9 */
    unsigned g[3] = {2, 1, 1}, b[3] = {32, 1, 1};
    value args[5] = {value_tensor(out), value_tensor(mt), value_int(12), value_float(0.5), value_int(200)};
    CHECK(!eng_kernel_launch(t, k, g, b, 0, args, 5, NULL, &e));
    CHECK(ncompiles == 1 && nlaunches == 1 && last_check == 0);
    CHECK(last_ptr[0] == tensor_data_ptr(out));
    CHECK(last_ptr[1] != tensor_data_ptr(mt)); /* a contiguous copy of the const argument */
    CHECK(first_float_read == 3); /* read in the copy: m2[1][0] */
    int32_t n32;
    memcpy(&n32, last_args[2], 4);
    float s32;
    memcpy(&s32, last_args[3], 4);
    CHECK(n32 == 12 && s32 == 0.5f && last_args[4][0] == 200);
    CHECK(last_grid[0] == 2 && last_block[0] == 32);
    /* relaunch: no second compile */
    CHECK(!eng_kernel_launch(t, k, g, b, 0, args, 5, NULL, &e));
    CHECK(ncompiles == 1 && nlaunches == 2);
    /* errors, each before the driver runs */
    struct {
        int arg;
        value v;
        const char *want;
    } bad[] = {{2, value_int(3000000000LL), "out of the range of int"},
               {4, value_int(-1), "out of the range of unsigned char"},
               {3, value_float(1e300), "out of the range of float"},
               {2, value_float(2.5), "takes an integer"},
               {0, value_tensor(mt), "not contiguous"},
               {0, value_int(1), "is a pointer: pass a tensor"},
               {2, value_tensor(out), "is a scalar"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        value a2[5];
        memcpy(a2, args, sizeof a2);
        a2[bad[i].arg] = bad[i].v;
        eng_error be = {0};
        CHECK(eng_kernel_launch(t, k, g, b, 0, a2, 5, NULL, &be) == -1);
        CHECK(strstr(be.msg, bad[i].want) != NULL);
        if (!strstr(be.msg, bad[i].want))
            fprintf(stderr, "  got: %s\n", be.msg);
    }
    tensor *ints = on_fake(tensor_empty(DT_I32, 1, shape, &e));
    value a3[5] = {value_tensor(ints), args[1], args[2], args[3], args[4]};
    eng_error de = {0};
    CHECK(eng_kernel_launch(t, k, g, b, 0, a3, 5, NULL, &de) == -1 && strstr(de.msg, "needs an f32 tensor, got i32"));
    unsigned big[3] = {2048, 1, 1}, cube[3] = {32, 32, 2};
    eng_error le = {0};
    CHECK(eng_kernel_launch(t, k, g, big, 0, args, 5, NULL, &le) == -1 && strstr(le.msg, "block.x is 2048"));
    eng_error le2 = {0};
    CHECK(eng_kernel_launch(t, k, g, cube, 0, args, 5, NULL, &le2) == -1 && strstr(le2.msg, "2048 threads"));
    eng_error se = {0};
    CHECK(eng_kernel_launch(t, k, g, b, 100000, args, 5, NULL, &se) == -1 && strstr(se.msg, "shared memory"));
    CHECK(eng_kernel_launch(t, k, g, b, 1, args, 4, NULL, &se) == -1);
    CHECK(nlaunches == 2);

    /* a __device__ change recompiles; the same source again does not */
    CHECK(!eng_kernel_define(t, dev, (int)strlen(dev), NULL, "sq", 0, "cell[5]", 1, &e));
    CHECK(!eng_kernel_launch(t, k, g, b, 0, args, 5, NULL, &e) && ncompiles == 1);
    const char *dev2 = "__device__ float sq(float v) { return v * v * 1; }";
    CHECK(!eng_kernel_define(t, dev2, (int)strlen(dev2), NULL, "sq", 0, "cell[6]", 1, &e));
    CHECK(!eng_kernel_launch(t, k, g, b, 0, args, 5, NULL, &e) && ncompiles == 2 && nreleases == 1);
    CHECK(strstr(last_tu, "#line 1 \"cell[6]\"\n__device__ float sq(float v) { return v * v * 1; }"));
    t->check = 1; /* %sim check: a checking build */
    CHECK(!eng_kernel_launch(t, k, g, b, 0, args, 5, NULL, &e) && ncompiles == 3 && last_check == 1);
    t->check = 0;

    /* compile errors: the first error in the message, all lines in details */
    const char *broken = "__global__ void k(float *out, const float *a, int n, float s, unsigned char c) { SYNTAX_ERROR }";
    CHECK(!eng_kernel_define(t, broken, (int)strlen(broken), NULL, "k", 1, "cell[7]", 1, &e));
    k = eng_kernel_find(t, "k", 1);
    char *details = NULL;
    eng_error ce = {0};
    CHECK(eng_kernel_launch(t, k, g, b, 0, args, 5, &details, &ce) == -1);
    CHECK(ce.kind == ERR_COMPILE);
    CHECK_STR(ce.msg, "kernel k did not compile: cell[7]:3:1: error: 'x' was not declared");
    CHECK(details && strstr(details, "cell[7]:2:5: warning"));
    free(details);

    /* the kernel's own limits, known after its compile */
    const char *small = "__global__ void k(float *out, const float *a, int n, float s, unsigned char c) { SMALL; }";
    CHECK(!eng_kernel_define(t, small, (int)strlen(small), NULL, "k", 1, "cell[8]", 1, &e));
    k = eng_kernel_find(t, "k", 1);
    eng_error me = {0};
    CHECK(eng_kernel_launch(t, k, g, b, 0, args, 5, NULL, &me) == 0);
    unsigned b256[3] = {256, 1, 1};
    CHECK(eng_kernel_launch(t, k, g, b256, 0, args, 5, NULL, &me) == -1 && strstr(me.msg, "this kernel's limit of 128"));

    eng_ktable_clear(t);
    CHECK(t->n == 0 && !eng_kernel_find(t, "k", 1));
    eng_ktable_free(t);
    tensor *all[] = {out, m, m2, mt, ints};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        all[i]->storage->backend = &cpu_backend;
        tensor_decref(all[i]);
    }
}

static void test_dims(void)
{
    unsigned d[3];
    eng_error e = {0};
    int64_t v[2] = {4, 5};
    eng_tuple *tup = eng_tuple_new(2, v);
    value tv = {VAL_TUPLE, {.tup = tup}};
    CHECK(!eng_kernel_dims(tv, "k", "grid", d, &e) && d[0] == 4 && d[1] == 5 && d[2] == 1);
    value_decref(tv);
    CHECK(eng_kernel_dims(value_int(0), "k", "grid", d, &e) == -1 && strstr(e.msg, "grid.x is 0"));
}

int main(void)
{
    fake_backend = cpu_backend;
    fake_backend.kernels = &fake_driver;
    test_params();
    test_launch();
    test_dims();
    return check_finish("test_kernels");
}
