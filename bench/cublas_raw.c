/* cublas_raw.c — the raw cuBLAS peer of bench/gpu_ops.py's matmul metrics: one
 * cublasGemmEx call per product on device buffers made once, timed with CUDA events.
 *
 * For each N given and each kind (f32: CUBLAS_COMPUTE_32F; tf32: the same data with
 * CUBLAS_COMPUTE_32F_FAST_TF32; bf16: bf16 operands and result, f32 accumulation — the
 * same types and compute modes Kiln's cu_matmul asks for), fills A and B with uniform
 * random values in [-1, 1) from the host, runs 3 warm-up products, then REPS timed ones,
 * and prints one JSON object: {"mm_<N>_<kind>": seconds per product, ...}.
 * Built by `make bench-gpu` (links cuBLAS and the CUDA runtime; bench only).
 * Usage: cublas_raw REPS N...
 */
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(x)                                                                    \
    do {                                                                            \
        int rc_ = (int)(x);                                                         \
        if (rc_) {                                                                  \
            fprintf(stderr, "cublas_raw: %s failed (%d) at line %d\n", #x, rc_, __LINE__); \
            exit(1);                                                                \
        }                                                                           \
    } while (0)

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static float unif(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((rng >> 40) * (1.0 / 16777216.0) * 2.0 - 1.0);
}

static uint16_t to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    u += 0x7fff + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

/* device buffer of n*n elements of es bytes, random */
static void *random_matrix(size_t n, int bf16)
{
    size_t count = n * n, es = bf16 ? 2 : 4;
    char *h = malloc(count * es);
    if (!h)
        exit(1);
    for (size_t i = 0; i < count; i++) {
        float f = unif();
        if (bf16) {
            uint16_t b = to_bf16(f);
            memcpy(h + i * 2, &b, 2);
        } else {
            memcpy(h + i * 4, &f, 4);
        }
    }
    void *d;
    CHECK(cudaMalloc(&d, count * es));
    CHECK(cudaMemcpy(d, h, count * es, cudaMemcpyHostToDevice));
    free(h);
    return d;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: cublas_raw REPS N...\n");
        return 2;
    }
    int reps = atoi(argv[1]);
    cublasHandle_t h;
    CHECK(cublasCreate(&h));
    cudaEvent_t e0, e1;
    CHECK(cudaEventCreate(&e0));
    CHECK(cudaEventCreate(&e1));
    printf("{");
    const char *sep = "";
    for (int ai = 2; ai < argc; ai++) {
        int n = atoi(argv[ai]);
        static const char *kinds[] = {"f32", "tf32", "bf16"};
        for (int k = 0; k < 3; k++) {
            int bf = k == 2;
            void *a = random_matrix((size_t)n, bf), *b = random_matrix((size_t)n, bf), *c;
            CHECK(cudaMalloc(&c, (size_t)n * n * (bf ? 2 : 4)));
            cudaDataType_t t = bf ? CUDA_R_16BF : CUDA_R_32F;
            cublasComputeType_t ct = k == 1 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
            float alpha = 1, beta = 0;
            for (int r = -3; r < reps; r++) {
                if (r == 0)
                    CHECK(cudaEventRecord(e0, 0));
                CHECK(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &alpha, b, t, n, a, t, n, &beta, c, t, n,
                                   ct, CUBLAS_GEMM_DEFAULT));
            }
            CHECK(cudaEventRecord(e1, 0));
            CHECK(cudaEventSynchronize(e1));
            float ms;
            CHECK(cudaEventElapsedTime(&ms, e0, e1));
            printf("%s\"mm_%d_%s\": %.9g", sep, n, kinds[k], ms / 1000.0 / reps);
            sep = ", ";
            cudaFree(a);
            cudaFree(b);
            cudaFree(c);
        }
    }
    printf("}\n");
    return 0;
}
