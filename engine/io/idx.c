/* idx.c — the IDX format of MNIST and Fashion-MNIST, gzipped or plain (zlib's gzread
 * reads both transparently).
 *
 * Layout: two zero bytes, a type byte, the number of dimensions, then one big-endian
 * 32-bit size per dimension and the elements in big-endian C order. Types: 0x08 u8
 * (loaded as u8), 0x09 i8, 0x0B i16 and 0x0C i32 (loaded as i32), 0x0D f32, 0x0E f64.
 * A file whose length does not match its header (truncated, or with trailing bytes) is
 * an error; every error is an ERR_IO naming the file.
 */
#include "engine/io/fileopen.h"
#include "engine/tensor/tensor_impl.h"
#include "engine/base/hostmem.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

/* reads exactly n bytes; returns the count read, or -1 on a decompression error */
static int64_t read_all(gzFile g, void *buf, size_t n)
{
    size_t done = 0;
    while (done < n) {
        unsigned chunk = n - done > (1u << 30) ? (1u << 30) : (unsigned)(n - done);
        int r = gzread(g, (char *)buf + done, chunk);
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        done += (size_t)r;
    }
    return (int64_t)done;
}

static const char *gz_message(gzFile g)
{
    int code;
    const char *m = gzerror(g, &code);
    return code == Z_ERRNO ? strerror(errno) : m;
}

tensor *tensor_load_idx(const char *path, eng_error *err)
{
    int fd = eng_file_open_fd(path, 0, "load_idx", err);
    gzFile g = fd < 0 ? NULL : gzdopen(fd, "rb");
    unsigned char *data = NULL, *conv = NULL;
    tensor *t = NULL;
    if (fd < 0)
        return NULL;
    if (!g) {
        close(fd);
        eng_fail(err, ERR_IO, "load_idx: cannot read '%s': out of memory", path);
        return NULL;
    }
    unsigned char head[4];
    int64_t got = read_all(g, head, 4);
    if (got < 0) {
        eng_fail(err, ERR_IO, "load_idx: '%s': %s", path, gz_message(g));
        goto err;
    }
    if (got < 4 || head[0] != 0 || head[1] != 0) {
        eng_fail(err, ERR_IO, "load_idx: '%s' is not an IDX file (its first two bytes are not zero)", path);
        goto err;
    }
    size_t es;
    tensor_dtype dt;
    switch (head[2]) {
    case 0x08: es = 1; dt = DT_U8; break;
    case 0x09: es = 1; dt = DT_I32; break;
    case 0x0B: es = 2; dt = DT_I32; break;
    case 0x0C: es = 4; dt = DT_I32; break;
    case 0x0D: es = 4; dt = DT_F32; break;
    case 0x0E: es = 8; dt = DT_F64; break;
    default:
        eng_fail(err, ERR_IO, "load_idx: '%s' has unknown element type 0x%02x", path, head[2]);
        goto err;
    }
    int ndim = head[3];
    if (ndim < 1 || ndim > TENSOR_MAXDIM) {
        eng_fail(err, ERR_IO, "load_idx: '%s' has %d dimensions; Kiln reads 1 to %d", path, ndim,
                 TENSOR_MAXDIM);
        goto err;
    }
    unsigned char dims[4 * TENSOR_MAXDIM];
    if (read_all(g, dims, 4 * (size_t)ndim) != 4 * ndim) {
        eng_fail(err, ERR_IO, "load_idx: '%s' is truncated inside its header", path);
        goto err;
    }
    int64_t shape[TENSOR_MAXDIM], n = 1;
    for (int d = 0; d < ndim; d++) {
        const unsigned char *p = dims + 4 * d;
        shape[d] = (int64_t)p[0] << 24 | (int64_t)p[1] << 16 | (int64_t)p[2] << 8 | p[3];
        if (shape[d] > 0 && n > ((int64_t)1 << 40) / shape[d]) {
            eng_fail(err, ERR_IO, "load_idx: '%s' has an implausible shape", path);
            goto err;
        }
        n *= shape[d];
    }
    size_t bytes = (size_t)n * es; /* below 2^43: no overflow */
    if (!(data = eng_host_malloc(bytes, "load_idx", err)))
        goto err;
    got = read_all(g, data, bytes);
    if (got < 0) {
        eng_fail(err, ERR_IO, "load_idx: '%s': %s", path, gz_message(g));
        goto err;
    }
    if ((size_t)got != bytes) {
        eng_fail(err, ERR_IO, "load_idx: '%s' is truncated: its header promises %zu bytes of data, found %lld",
                 path, bytes, (long long)got);
        goto err;
    }
    unsigned char extra;
    got = read_all(g, &extra, 1);
    if (got != 0) {
        eng_fail(err, ERR_IO, "load_idx: '%s' %s", path,
                 got < 0 ? "is corrupt after its data" : "has bytes after the data its header describes");
        goto err;
    }
    if (dt != DT_U8) {
        /* big-endian to host order, widening i8 and i16 to i32 */
        size_t os = tensor_dtype_size(dt);
        if (!(conv = eng_host_malloc((size_t)n * os + 1, "load_idx", err)))
            goto err;
        for (int64_t i = 0; i < n; i++) {
            const unsigned char *p = data + (size_t)i * es;
            uint64_t u = 0;
            for (size_t k = 0; k < es; k++)
                u = u << 8 | p[k];
            if (head[2] == 0x09) {
                int32_t v = (int8_t)u;
                memcpy(conv + i * 4, &v, 4);
            } else if (head[2] == 0x0B) {
                int32_t v = (int16_t)u;
                memcpy(conv + i * 4, &v, 4);
            } else if (es == 4) {
                uint32_t v = (uint32_t)u;
                memcpy(conv + i * 4, &v, 4);
            } else {
                memcpy(conv + i * 8, &u, 8);
            }
        }
    }
    t = tensor_from_host(conv ? conv : data, dt, ndim, shape, err);
err:
    gzclose(g);
    free(data);
    free(conv);
    return t;
}
