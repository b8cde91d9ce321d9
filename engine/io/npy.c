/* npy.c — NumPy's .npy format: load (versions 1.0, 2.0 and 3.0; little- or big-endian;
 * C or Fortran order) and save (version 1.0, little-endian, C order).
 *
 * Loaded dtypes: bool '|b1', '|u1', '<i4', '<i8', '<f2' (f16), '<f4', '<f8' as they
 * are; '|i1', '<i2' and '<u2' widen to i32 and '<u4' to i64 (no loss). Anything else
 * (complex, unsigned 64-bit, strings, objects) is refused with an error naming the file
 * and the dtype. Saved dtypes are the tensor's own, except bf16, which NumPy lacks and
 * is saved as '<f4'. Every error is an ERR_IO that names the file and says what is wrong.
 */
#include "engine/io/fileopen.h"
#include "engine/tensor/tensor_impl.h"
#include "engine/base/hostmem.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* what a header says */
typedef struct npy_header {
    char descr[32];             /* e.g. "<f4" */
    int fortran;                /* fortran_order */
    int ndim;                   /* entries of shape */
    int64_t shape[TENSOR_MAXDIM];
} npy_header;

/* ---- a tiny parser for the header's Python dict literal ---- */

typedef struct hparse {
    const char *s; /* current position */
    const char *e; /* end */
} hparse;

static void skip_ws(hparse *p)
{
    while (p->s < p->e && (*p->s == ' ' || *p->s == '\t' || *p->s == '\n' || *p->s == '\r'))
        p->s++;
}

static int expect(hparse *p, char c)
{
    skip_ws(p);
    if (p->s < p->e && *p->s == c) {
        p->s++;
        return 0;
    }
    return -1;
}

static int parse_str(hparse *p, char *out, size_t size)
{
    skip_ws(p);
    if (p->s >= p->e || (*p->s != '\'' && *p->s != '"'))
        return -1;
    char q = *p->s++;
    size_t n = 0;
    while (p->s < p->e && *p->s != q) {
        if (n + 1 >= size)
            return -1;
        out[n++] = *p->s++;
    }
    if (p->s >= p->e)
        return -1;
    p->s++;
    out[n] = 0;
    return 0;
}

static int parse_header(const char *text, size_t len, npy_header *h, const char **what)
{
    hparse p = {text, text + len};
    int have_descr = 0, have_order = 0, have_shape = 0;
    memset(h, 0, sizeof *h);
    *what = "the header is not a Python dict";
    if (expect(&p, '{') < 0)
        return -1;
    for (;;) {
        skip_ws(&p);
        if (p.s < p.e && *p.s == '}')
            break;
        char key[32];
        if (parse_str(&p, key, sizeof key) < 0 || expect(&p, ':') < 0)
            return -1;
        skip_ws(&p);
        if (strcmp(key, "descr") == 0) {
            *what = "the header's 'descr' is not a simple dtype string";
            if (parse_str(&p, h->descr, sizeof h->descr) < 0)
                return -1;
            have_descr = 1;
        } else if (strcmp(key, "fortran_order") == 0) {
            if ((size_t)(p.e - p.s) >= 4 && memcmp(p.s, "True", 4) == 0) {
                h->fortran = 1;
                p.s += 4;
            } else if ((size_t)(p.e - p.s) >= 5 && memcmp(p.s, "False", 5) == 0) {
                p.s += 5;
            } else {
                *what = "the header's 'fortran_order' is not True or False";
                return -1;
            }
            have_order = 1;
        } else if (strcmp(key, "shape") == 0) {
            *what = "the header's 'shape' is not a tuple of integers";
            if (expect(&p, '(') < 0)
                return -1;
            for (;;) {
                skip_ws(&p);
                if (p.s < p.e && *p.s == ')') {
                    p.s++;
                    break;
                }
                char *end;
                long long v = strtoll(p.s, &end, 10);
                if (end == p.s || v < 0)
                    return -1;
                if (h->ndim >= TENSOR_MAXDIM) {
                    *what = "the array has more dimensions than Kiln's 8";
                    return -1;
                }
                h->shape[h->ndim++] = v;
                p.s = end;
                skip_ws(&p);
                if (p.s < p.e && *p.s == ',')
                    p.s++;
            }
            have_shape = 1;
        } else {
            *what = "the header has an unknown key";
            return -1;
        }
        skip_ws(&p);
        if (p.s < p.e && *p.s == ',')
            p.s++;
    }
    if (!have_descr || !have_order || !have_shape) {
        *what = "the header lacks 'descr', 'fortran_order' or 'shape'";
        return -1;
    }
    return 0;
}

/* descr -> (file element size, kiln dtype, how to convert); -1 if unsupported */
enum { CV_NONE, CV_I1, CV_I2, CV_U2, CV_U4 };

static int parse_descr(const char *d, int *swap, size_t *fsize, tensor_dtype *dt, int *conv)
{
    char order = d[0];
    if (order != '<' && order != '>' && order != '|' && order != '=')
        return -1;
    const char *k = d + 1;
    *swap = order == '>';
    *conv = CV_NONE;
    static const struct {
        const char *code; /* type and size */
        size_t size;      /* bytes in the file */
        tensor_dtype dt;      /* loaded as */
        int conv;         /* widening */
    } map[] = {
        {"b1", 1, DT_BOOL, CV_NONE}, {"u1", 1, DT_U8, CV_NONE},  {"i1", 1, DT_I32, CV_I1},
        {"i2", 2, DT_I32, CV_I2},    {"u2", 2, DT_I32, CV_U2},   {"i4", 4, DT_I32, CV_NONE},
        {"u4", 4, DT_I64, CV_U4},    {"i8", 8, DT_I64, CV_NONE}, {"f2", 2, DT_F16, CV_NONE},
        {"f4", 4, DT_F32, CV_NONE},  {"f8", 8, DT_F64, CV_NONE},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strcmp(k, map[i].code) == 0) {
            *fsize = map[i].size;
            *dt = map[i].dt;
            *conv = map[i].conv;
            if (map[i].size == 1)
                *swap = 0;
            return 0;
        }
    return -1;
}

static void byteswap(unsigned char *p, size_t n, size_t es)
{
    for (size_t i = 0; i < n; i++, p += es)
        for (size_t a = 0, b = es - 1; a < b; a++, b--) {
            unsigned char t = p[a];
            p[a] = p[b];
            p[b] = t;
        }
}

/* reads a .npy from f (owned: closed here); path names it in messages */
static tensor *load_npy_stream(FILE *f, const char *path, eng_error *err)
{
    unsigned char *data = NULL, *wide = NULL;
    char *htext = NULL;
    tensor *t = NULL, *tr = NULL;
    unsigned char pre[12];
    size_t got = fread(pre, 1, 10, f);
    if (got < 10 || memcmp(pre, "\x93NUMPY", 6) != 0) {
        eng_fail(err, ERR_IO, "load_npy: '%s' is not a .npy file (no \\x93NUMPY magic)", path);
        goto err;
    }
    int major = pre[6];
    size_t hlen;
    if (major == 1) {
        hlen = (size_t)pre[8] | (size_t)pre[9] << 8;
    } else if (major == 2 || major == 3) {
        if (fread(pre + 10, 1, 2, f) != 2) {
            eng_fail(err, ERR_IO, "load_npy: '%s' is truncated inside its header", path);
            goto err;
        }
        hlen = (size_t)pre[8] | (size_t)pre[9] << 8 | (size_t)pre[10] << 16 | (size_t)pre[11] << 24;
    } else {
        eng_fail(err, ERR_IO, "load_npy: '%s' has .npy format version %d.%d; Kiln reads 1.0, 2.0 and 3.0",
                 path, major, pre[7]);
        goto err;
    }
    if (hlen > (1u << 24)) {
        eng_fail(err, ERR_IO, "load_npy: '%s' has an implausible header length %zu", path, hlen);
        goto err;
    }
    htext = malloc(hlen + 1);
    if (!htext) {
        eng_fail(err, ERR_MEMORY, "load_npy: out of memory");
        goto err;
    }
    if (fread(htext, 1, hlen, f) != hlen) {
        eng_fail(err, ERR_IO, "load_npy: '%s' is truncated inside its header", path);
        goto err;
    }
    htext[hlen] = 0;
    npy_header h;
    const char *what;
    if (parse_header(htext, hlen, &h, &what) < 0) {
        eng_fail(err, ERR_IO, "load_npy: '%s': %s", path, what);
        goto err;
    }
    int swap, conv;
    size_t fsize;
    tensor_dtype dt;
    if (parse_descr(h.descr, &swap, &fsize, &dt, &conv) < 0) {
        eng_fail(err, ERR_IO, "load_npy: '%s' holds dtype '%s', which Kiln does not load "
                 "(bool, u1, i1, i2, u2, i4, u4, i8, f2, f4, f8)", path, h.descr);
        goto err;
    }
    int64_t n = 1;
    for (int d = 0; d < h.ndim; d++) {
        if (h.shape[d] > 0 && n > ((int64_t)1 << 46) / h.shape[d]) {
            eng_fail(err, ERR_IO, "load_npy: '%s' has an implausible shape", path);
            goto err;
        }
        n *= h.shape[d];
    }
    size_t bytes = (size_t)n * fsize; /* below 2^49: no overflow */
    struct stat st;
    long at = ftell(f);
    if (at >= 0 && fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) && (off_t)bytes > st.st_size - at) {
        /* a header promising more than the file holds: no allocation for it */
        eng_fail(err, ERR_IO, "load_npy: '%s' is truncated: its header promises %zu bytes of data, the file holds %lld",
                 path, bytes, (long long)(st.st_size - at));
        goto err;
    }
    if (!(data = eng_host_malloc(bytes, "load_npy", err)))
        goto err;
    got = fread(data, 1, bytes, f);
    if (got != bytes) {
        eng_fail(err, ERR_IO, "load_npy: '%s' is truncated: its header promises %zu bytes of data, the file holds %zu",
                 path, bytes, got);
        goto err;
    }
    if (swap)
        byteswap(data, (size_t)n, fsize);
    if (conv != CV_NONE) {
        size_t ws = conv == CV_U4 ? 8 : 4;
        if (!(wide = eng_host_malloc((size_t)n * ws + 1, "load_npy", err)))
            goto err;
        for (int64_t i = 0; i < n; i++) {
            int64_t v = 0;
            if (conv == CV_I1) {
                v = (int8_t)data[i];
            } else if (conv == CV_I2) {
                int16_t x;
                memcpy(&x, data + i * 2, 2);
                v = x;
            } else if (conv == CV_U2) {
                uint16_t x;
                memcpy(&x, data + i * 2, 2);
                v = x;
            } else {
                uint32_t x;
                memcpy(&x, data + i * 4, 4);
                v = x;
            }
            if (ws == 4) {
                int32_t w = (int32_t)v;
                memcpy(wide + i * 4, &w, 4);
            } else {
                memcpy(wide + i * 8, &v, 8);
            }
        }
        free(data);
        data = wide;
        wide = NULL;
    }
    if (!h.fortran || h.ndim < 2) {
        t = tensor_from_host(data, dt, h.ndim, h.shape, err);
    } else {
        /* column-major: the data is the C-order array of the reversed shape */
        int64_t rs[TENSOR_MAXDIM];
        int perm[TENSOR_MAXDIM];
        for (int d = 0; d < h.ndim; d++) {
            rs[d] = h.shape[h.ndim - 1 - d];
            perm[d] = h.ndim - 1 - d;
        }
        tensor *r = tensor_from_host(data, dt, h.ndim, rs, err);
        if (r) {
            tr = tensor_permute(r, perm, h.ndim, err);
            tensor_decref(r);
            if (tr)
                t = tensor_clone(tr, err);
        }
    }
err:
    if (f)
        fclose(f);
    free(htext);
    free(data);
    free(wide);
    tensor_decref(tr);
    return t;
}

tensor *tensor_load_npy(const char *path, eng_error *err)
{
    FILE *f = eng_file_open(path, "rb", "load_npy", err);
    if (!f)
        return NULL;
    return load_npy_stream(f, path, err);
}

tensor *tensor_load_npy_mem(const void *buf, size_t len, const char *name, eng_error *err)
{
    FILE *f = len ? fmemopen((void *)buf, len, "rb") : NULL;
    if (!f) {
        eng_fail(err, ERR_IO, "load_npy: '%s' is empty or cannot be read", name);
        return NULL;
    }
    return load_npy_stream(f, name, err);
}

/* the bytes of a .npy file for t: malloc'ed, *len set; NULL with err on failure */
unsigned char *tensor_npy_encode(const tensor *t, size_t *len, eng_error *err)
{
    const char *descr;
    tensor *src = NULL;
    void *host = NULL;
    unsigned char *buf = NULL;
    switch (t->dtype) {
    case DT_BOOL: descr = "|b1"; break;
    case DT_U8: descr = "|u1"; break;
    case DT_I32: descr = "<i4"; break;
    case DT_I64: descr = "<i8"; break;
    case DT_F16: descr = "<f2"; break;
    case DT_BF16: descr = "<f4"; break; /* NumPy has no bf16 */
    case DT_F32: descr = "<f4"; break;
    case DT_F64: descr = "<f8"; break;
    default:
        eng_fail(err, ERR_TYPE, "save_npy: dtype %s cannot be saved", tensor_dtype_name(t->dtype));
        return NULL;
    }
    if (t->dtype == DT_BF16)
        src = tensor_cast(t, DT_F32, err);
    else {
        src = (tensor *)t;
        tensor_incref(src);
    }
    if (!src)
        return NULL;
    if (!(host = tensor_to_host(src, err)))
        goto err;
    char shape[TENSOR_SHAPE_BUF * 2];
    size_t sl = 0;
    sl += (size_t)snprintf(shape + sl, sizeof shape - sl, "(");
    for (int d = 0; d < t->ndim; d++)
        sl += (size_t)snprintf(shape + sl, sizeof shape - sl, "%lld,%s", (long long)t->shape[d],
                               d + 1 < t->ndim ? " " : "");
    if (t->ndim > 1)
        shape[--sl] = 0; /* "(3, 4)" not "(3, 4,)" */
    snprintf(shape + sl, sizeof shape - sl, ")");
    char header[512];
    int hl = snprintf(header, sizeof header, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr,
                      shape);
    /* pad with spaces and a newline so that the data starts on a multiple of 64 */
    int total = 10 + hl + 1;
    int pad = (64 - total % 64) % 64;
    for (int i = 0; i < pad; i++)
        header[hl++] = ' ';
    header[hl++] = '\n';
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(hl & 0xff),
                             (unsigned char)(hl >> 8)};
    size_t bytes = tensor_nbytes(src);
    if (!(buf = eng_host_malloc(10 + (size_t)hl + bytes, "save_npy", err)))
        goto err;
    memcpy(buf, pre, 10);
    memcpy(buf + 10, header, (size_t)hl);
    memcpy(buf + 10 + hl, host, bytes);
    *len = 10 + (size_t)hl + bytes;
err:
    free(host);
    tensor_decref(src);
    return buf;
}

int tensor_save_npy(const tensor *t, const char *path, eng_error *err)
{
    size_t len = 0;
    unsigned char *buf = tensor_npy_encode(t, &len, err);
    if (!buf)
        return -1;
    FILE *f = eng_file_open(path, "wb", "save_npy", err);
    int rc = -1;
    if (!f)
        ; /* err says why */
    else if (fwrite(buf, 1, len, f) != len) {
        eng_fail(err, ERR_IO, "save_npy: writing '%s' failed: %s", path, strerror(errno));
        fclose(f);
    } else if (fclose(f) != 0)
        eng_fail(err, ERR_IO, "save_npy: writing '%s' failed: %s", path, strerror(errno));
    else
        rc = 0;
    free(buf);
    return rc;
}
