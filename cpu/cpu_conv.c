/* cpu_conv.c — im2col and col2im for conv2d and pooling (engine/tensor/backend.h): the
 * windows of an image laid out as the columns of a matrix, and the adjoint.
 *
 * One (n, c) image plane per OpenMP iteration: im2col writes the kh*kw rows of that
 * plane's columns, col2im sums them back into that plane only, so no two threads touch
 * the same output. Inner loops run along an output row (contiguous), stride 1 with a
 * memcpy and the padded edges zeroed.
 */
#include "cpu/cpu_internal.h"

#include <omp.h>
#include <string.h>

/* [lo, hi): the output positions o in [0, n_out) whose input index o*stride - pad + k
 * falls inside [0, n_in) */
static void valid_range(int64_t n_in, int64_t n_out, int64_t k, int64_t stride, int64_t pad, int64_t *lo,
                        int64_t *hi)
{
    int64_t a = pad - k; /* o*stride >= a */
    int64_t l = a <= 0 ? 0 : (a + stride - 1) / stride;
    int64_t b = n_in + pad - k; /* o*stride < b */
    int64_t h = b <= 0 ? 0 : (b + stride - 1) / stride;
    if (h > n_out)
        h = n_out;
    if (l > h)
        l = h;
    *lo = l;
    *hi = h;
}

#define IM2COL(T, name)                                                                            \
    static void name(T *restrict cols, const T *restrict x, int64_t NC, int64_t H, int64_t W,     \
                     int64_t kh, int64_t kw, int64_t st, int64_t pad, int64_t OH, int64_t OW)     \
    {                                                                                              \
        int64_t L = OH * OW;                                                                       \
        _Pragma("omp parallel for schedule(static) if (NC * kh * kw * L > 32768)")                \
        for (int64_t p = 0; p < NC; p++) {                                                         \
            const T *xp = x + p * H * W;                                                           \
            for (int64_t i = 0; i < kh; i++)                                                       \
                for (int64_t j = 0; j < kw; j++) {                                                 \
                    T *o = cols + (p * kh * kw + i * kw + j) * L;                                  \
                    int64_t h0, h1, w0, w1;                                                        \
                    valid_range(H, OH, i, st, pad, &h0, &h1);                                      \
                    valid_range(W, OW, j, st, pad, &w0, &w1);                                      \
                    memset(o, 0, sizeof(T) * (size_t)(h0 * OW));                                   \
                    for (int64_t oh = h0; oh < h1; oh++) {                                         \
                        T *orow = o + oh * OW;                                                     \
                        const T *xr = xp + (oh * st - pad + i) * W - pad + j;                      \
                        for (int64_t ow = 0; ow < w0; ow++)                                        \
                            orow[ow] = 0;                                                          \
                        if (st == 1)                                                               \
                            memcpy(orow + w0, xr + w0, sizeof(T) * (size_t)(w1 - w0));             \
                        else                                                                       \
                            for (int64_t ow = w0; ow < w1; ow++)                                   \
                                orow[ow] = xr[ow * st];                                            \
                        for (int64_t ow = w1; ow < OW; ow++)                                       \
                            orow[ow] = 0;                                                          \
                    }                                                                              \
                    memset(o + h1 * OW, 0, sizeof(T) * (size_t)((OH - h1) * OW));                  \
                }                                                                                  \
        }                                                                                          \
    }
IM2COL(float, im2col_f32)
IM2COL(double, im2col_f64)

#define COL2IM(T, name)                                                                            \
    static void name(T *restrict img, const T *restrict cols, int64_t NC, int64_t H, int64_t W,   \
                     int64_t kh, int64_t kw, int64_t st, int64_t pad, int64_t OH, int64_t OW)     \
    {                                                                                              \
        int64_t L = OH * OW;                                                                       \
        _Pragma("omp parallel for schedule(static) if (NC * kh * kw * L > 32768)")                \
        for (int64_t p = 0; p < NC; p++) {                                                         \
            T *xp = img + p * H * W;                                                               \
            memset(xp, 0, sizeof(T) * (size_t)(H * W));                                            \
            for (int64_t i = 0; i < kh; i++)                                                       \
                for (int64_t j = 0; j < kw; j++) {                                                 \
                    const T *c = cols + (p * kh * kw + i * kw + j) * L;                            \
                    int64_t h0, h1, w0, w1;                                                        \
                    valid_range(H, OH, i, st, pad, &h0, &h1);                                      \
                    valid_range(W, OW, j, st, pad, &w0, &w1);                                      \
                    for (int64_t oh = h0; oh < h1; oh++) {                                         \
                        const T *crow = c + oh * OW;                                               \
                        T *xr = xp + (oh * st - pad + i) * W - pad + j;                            \
                        if (st == 1) {                                                             \
                            _Pragma("omp simd") for (int64_t ow = w0; ow < w1; ow++) xr[ow] += crow[ow]; \
                        } else {                                                                   \
                            for (int64_t ow = w0; ow < w1; ow++)                                   \
                                xr[ow * st] += crow[ow];                                           \
                        }                                                                          \
                    }                                                                              \
                }                                                                                  \
        }                                                                                          \
    }
COL2IM(float, col2im_f32)
COL2IM(double, col2im_f64)

/* checks the shapes both entries share; fills the sizes */
static int conv_shapes(const tensor *img, const tensor *cols, int kh, int kw, int stride, int pad, int64_t *NC,
                       int64_t *OH, int64_t *OW, const char *who, eng_error *err)
{
    if (img->ndim != 4 || cols->ndim != 3 || img->dtype != cols->dtype)
        return eng_fail(err, ERR_SHAPE, "%s: expects [N, C, H, W] and [N, C*kh*kw, OH*OW] of one dtype", who);
    if (img->dtype != DT_F32 && img->dtype != DT_F64)
        return eng_fail(err, ERR_TYPE, "%s: f32 or f64, got %s", who, tensor_dtype_name(img->dtype));
    if (kh < 1 || kw < 1 || stride < 1 || pad < 0)
        return eng_fail(err, ERR_VALUE, "%s: bad window (kernel %d x %d, stride %d, padding %d)", who, kh, kw,
                        stride, pad);
    int64_t H = img->shape[2], W = img->shape[3];
    if (H + 2 * pad < kh || W + 2 * pad < kw)
        return eng_fail(err, ERR_SHAPE, "%s: kernel larger than the padded input", who);
    *OH = (H + 2 * pad - kh) / stride + 1;
    *OW = (W + 2 * pad - kw) / stride + 1;
    *NC = img->shape[0] * img->shape[1];
    if (cols->shape[0] != img->shape[0] || cols->shape[1] != img->shape[1] * kh * kw ||
        cols->shape[2] != *OH * *OW)
        return eng_fail(err, ERR_SHAPE, "%s: the columns' shape does not match the image", who);
    if (!tensor_is_contiguous(img) || !tensor_is_contiguous(cols))
        return eng_fail(err, ERR_RUNTIME, "%s: both tensors must be contiguous", who);
    return 0;
}

int cpu_im2col(tensor *cols, const tensor *x, int kh, int kw, int stride, int pad, eng_error *err)
{
    int64_t NC, OH, OW;
    if (conv_shapes(x, cols, kh, kw, stride, pad, &NC, &OH, &OW, "im2col", err) < 0)
        return -1;
    if (x->dtype == DT_F32)
        im2col_f32((float *)cpu_ptr(cols), (const float *)cpu_ptr(x), NC, x->shape[2], x->shape[3], kh, kw, stride, pad, OH, OW);
    else
        im2col_f64((double *)cpu_ptr(cols), (const double *)cpu_ptr(x), NC, x->shape[2], x->shape[3], kh, kw, stride, pad, OH, OW);
    return 0;
}

int cpu_col2im(tensor *img, const tensor *cols, int kh, int kw, int stride, int pad, eng_error *err)
{
    int64_t NC, OH, OW;
    if (conv_shapes(img, cols, kh, kw, stride, pad, &NC, &OH, &OW, "col2im", err) < 0)
        return -1;
    if (img->dtype == DT_F32)
        col2im_f32((float *)cpu_ptr(img), (const float *)cpu_ptr(cols), NC, img->shape[2], img->shape[3], kh, kw, stride, pad, OH, OW);
    else
        col2im_f64((double *)cpu_ptr(img), (const double *)cpu_ptr(cols), NC, img->shape[2], img->shape[3], kh, kw, stride, pad, OH, OW);
    return 0;
}
