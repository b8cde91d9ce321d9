/* png.h — an 8-bit PNG encoder (grey or RGB, no interlace) on zlib, and base64.
 *
 * Images reach Jupyter as image/png, base64 text: engine/lang/builtins_display.c turns a
 * tensor into 8-bit pixels, png_encode makes the file, base64_encode the text.
 * Both return malloc'ed memory the caller frees, or fail on allocation (never abort).
 */
#ifndef KILN_PNG_H
#define KILN_PNG_H

#include <stddef.h>

/* pixels: height rows of width*channels bytes (channels 1 grey, 3 RGB, 4 RGBA).
 * Returns 0 with *out (malloc'ed) and *out_len, or -1 (bad size, memory, zlib). */
int png_encode(const unsigned char *pixels, int width, int height, int channels,
               unsigned char **out, size_t *out_len);

/* RFC 4648 base64 with '=' padding, NUL-terminated; NULL on allocation failure. */
char *base64_encode(const unsigned char *data, size_t len);

#endif
