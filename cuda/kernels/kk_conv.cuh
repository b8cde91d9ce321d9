/* kk_conv.cuh — im2col and col2im (engine/tensor/backend.h) for conv2d and pooling: the
 * windows of [N, C, H, W] images as the columns [N, C*kh*kw, OH*OW] of a matrix, and
 * the adjoint. Grid-stride loops, one thread per output element: im2col reads one
 * input (or writes 0 in the padding); col2im gathers, for one image element, the
 * column entries that read it (at most kh*kw), so it needs no atomics and sums in a
 * fixed order.
 */
#ifndef KILN_KK_CONV_CUH
#define KILN_KK_CONV_CUH

#include "cuda/kernels/kk_common.cuh"

template <typename T>
__global__ void kk_im2col_k(kk_conv_job j)
{
    int64_t L = j.OH * j.OW, KK = j.kh * j.kw, total = j.NC * KK * L;
    const T *x = (const T *)j.src;
    T *cols = (T *)j.dst;
    for (int64_t e = kk_gtid(); e < total; e += kk_gstride()) {
        int64_t l = e % L, r = e / L;
        int64_t k = r % KK, p = r / KK;
        int64_t oh = l / j.OW, ow = l - oh * j.OW;
        int64_t h = oh * j.stride - j.pad + k / j.kw, w = ow * j.stride - j.pad + k % j.kw;
        cols[e] = h >= 0 && h < j.H && w >= 0 && w < j.W ? x[(p * j.H + h) * j.W + w] : (T)0;
    }
}

template <typename T>
__global__ void kk_col2im_k(kk_conv_job j)
{
    int64_t L = j.OH * j.OW, KK = j.kh * j.kw, total = j.NC * j.H * j.W;
    const T *cols = (const T *)j.src;
    T *img = (T *)j.dst;
    for (int64_t e = kk_gtid(); e < total; e += kk_gstride()) {
        int64_t w = e % j.W, t = e / j.W;
        int64_t h = t % j.H, p = t / j.H;
        const T *cp = cols + p * KK * L;
        T acc = 0;
        for (int64_t i = 0; i < j.kh; i++) {
            int64_t hh = h + j.pad - i;
            if (hh < 0 || hh % j.stride)
                continue;
            int64_t oh = hh / j.stride;
            if (oh >= j.OH)
                continue;
            for (int64_t jj = 0; jj < j.kw; jj++) {
                int64_t ww = w + j.pad - jj;
                if (ww < 0 || ww % j.stride)
                    continue;
                int64_t ow = ww / j.stride;
                if (ow < j.OW)
                    acc += cp[(i * j.kw + jj) * L + oh * j.OW + ow];
            }
        }
        img[e] = acc;
    }
}

static int KK_NAME(im2col)(kk_ctx *c, const kk_conv_job *j)
{
    int64_t n = j->NC * j->kh * j->kw * j->OH * j->OW;
    if (n == 0)
        return 0;
    if (j->dt == KK_F64) {
        auto kfn = kk_im2col_k<double>;
        return KK_LAUNCH(c, 0, kfn, kk_blocks(c, n, 1), KK_BLOCK, 0, *j);
    }
    auto kfn = kk_im2col_k<float>;
    return KK_LAUNCH(c, 0, kfn, kk_blocks(c, n, 1), KK_BLOCK, 0, *j);
}

static int KK_NAME(col2im)(kk_ctx *c, const kk_conv_job *j)
{
    int64_t n = j->NC * j->H * j->W;
    if (n == 0)
        return 0;
    if (j->dt == KK_F64) {
        auto kfn = kk_col2im_k<double>;
        return KK_LAUNCH(c, 0, kfn, kk_blocks(c, n, 1), KK_BLOCK, 0, *j);
    }
    auto kfn = kk_col2im_k<float>;
    return KK_LAUNCH(c, 0, kfn, kk_blocks(c, n, 1), KK_BLOCK, 0, *j);
}

#endif
