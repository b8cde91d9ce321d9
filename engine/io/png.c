/* png.c — PNG files from 8-bit pixels: the signature, IHDR, one IDAT of zlib data
 * (every row with filter 0), IEND, each chunk closed by zlib's crc32; and base64. */
#include "engine/io/png.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* writes length, type, data and CRC at p; returns the bytes written */
static size_t put_chunk(unsigned char *p, const char *type, const unsigned char *data, size_t len)
{
    put_be32(p, (uint32_t)len);
    memcpy(p + 4, type, 4);
    if (len)
        memmove(p + 8, data, len);
    uLong crc = crc32(0L, Z_NULL, 0);
    crc = crc32(crc, p + 4, (uInt)(len + 4));
    put_be32(p + 8 + len, (uint32_t)crc);
    return len + 12;
}

int png_encode(const unsigned char *pixels, int width, int height, int channels,
               unsigned char **out, size_t *out_len)
{
    static const unsigned char signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    static const unsigned char color_type[5] = {0, 0, 4, 2, 6}; /* by channels */
    unsigned char *raw = NULL, *file = NULL;
    *out = NULL;
    *out_len = 0;
    if (width <= 0 || height <= 0 || channels < 1 || channels > 4 || channels == 2 ||
        (size_t)width * (size_t)channels > (1u << 28) / (size_t)height)
        return -1;
    size_t row = (size_t)width * (size_t)channels;
    size_t raw_len = (row + 1) * (size_t)height;
    if (!(raw = malloc(raw_len)))
        goto err;
    for (int y = 0; y < height; y++) {
        raw[(size_t)y * (row + 1)] = 0; /* filter: none */
        memcpy(raw + (size_t)y * (row + 1) + 1, pixels + (size_t)y * row, row);
    }
    uLong bound = compressBound((uLong)raw_len);
    size_t cap = 8 + 25 + 12 + bound + 12;
    if (!(file = malloc(cap)))
        goto err;
    memcpy(file, signature, 8);
    size_t at = 8;
    unsigned char ihdr[13];
    put_be32(ihdr, (uint32_t)width);
    put_be32(ihdr + 4, (uint32_t)height);
    ihdr[8] = 8;                     /* bit depth */
    ihdr[9] = color_type[channels];
    ihdr[10] = ihdr[11] = ihdr[12] = 0; /* deflate, adaptive filtering, no interlace */
    at += put_chunk(file + at, "IHDR", ihdr, sizeof ihdr);
    uLongf zlen = bound;
    if (compress(file + at + 8, &zlen, raw, (uLong)raw_len) != Z_OK)
        goto err;
    at += put_chunk(file + at, "IDAT", file + at + 8, zlen);
    at += put_chunk(file + at, "IEND", NULL, 0);
    free(raw);
    *out = file;
    *out_len = at;
    return 0;
err:
    free(raw);
    free(file);
    return -1;
}

char *base64_encode(const unsigned char *data, size_t len)
{
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *text = malloc((len + 2) / 3 * 4 + 1), *p = text;
    if (!text)
        return NULL;
    size_t i = 0;
    for (; i + 2 < len; i += 3) {
        uint32_t v = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8 | data[i + 2];
        *p++ = alphabet[v >> 18 & 63];
        *p++ = alphabet[v >> 12 & 63];
        *p++ = alphabet[v >> 6 & 63];
        *p++ = alphabet[v & 63];
    }
    if (i < len) {
        uint32_t v = (uint32_t)data[i] << 16 | (i + 1 < len ? (uint32_t)data[i + 1] << 8 : 0);
        *p++ = alphabet[v >> 18 & 63];
        *p++ = alphabet[v >> 12 & 63];
        *p++ = i + 1 < len ? alphabet[v >> 6 & 63] : '=';
        *p++ = '=';
    }
    *p = '\0';
    return text;
}
