/* session_npz.c — the container of a session file (engine/lang/session_file.c): a zip archive
 * of stored members (CRC32 from zlib, no zip64) written into one buffer and found by
 * name, and the small JSON reader of its manifest (the engine has no JSON library). */
#include "engine/io/session_npz.h"
#include "engine/base/hostmem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static void bb_u16(strbuf *b, unsigned v)
{
    unsigned char x[2] = {(unsigned char)v, (unsigned char)(v >> 8)};
    strbuf_put(b, x, 2);
}

static void bb_u32(strbuf *b, unsigned long v)
{
    unsigned char x[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 24)};
    strbuf_put(b, x, 4);
}

void npz_json_string(strbuf *b, const char *s, size_t n)
{
    strbuf_put(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            strbuf_put(b, "\\", 1);
            strbuf_put(b, &c, 1);
        } else if (c == '\n')
            strbuf_put(b, "\\n", 2);
        else if (c == '\t')
            strbuf_put(b, "\\t", 2);
        else if (c < 32)
            strbuf_printf(b, "\\u%04x", c);
        else
            strbuf_put(b, &c, 1);
    }
    strbuf_put(b, "\"", 1);
}

/* ---- the zip container (stored members, no zip64) ---- */

int npz_add(strbuf *zip, npz_member *m, const char *name, const unsigned char *data, size_t size,
            eng_error *err)
{
    if (size > 0xffffffffu || zip->len > 0xffffffffu)
        return eng_fail(err, ERR_VALUE, "%%save: '%s' is over 4 GiB; the session file has no zip64 yet", name);
    m->name = strdup(name);
    if (!m->name)
        return eng_fail(err, ERR_MEMORY, "%%save: out of memory");
    m->crc = crc32(crc32(0L, Z_NULL, 0), data, (uInt)size);
    m->size = size;
    m->offset = zip->len;
    bb_u32(zip, 0x04034b50);
    bb_u16(zip, 20);     /* version needed */
    bb_u16(zip, 0);      /* flags */
    bb_u16(zip, 0);      /* stored */
    bb_u16(zip, 0);      /* time */
    bb_u16(zip, 0x21);   /* date: 1980-01-01 */
    bb_u32(zip, m->crc);
    bb_u32(zip, (unsigned long)size);
    bb_u32(zip, (unsigned long)size);
    bb_u16(zip, (unsigned)strlen(name));
    bb_u16(zip, 0);
    strbuf_put(zip, name, strlen(name));
    strbuf_put(zip, data, size);
    return zip->oom ? eng_fail(err, ERR_MEMORY, "%%save: out of memory") : 0;
}

void npz_finish(strbuf *zip, const npz_member *ms, int n)
{
    size_t cd = zip->len;
    for (int i = 0; i < n; i++) {
        bb_u32(zip, 0x02014b50);
        bb_u16(zip, 20);
        bb_u16(zip, 20);
        bb_u16(zip, 0);
        bb_u16(zip, 0);
        bb_u16(zip, 0);
        bb_u16(zip, 0x21);
        bb_u32(zip, ms[i].crc);
        bb_u32(zip, (unsigned long)ms[i].size);
        bb_u32(zip, (unsigned long)ms[i].size);
        bb_u16(zip, (unsigned)strlen(ms[i].name));
        bb_u16(zip, 0); /* extra */
        bb_u16(zip, 0); /* comment */
        bb_u16(zip, 0); /* disk */
        bb_u16(zip, 0); /* internal attributes */
        bb_u32(zip, 0); /* external attributes */
        bb_u32(zip, (unsigned long)ms[i].offset);
        strbuf_put(zip, ms[i].name, strlen(ms[i].name));
    }
    size_t cdsize = zip->len - cd;
    bb_u32(zip, 0x06054b50);
    bb_u16(zip, 0);
    bb_u16(zip, 0);
    bb_u16(zip, (unsigned)n);
    bb_u16(zip, (unsigned)n);
    bb_u32(zip, (unsigned long)cdsize);
    bb_u32(zip, (unsigned long)cd);
    bb_u16(zip, 0);
}

static unsigned rd16(const unsigned char *p) { return (unsigned)p[0] | (unsigned)p[1] << 8; }
static unsigned long rd32(const unsigned char *p)
{
    return (unsigned long)p[0] | (unsigned long)p[1] << 8 | (unsigned long)p[2] << 16 | (unsigned long)p[3] << 24;
}

const unsigned char *npz_find(const unsigned char *buf, size_t len, const char *name, size_t *size)
{
    if (len < 22)
        return NULL;
    size_t e = len - 22;
    for (;; e--) {
        if (rd32(buf + e) == 0x06054b50)
            break;
        if (e == 0 || len - e > 22 + 65535)
            return NULL;
    }
    size_t n = rd16(buf + e + 10), p = rd32(buf + e + 16);
    size_t nlen_want = strlen(name);
    for (size_t i = 0; i < n; i++) {
        if (p + 46 > len || rd32(buf + p) != 0x02014b50)
            return NULL;
        size_t nl = rd16(buf + p + 28), xl = rd16(buf + p + 30), cl = rd16(buf + p + 32);
        if (p + 46 + nl > len)
            return NULL;
        if (nl == nlen_want && !memcmp(buf + p + 46, name, nl)) {
            unsigned method = rd16(buf + p + 10);
            size_t csize = rd32(buf + p + 20), off = rd32(buf + p + 42);
            if (method != 0 || off + 30 > len)
                return NULL;
            size_t data = off + 30 + rd16(buf + off + 26) + rd16(buf + off + 28);
            if (data + csize > len)
                return NULL;
            *size = csize;
            return buf + data;
        }
        p += 46 + nl + xl + cl;
    }
    return NULL;
}

int npz_member_at(const unsigned char *buf, size_t len, size_t i, const char **name, size_t *nlen, int *stored,
                  size_t *count)
{
    if (len < 22)
        return -1;
    size_t e = len - 22;
    for (;; e--) {
        if (rd32(buf + e) == 0x06054b50)
            break;
        if (e == 0 || len - e > 22 + 65535)
            return -1;
    }
    size_t n = rd16(buf + e + 10), p = rd32(buf + e + 16);
    *count = n;
    for (size_t k = 0; k < n; k++) {
        if (p + 46 > len || rd32(buf + p) != 0x02014b50)
            return -1;
        size_t nl = rd16(buf + p + 28), xl = rd16(buf + p + 30), cl = rd16(buf + p + 32);
        if (p + 46 + nl > len)
            return -1;
        if (k == i) {
            *name = (const char *)buf + p + 46;
            *nlen = nl;
            *stored = rd16(buf + p + 10) == 0;
            return 0;
        }
        p += 46 + nl + xl + cl;
    }
    return -1;
}

unsigned char *npz_read_member(const unsigned char *buf, size_t len, const char *name, size_t *size,
                               const char *what, eng_error *err)
{
    size_t count = 0, nl, want = strlen(name);
    const char *nm;
    int stored;
    for (size_t i = 0; npz_member_at(buf, len, i, &nm, &nl, &stored, &count) == 0; i++) {
        if (nl != want || memcmp(nm, name, nl))
            continue;
        /* the central directory entry of member i: method, sizes, local header offset */
        const unsigned char *cd = (const unsigned char *)nm - 46;
        unsigned method = rd16(cd + 10);
        size_t csize = rd32(cd + 20), usize = rd32(cd + 24), off = rd32(cd + 42);
        if (off + 30 > len || rd32(buf + off) != 0x04034b50)
            break;
        size_t data = off + 30 + rd16(buf + off + 26) + rd16(buf + off + 28);
        if (data > len || csize > len - data)
            break;
        if (method != 0 && method != 8) {
            eng_fail(err, ERR_VALUE, "%s: member '%s' is compressed with zip method %u (only stored and deflated "
                     "members are read)", what, name, method);
            return NULL;
        }
        if (method == 0)
            usize = csize;
        unsigned char *out = eng_host_malloc(usize ? usize : 1, what, err);
        if (!out)
            return NULL;
        if (method == 0)
            memcpy(out, buf + data, csize);
        else { /* raw deflate (no zlib header), as zip stores it */
            z_stream z;
            memset(&z, 0, sizeof z);
            int rc = inflateInit2(&z, -MAX_WBITS);
            z.next_in = (unsigned char *)(buf + data);
            z.avail_in = (uInt)csize;
            z.next_out = out;
            z.avail_out = (uInt)usize;
            if (rc == Z_OK)
                rc = inflate(&z, Z_FINISH);
            inflateEnd(&z);
            if (rc != Z_STREAM_END || z.total_out != usize || csize > 0xffffffffu) {
                free(out);
                eng_fail(err, ERR_VALUE, "%s: member '%s' does not inflate to its %zu bytes (a corrupt file?)", what,
                         name, usize);
                return NULL;
            }
        }
        *size = usize;
        return out;
    }
    eng_fail(err, ERR_VALUE, "%s: no member '%s' (absent)", what, name);
    return NULL;
}

/* ---- a small JSON reader for the manifest ---- */

void npz_json_free(npz_json *v)
{
    if (!v)
        return;
    for (int i = 0; i < v->n; i++) {
        if (v->keys)
            free(v->keys[i]);
        npz_json_free(v->items[i]);
    }
    free(v->keys);
    free(v->items);
    free(v->str);
    free(v);
}

static void jskip(const char **p)
{
    while (**p == ' ' || **p == '\n' || **p == '\t' || **p == '\r')
        (*p)++;
}

static char *jstring(const char **p)
{
    if (**p != '"')
        return NULL;
    (*p)++;
    strbuf b = {0};
    strbuf_put(&b, "", 0);
    while (**p && **p != '"') {
        char c = *(*p)++;
        if (c == '\\') {
            char e = *(*p)++;
            switch (e) {
            case 'n': c = '\n'; break;
            case 't': c = '\t'; break;
            case 'r': c = '\r'; break;
            case 'b': c = '\b'; break;
            case 'f': c = '\f'; break;
            case 'u': {
                unsigned u = 0;
                for (int k = 0; k < 4 && **p; k++, (*p)++)
                    u = u * 16 + (unsigned)((**p <= '9') ? **p - '0' : ((**p | 32) - 'a' + 10));
                if (u < 0x80)
                    c = (char)u;
                else { /* the writer only escapes control characters; keep others as UTF-8 */
                    unsigned char u8[3];
                    int k = 0;
                    if (u < 0x800) {
                        u8[k++] = (unsigned char)(0xc0 | u >> 6);
                    } else {
                        u8[k++] = (unsigned char)(0xe0 | u >> 12);
                        u8[k++] = (unsigned char)(0x80 | ((u >> 6) & 0x3f));
                    }
                    u8[k++] = (unsigned char)(0x80 | (u & 0x3f));
                    strbuf_put(&b, u8, (size_t)k);
                    continue;
                }
                break;
            }
            case 0: free(b.p); return NULL;
            default: c = e; break;
            }
        }
        strbuf_put(&b, &c, 1);
    }
    if (**p != '"' || b.oom) {
        free(b.p);
        return NULL;
    }
    (*p)++;
    return (char *)b.p;
}

static npz_json *jparse(const char **p, int depth)
{
    jskip(p);
    if (depth > 64)
        return NULL;
    npz_json *v = calloc(1, sizeof *v);
    if (!v)
        return NULL;
    char c = **p;
    if (c == '{' || c == '[') {
        v->kind = c == '{' ? 'o' : 'a';
        (*p)++;
        int cap = 0;
        jskip(p);
        if (**p == (c == '{' ? '}' : ']')) {
            (*p)++;
            return v;
        }
        for (;;) {
            if (v->n == cap) {
                cap = cap ? cap * 2 : 8;
                npz_json **it = realloc(v->items, sizeof *it * (size_t)cap);
                char **ks = c == '{' ? realloc(v->keys, sizeof *ks * (size_t)cap) : NULL;
                if (it)
                    v->items = it;
                if (ks)
                    v->keys = ks;
                if (!it || (c == '{' && !ks))
                    goto bad;
            }
            if (c == '{') {
                jskip(p);
                char *k = jstring(p);
                jskip(p);
                if (!k || **p != ':') {
                    free(k);
                    goto bad;
                }
                (*p)++;
                v->keys[v->n] = k;
            }
            npz_json *item = jparse(p, depth + 1);
            if (!item) {
                if (c == '{')
                    free(v->keys[v->n]);
                goto bad;
            }
            v->items[v->n++] = item;
            jskip(p);
            if (**p == ',') {
                (*p)++;
                continue;
            }
            if (**p == (c == '{' ? '}' : ']')) {
                (*p)++;
                return v;
            }
            goto bad;
        }
    }
    if (c == '"') {
        v->kind = 's';
        if (!(v->str = jstring(p)))
            goto bad;
        return v;
    }
    if (!strncmp(*p, "true", 4) || !strncmp(*p, "false", 5) || !strncmp(*p, "null", 4)) {
        v->kind = c == 't' ? 't' : c == 'f' ? 'f' : 'z';
        *p += c == 'f' ? 5 : 4;
        return v;
    }
    const char *s = *p;
    while (**p && strchr("+-0123456789.eE", **p))
        (*p)++;
    if (*p == s)
        goto bad;
    v->kind = 'n';
    if (!(v->str = strndup(s, (size_t)(*p - s))))
        goto bad;
    return v;
bad:
    npz_json_free(v);
    return NULL;
}

npz_json *npz_json_get(const npz_json *o, const char *key)
{
    if (!o || o->kind != 'o')
        return NULL;
    for (int i = 0; i < o->n; i++)
        if (!strcmp(o->keys[i], key))
            return o->items[i];
    return NULL;
}

const char *npz_json_str(const npz_json *o, const char *key)
{
    npz_json *v = npz_json_get(o, key);
    return v && (v->kind == 's' || v->kind == 'n') ? v->str : NULL;
}


npz_json *npz_json_parse(const char **p) { return jparse(p, 0); }
