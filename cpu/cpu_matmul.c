/* cpu_matmul.c — the CPU backend's batched matrix product, through OpenBLAS.
 *
 * out[b] = a[b] @ c[b] for 3-D views a [B, M, K] and c [B, K, N] into a contiguous
 * out [B, M, N], f32 (cblas_sgemm) or f64 (cblas_dgemm). A matrix view whose rows or
 * whose columns are contiguous goes to BLAS as it is, a transposed view as a transpose
 * (no copy); only views that BLAS cannot describe (both strides > 1, a broadcast row
 * dimension) are copied first. When c is the same matrix for every batch (stride 0)
 * and a's batches are stacked rows, the whole product is one [B*M, K] @ [K, N] gemm.
 */
#include "cpu/cpu_internal.h"

#include <cblas.h>
#include <limits.h>

/* How BLAS sees an R x C matrix with strides sr (rows) and sc (columns), in elements:
 * 0 with *tr and *ld set, or -1 when it needs a copy. */
static int blas_layout(int64_t R, int64_t C, int64_t sr, int64_t sc, enum CBLAS_TRANSPOSE *tr,
                       int64_t *ld)
{
    int64_t c1 = C > 1 ? C : 1, r1 = R > 1 ? R : 1;
    if ((sc == 1 || C == 1) && (R == 1 || sr >= c1)) {
        *tr = CblasNoTrans;
        *ld = R == 1 ? c1 : sr;
        return 0;
    }
    if ((sr == 1 || R == 1) && (C == 1 || sc >= r1)) {
        *tr = CblasTrans;
        *ld = C == 1 ? r1 : sc;
        return 0;
    }
    return -1;
}

static void gemm(tensor_dtype dt, enum CBLAS_TRANSPOSE ta, enum CBLAS_TRANSPOSE tb, int64_t M,
                 int64_t N, int64_t K, const char *A, int64_t lda, const char *B, int64_t ldb,
                 char *C)
{
    if (dt == DT_F32)
        cblas_sgemm(CblasRowMajor, ta, tb, (int)M, (int)N, (int)K, 1.0f, (const float *)A, (int)lda,
                    (const float *)B, (int)ldb, 0.0f, (float *)C, (int)(N > 1 ? N : 1));
    else
        cblas_dgemm(CblasRowMajor, ta, tb, (int)M, (int)N, (int)K, 1.0, (const double *)A, (int)lda,
                    (const double *)B, (int)ldb, 0.0, (double *)C, (int)(N > 1 ? N : 1));
}

int cpu_matmul(tensor *out, const tensor *a, const tensor *c, eng_error *err)
{
    if (out->dtype != DT_F32 && out->dtype != DT_F64)
        return eng_fail(err, ERR_TYPE, "matmul: the CPU backend multiplies f32 and f64, got %s",
                        tensor_dtype_name(out->dtype));
    int64_t B = a->shape[0], M = a->shape[1], K = a->shape[2], N = c->shape[2];
    if (M > INT_MAX || N > INT_MAX || K > INT_MAX || B * M > INT_MAX)
        return eng_fail(err, ERR_VALUE, "matmul: dimensions too large for BLAS");
    if (B * M * N == 0)
        return 0;
    if (K == 0)
        return cpu_fill(out, 0, err);
    tensor *ac = NULL, *cc = NULL;
    enum CBLAS_TRANSPOSE ta, tb;
    int64_t lda, ldb;
    int rc = -1;
    if (blas_layout(M, K, a->stride[1], a->stride[2], &ta, &lda) < 0) {
        if (!(ac = tensor_contiguous((tensor *)a, err)))
            goto err;
        a = ac;
        blas_layout(M, K, a->stride[1], a->stride[2], &ta, &lda);
    }
    if (blas_layout(K, N, c->stride[1], c->stride[2], &tb, &ldb) < 0) {
        if (!(cc = tensor_contiguous((tensor *)c, err)))
            goto err;
        c = cc;
        blas_layout(K, N, c->stride[1], c->stride[2], &tb, &ldb);
    }
    size_t es = tensor_dtype_size(out->dtype);
    char *o = cpu_ptr(out);
    if (B > 1 && c->stride[0] == 0 && ta == CblasNoTrans && (M == 1 || a->stride[0] == M * lda)) {
        /* one tall product: the batches of a are consecutive rows */
        int64_t ld = M == 1 ? a->stride[0] : lda;
        if (ld >= (K > 1 ? K : 1)) {
            gemm(out->dtype, ta, tb, B * M, N, K, cpu_ptr(a), ld, cpu_ptr(c), ldb, o);
            rc = 0;
            goto err;
        }
    }
    for (int64_t b = 0; b < B; b++) {
        if (eng_ctx_interrupted()) {
            eng_fail(err, ERR_INTERRUPT, "interrupted");
            goto err;
        }
        gemm(out->dtype, ta, tb, M, N, K, cpu_ptr(a) + b * a->stride[0] * (int64_t)es, lda,
             cpu_ptr(c) + b * c->stride[0] * (int64_t)es, ldb, o + b * M * N * (int64_t)es);
    }
    rc = 0;
err:
    if (ac)
        tensor_decref(ac);
    if (cc)
        tensor_decref(cc);
    return rc;
}
