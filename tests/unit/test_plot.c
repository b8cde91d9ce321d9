/* test_plot.c — unit tests of rich display: base64 against RFC 4648's vectors; PNG
 * files (signature, IHDR, every chunk's CRC, IDAT inflated by zlib and compared with
 * the pixels); SVG charts (tags balanced, one class="series" element per series, a
 * legend only with labels, nice 1-2-5 tick steps); and the built-ins plot, scatter,
 * hist, imshow and imgrid run through a session, checking the bundles they send.
 * Exits non-zero on the first failure. KILN_TEST_DUMP=dir writes the images there.
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "engine/engine.h"
#include "engine/io/plot.h"
#include "engine/io/png.h"
#include "tests/unit/check.h"


static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* ---- base64 ---- */
static void test_base64(void)
{
    static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const coded[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (int i = 0; i < 7; i++) {
        char *t = base64_encode((const unsigned char *)plain[i], strlen(plain[i]));
        CHECK_STR(t, coded[i]);
        free(t);
    }
    unsigned char bytes[3] = {0xff, 0xfe, 0x00};
    char *t = base64_encode(bytes, 3);
    CHECK_STR(t, "//4A");
    free(t);
}

static int b64_value(char ch)
{
    if (ch >= 'A' && ch <= 'Z') return ch - 'A';
    if (ch >= 'a' && ch <= 'z') return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9') return ch - '0' + 52;
    return ch == '+' ? 62 : ch == '/' ? 63 : -1;
}

/* decodes base64 text (test helper); malloc'ed */
static unsigned char *b64_decode(const char *text, size_t *len)
{
    size_t n = strlen(text);
    unsigned char *out = malloc(n / 4 * 3 + 3);
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n && text[i] != '='; i++) {
        int v = b64_value(text[i]);
        if (v < 0)
            continue;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    *len = o;
    return out;
}

/* ---- PNG ---- */

/* Checks the file's structure and CRCs; returns the inflated IDAT (malloc'ed) and
 * the header fields, or NULL. */
static unsigned char *png_check(const unsigned char *png, size_t len, uint32_t *w, uint32_t *h, int *color,
                                size_t *raw_len)
{
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    unsigned char *idat = NULL, *raw = NULL;
    size_t idat_len = 0, at = 8;
    int seen_end = 0;
    CHECK(len > 8 && !memcmp(png, sig, 8));
    while (at + 12 <= len) {
        uint32_t n = be32(png + at);
        CHECK(at + 12 + n <= len);
        if (at + 12 + n > len)
            break;
        const unsigned char *type = png + at + 4, *data = png + at + 8;
        uLong crc = crc32(crc32(0L, Z_NULL, 0), type, n + 4);
        CHECK(crc == be32(data + n));
        if (!memcmp(type, "IHDR", 4)) {
            CHECK(at == 8 && n == 13);
            *w = be32(data);
            *h = be32(data + 4);
            CHECK(data[8] == 8);
            *color = data[9];
        } else if (!memcmp(type, "IDAT", 4)) {
            idat = realloc(idat, idat_len + n);
            memcpy(idat + idat_len, data, n);
            idat_len += n;
        } else if (!memcmp(type, "IEND", 4)) {
            seen_end = 1;
            CHECK(n == 0 && at + 12 == len);
        }
        at += 12 + n;
    }
    CHECK(seen_end);
    int ch = *color == 2 ? 3 : *color == 6 ? 4 : *color == 4 ? 2 : 1;
    uLongf rl = (uLongf)((*w * (uint32_t)ch + 1) * *h);
    raw = malloc(rl ? rl : 1);
    CHECK(idat && uncompress(raw, &rl, idat, (uLong)idat_len) == Z_OK);
    *raw_len = rl;
    free(idat);
    return raw;
}

static void test_png(void)
{
    unsigned char rgb[2 * 3 * 3], grey[5 * 4];
    for (size_t i = 0; i < sizeof rgb; i++)
        rgb[i] = (unsigned char)(i * 13);
    for (size_t i = 0; i < sizeof grey; i++)
        grey[i] = (unsigned char)(255 - i * 7);
    unsigned char *png;
    size_t len, raw_len;
    uint32_t w = 0, h = 0;
    int color = -1;

    CHECK(png_encode(rgb, 3, 2, 3, &png, &len) == 0);
    unsigned char *raw = png_check(png, len, &w, &h, &color, &raw_len);
    CHECK(w == 3 && h == 2 && color == 2 && raw_len == 2 * (3 * 3 + 1));
    for (int y = 0; y < 2; y++) {
        CHECK(raw[y * 10] == 0); /* filter none */
        CHECK(!memcmp(raw + y * 10 + 1, rgb + y * 9, 9));
    }
    free(raw);
    free(png);

    CHECK(png_encode(grey, 5, 4, 1, &png, &len) == 0);
    raw = png_check(png, len, &w, &h, &color, &raw_len);
    CHECK(w == 5 && h == 4 && color == 0 && raw_len == 4 * 6);
    for (int y = 0; y < 4; y++)
        CHECK(!memcmp(raw + y * 6 + 1, grey + y * 5, 5));
    free(raw);
    free(png);

    CHECK(png_encode(grey, 0, 4, 1, &png, &len) == -1 && !png);
    CHECK(png_encode(grey, 5, 4, 2, &png, &len) == -1);
}

/* ---- SVG ---- */

/* 1 when every element is closed in order (a small XML tag matcher) */
static int tags_balanced(const char *svg)
{
    const char *stack[256];
    size_t lens[256];
    int depth = 0, elements = 0;
    for (const char *p = strchr(svg, '<'); p; p = strchr(p + 1, '<')) {
        const char *end = strchr(p, '>');
        if (!end)
            return 0;
        if (p[1] == '/') {
            size_t n = strcspn(p + 2, " >");
            if (!depth || lens[depth - 1] != n || strncmp(stack[depth - 1], p + 2, n))
                return 0;
            depth--;
        } else if (end[-1] != '/') {
            if (depth == 256)
                return 0;
            stack[depth] = p + 1;
            lens[depth++] = strcspn(p + 1, " >");
            elements++;
        } else {
            elements++;
        }
    }
    return depth == 0 && elements > 0;
}

static int count(const char *s, const char *what)
{
    int n = 0;
    for (const char *p = strstr(s, what); p; p = strstr(p + 1, what))
        n++;
    return n;
}

static void test_svg(void)
{
    double x[5] = {0, 1, 2, 3, 4}, y1[5] = {0, 1, 4, 9, 16}, y2[5] = {1, NAN, 3, 2, 1};
    plot_series s[3] = {
        {.x = x, .y = y1, .n = 5, .label = "squares <&>", .kind = PLOT_LINE},
        {.x = x, .y = y2, .n = 5, .kind = PLOT_SCATTER},
        {.x = x, .y = y2, .n = 5, .label = "bars", .kind = PLOT_BARS, .bar_width = 1},
    };
    plot_spec spec = {.series = s, .nseries = 3, .title = "a \"title\""};
    char *svg = plot_svg(&spec);
    CHECK(svg && !strncmp(svg, "<svg xmlns=\"http://www.w3.org/2000/svg\"", 39));
    CHECK(tags_balanced(svg));
    CHECK(count(svg, "class=\"series\"") == 3);
    CHECK(count(svg, "class=\"legend\"") == 1);
    CHECK(strstr(svg, "squares &lt;&amp;&gt;") && strstr(svg, "a &quot;title&quot;"));
    CHECK(count(svg, "<circle") == 4);               /* the NaN point is left out */
    CHECK(strstr(svg, ">20</text>") && strstr(svg, ">0</text>")); /* 0..16 widened to steps of 5 */
    free(svg);

    spec.nseries = 1;
    s[0].label = NULL;
    spec.title = NULL;
    svg = plot_svg(&spec);
    CHECK(svg && tags_balanced(svg) && count(svg, "class=\"series\"") == 1 && !strstr(svg, "legend"));
    free(svg);

    double one = 3; /* a single point still gets a range */
    plot_series p = {.x = &one, .y = &one, .n = 1, .kind = PLOT_LINE};
    plot_spec single = {.series = &p, .nseries = 1};
    svg = plot_svg(&single);
    CHECK(svg && tags_balanced(svg) && !strstr(svg, "nan") && !strstr(svg, "inf"));
    free(svg);

    CHECK(plot_nice_step(0, 1, 6) == 0.2);
    CHECK(plot_nice_step(0, 10, 6) == 2);
    CHECK(plot_nice_step(0, 100, 6) == 20);
    CHECK(plot_nice_step(-3, 3, 6) == 1);
    CHECK(plot_nice_step(0, 16, 6) == 5);
    CHECK(fabs(plot_nice_step(0, 0.003, 6) - 0.0005) < 1e-12);
}

/* ---- the built-ins through a session ---- */
typedef struct captured {
    int n;                 /* display_data messages */
    char *plain[16];       /* their text/plain */
    char *mime[16];        /* the second entry's type */
    char *data[16];        /* and data */
    int errors;
} captured;

static void on_display(void *user, const eng_bundle *b, int update)
{
    captured *cap = user;
    if (cap->n >= 16 || update || b->n < 2)
        return;
    CHECK(!strcmp(b->items[0].mime, "text/plain"));
    cap->plain[cap->n] = strdup(b->items[0].data);
    cap->mime[cap->n] = strdup(b->items[1].mime);
    cap->data[cap->n] = strdup(b->items[1].data);
    cap->n++;
}

static void on_error(void *user, const eng_error_report *e)
{
    captured *cap = user;
    cap->errors++;
    fprintf(stderr, "error: %s: %s\n", e->ename, e->evalue);
}

static void check_png_size(const char *b64, uint32_t want_w, uint32_t want_h, int want_color)
{
    size_t len, raw_len;
    uint32_t w = 0, h = 0;
    int color = -1;
    unsigned char *png = b64_decode(b64, &len);
    unsigned char *raw = png_check(png, len, &w, &h, &color, &raw_len);
    CHECK(w == want_w && h == want_h && color == want_color);
    const char *dir = getenv("KILN_TEST_DUMP");
    if (dir) {
        char path[512];
        snprintf(path, sizeof path, "%s/kiln_%ux%u.png", dir, w, h);
        FILE *f = fopen(path, "wb");
        if (f) {
            fwrite(png, 1, len, f);
            fclose(f);
        }
    }
    free(raw);
    free(png);
}

static void test_builtins(void)
{
    captured cap = {0};
    eng_sink sink = {.user = &cap, .display = on_display, .error = on_error};
    eng_session *s = eng_session_new();
    const char *code =
        "tensor x = linspace(0, 6.28, 100);\n"
        "plot(sin(x));\n"
        "plot(x, stack(sin(x), cos(x), 1), \"sin, cos\", \"trig\");\n"
        "scatter(x, cos(x), \"points\");\n"
        "hist(randn(500), 12);\n"
        "imshow(rand(28, 28));\n"
        "imshow(rand(10, 20, 3));\n"
        "imgrid(rand(10, 28, 28), 5);\n"
        "imgrid(rand(4, 1, 8, 8));\n";
    CHECK(eng_execute(s, code, "test", 1, &sink) == 0);
    CHECK(cap.errors == 0);
    CHECK(cap.n == 8);
    if (cap.n == 8) {
        CHECK_STR(cap.plain[0], "<plot: 1 series, 100 points>");
        CHECK_STR(cap.plain[1], "<plot: 2 series, 100 points>");
        CHECK_STR(cap.plain[2], "<scatter: 1 series, 100 points>");
        CHECK_STR(cap.plain[3], "<hist: 500 values, 12 bins>");
        for (int i = 0; i < 4; i++) {
            CHECK_STR(cap.mime[i], "image/svg+xml");
            CHECK(tags_balanced(cap.data[i]));
        }
        CHECK(count(cap.data[1], "class=\"series\"") == 2 && strstr(cap.data[1], ">cos</text>"));
        CHECK(count(cap.data[3], "<rect x=") == 12); /* one per bin, no legend */
        CHECK_STR(cap.plain[4], "<image: 28x28 grey, shown at 224x224>");
        CHECK_STR(cap.plain[5], "<image: 20x10 RGB, shown at 240x120>");
        for (int i = 4; i < 8; i++)
            CHECK_STR(cap.mime[i], "image/png");
        check_png_size(cap.data[4], 224, 224, 0);
        check_png_size(cap.data[5], 240, 120, 2);
        check_png_size(cap.data[6], 5 * 112 + 6 * 2, 2 * 112 + 3 * 2, 0);
        CHECK_STR(cap.plain[7], "<image grid: 4 images of 8x8 grey, 2 columns, 230x230>");
        check_png_size(cap.data[7], 230, 230, 0);
    }
    /* errors name the built-in */
    int before = cap.errors;
    CHECK(eng_execute(s, "imshow(rand(2, 3, 4, 5));", "test", 1, &sink) == 1);
    CHECK(eng_execute(s, "plot(rand(3), rand(4));", "test", 1, &sink) == 1);
    CHECK(eng_execute(s, "hist(rand(3), 0);", "test", 1, &sink) == 1);
    CHECK(cap.errors == before + 3);
    for (int i = 0; i < cap.n; i++) {
        free(cap.plain[i]);
        free(cap.mime[i]);
        free(cap.data[i]);
    }
    eng_session_free(s);
}

int main(void)
{
    test_base64();
    test_png();
    test_svg();
    test_builtins();
    return check_finish("test_plot");
}
