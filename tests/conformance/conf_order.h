/* conf_order.h — the conformance suite's "order" group (included by test_conformance.c
 * after its helpers): the backends' argsort and scan entries through the front end of
 * engine/tensor/tensor_order.c. sort, argsort and topk (values and indices) must agree
 * bit for bit (the sort is stable, so the indices are unique); cumsum and cumprod
 * exactly for integers and within tol_for for floats (the same sequential order on both
 * devices); the scan entry's reverse, exclusive and multiplier forms (cumprod's
 * gradient) within tolerance; any, all, nan_to_num, unique, bincount and
 * randperm/multinomial/shuffle (the same Philox stream) exactly. Errors (a bad dim, k
 * past the size) must agree in kind and message.
 */
#include "engine/tensor/tensor_order.h"

static tensor *do_sort(tensor **x, void *c, eng_error *err)
{
    opctx *o = c;
    switch ((int)o->a) {
    case 0: return tensor_sort(x[0], o->dim, o->keepdim, err);
    case 1: return tensor_argsort(x[0], o->dim, o->keepdim, err);
    case 2: return tensor_topk(x[0], (int64_t)o->b, o->dim, o->keepdim, 0, err);
    default: return tensor_topk(x[0], (int64_t)o->b, o->dim, o->keepdim, 1, err);
    }
}

static tensor *do_scan(tensor **x, void *c, eng_error *err)
{
    opctx *o = c;
    switch ((int)o->a) {
    case 0: return tensor_scan(ENG_SCAN_SUM, x[0], o->dim, err);
    case 1: return tensor_scan(ENG_SCAN_PROD, x[0], o->dim, err);
    case 2: return tensor_scan_raw(ENG_SCAN_SUM, ENG_SCAN_REVERSE, x[0], x[0], o->dim, err);
    case 3: return tensor_scan_raw(ENG_SCAN_PROD, ENG_SCAN_EXCLUSIVE | ENG_SCAN_REVERSE, x[0], NULL, o->dim, err);
    case 4: return tensor_any(x[0], o->dim, o->keepdim, err);
    case 5: return tensor_all(x[0], o->dim, o->keepdim, err);
    case 6: return tensor_nan_to_num(x[0], 0.5, 100, -100, err);
    case 7: return tensor_unique(x[0], err);
    default: {
        int64_t n = tensor_numel(x[0]);
        tensor *f = tensor_reshape(x[0], 1, &n, err), *a = f ? tensor_unary(OP_ABS, f, 0, 0, err) : NULL;
        tensor *r = a ? tensor_bincount(a, NULL, 3, err) : NULL;
        tensor_decref(f);
        tensor_decref(a);
        return r;
    }
    }
}

static void group_order(int cases)
{
    static const tensor_dtype sdts[] = {DT_F32, DT_F64, DT_I32, DT_I64, DT_BOOL, DT_U8, DT_F16, DT_BF16};
    for (int i = 0; i < cases; i++) {
        spec s = {.dt = sdts[i % 8]};
        random_shape(&s, 3, 1);
        int nd = s.ndim ? s.ndim : 1;
        opctx c = {.dim = rndi(nd + 1) - (rndi(2) ? nd : 0), .keepdim = rndi(2), .a = i % 4};
        if (i % 23 == 0)
            c.dim = nd; /* out of range: both fail alike */
        int d = c.dim < 0 ? c.dim + nd : c.dim;
        int64_t n = s.ndim && d < s.ndim ? s.shape[d] : 1;
        c.b = (double)rndi((int)n + 1) + (i % 19 == 0 ? n + 1 : 0); /* k, sometimes too large */
        char what[96];
        static const char *names[] = {"sort", "argsort", "topk", "topk_indices"};
        snprintf(what, sizeof what, "%s(%s, dim %d%s)", names[i % 4], tensor_dtype_name(s.dt), c.dim,
                 c.keepdim ? ", descending" : "");
        run_both(what, &s, 1, tol_for(s.dt, 1), 1, do_sort, &c);
    }
    /* one long row and many short ones: the bitonic network's padding and its grid loop */
    for (int i = 0; i < 4; i++) {
        spec s = {.dt = i % 2 ? DT_F32 : DT_I64, .ndim = i < 2 ? 1 : 2, .seed = rnd()};
        s.shape[0] = i < 2 ? 5000 + rndi(3000) : 3000 + rndi(500);
        s.shape[1] = 5 + rndi(4);
        opctx c = {.dim = -1, .keepdim = i % 2, .a = i % 2};
        run_both("sort (long row / many rows)", &s, 1, tol_for(s.dt, 1), 1, do_sort, &c);
    }
    static const tensor_dtype cdts[] = {DT_F32, DT_F64, DT_I32, DT_I64, DT_BOOL, DT_U8, DT_F16, DT_BF16};
    for (int i = 0; i < cases; i++) {
        spec s = {.dt = cdts[i % 8]};
        random_shape(&s, 3, 1);
        int nd = s.ndim ? s.ndim : 1;
        opctx c = {.dim = rndi(nd) - (rndi(2) ? nd : 0), .keepdim = rndi(2), .a = (i / 8) % 9};
        if (c.a == 1 || c.a == 3)
            s.positive = rndi(2); /* products of [0.01, 4.01): some overflow, some not */
        if (c.a == 2 && !is_float(s.dt))
            c.a = 0;
        if ((c.a == 4 || c.a == 5) && rndi(3) == 0)
            c.dim = TENSOR_ALLDIMS;
        if (i % 29 == 0)
            c.dim = -nd - 1;
        static const char *names[] = {"cumsum", "cumprod", "scan w reverse", "cumprod exclusive reverse", "any",
                                      "all", "nan_to_num", "unique", "bincount"};
        char what[96];
        snprintf(what, sizeof what, "%s(%s, dim %d)", names[(int)c.a], tensor_dtype_name(s.dt), c.dim);
        int exact = !is_float(s.dt) || c.a >= 4;
        tol t = tol_for(is_float(s.dt) ? s.dt : DT_I64, exact);
        if (!exact && (c.a == 1 || c.a == 2 || c.a == 3)) /* products: a last-bit difference grows */
            t.rel *= 64;
        run_both(what, &s, 1, t, 1, do_scan, &c);
    }
    /* sampling: the same Philox stream on both backends gives the same draws */
    for (int i = 0; i < cases / 4 + 1; i++) {
        tensor_rng g0 = {rnd(), rnd() % 1000000}, g1 = g0;
        eng_error e0 = {0}, e1 = {0};
        int64_t n = rndi(3000);
        tensor *r0, *r1;
        eng_set_current_backend(&cpu_backend);
        r0 = tensor_randperm(&g0, n, &e0);
        eng_set_current_backend(other);
        r1 = tensor_randperm(&g1, n, &e1);
        compare("randperm", r0, &e0, r1, &e1, (tol){0, 0}, 1);
        spec s = {.dt = i % 2 ? DT_F32 : DT_F64, .ndim = 1 + rndi(2), .positive = 1, .seed = rnd()};
        s.shape[0] = 1 + rndi(20);
        s.shape[1] = 1 + rndi(40);
        tensor *p0 = make_on(&cpu_backend, &s, &e0), *p1 = make_on(other, &s, &e1);
        int64_t k = rndi(500);
        eng_set_current_backend(&cpu_backend);
        r0 = p0 ? tensor_multinomial(&g0, p0, k, 1, &e0) : NULL;
        eng_set_current_backend(other);
        r1 = p1 ? tensor_multinomial(&g1, p1, k, 1, &e1) : NULL;
        compare("multinomial with replacement", r0, &e0, r1, &e1, (tol){0, 0}, 1);
        eng_set_current_backend(&cpu_backend);
        r0 = p0 ? tensor_shuffle(&g0, p0, &e0) : NULL;
        eng_set_current_backend(other);
        r1 = p1 ? tensor_shuffle(&g1, p1, &e1) : NULL;
        compare("shuffle", r0, &e0, r1, &e1, (tol){0, 0}, 1);
        if (g0.offset != g1.offset)
            fail("sampling", "offsets advanced differently");
        tensor_decref(p0);
        tensor_decref(p1);
    }
}
