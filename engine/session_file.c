/* session_file.c — %save and %load: the session as a .npz archive (stored zip members,
 * CRC32 from zlib) of NAME.npy tensors plus a hand-written JSON manifest, __kiln__.json.
 * The engine does not depend on a JSON library: the writer and the small reader of
 * the manifest are here. Format: docs/session-file.md. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "engine/backend.h"
#include "engine/interp.h"
#include "engine/kernels.h"
#include "engine/optim.h"
#include "engine/session_file.h"
#include "engine/strbuf.h"

#define MANIFEST "__kiln__.json"
#define FORMAT_VERSION 2

/* ---- a growable byte buffer (engine/strbuf.h) ---- */
typedef strbuf bbuf;
#define bb_put strbuf_put
#define bb_printf strbuf_printf

static void bb_u16(bbuf *b, unsigned v)
{
    unsigned char x[2] = {(unsigned char)v, (unsigned char)(v >> 8)};
    bb_put(b, x, 2);
}

static void bb_u32(bbuf *b, unsigned long v)
{
    unsigned char x[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 24)};
    bb_put(b, x, 4);
}

static void json_string(bbuf *b, const char *s, size_t n)
{
    bb_put(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            bb_put(b, "\\", 1);
            bb_put(b, &c, 1);
        } else if (c == '\n')
            bb_put(b, "\\n", 2);
        else if (c == '\t')
            bb_put(b, "\\t", 2);
        else if (c < 32)
            bb_printf(b, "\\u%04x", c);
        else
            bb_put(b, &c, 1);
    }
    bb_put(b, "\"", 1);
}

/* ---- the zip container (stored members, no zip64) ---- */
typedef struct zmember {
    char *name;           /* malloc'ed */
    unsigned long crc;    /* CRC32 of the data */
    size_t size;          /* bytes of data */
    size_t offset;        /* of its local header */
} zmember;

static int zip_add(bbuf *zip, zmember *m, const char *name, const unsigned char *data, size_t size,
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
    bb_put(zip, name, strlen(name));
    bb_put(zip, data, size);
    return zip->oom ? eng_fail(err, ERR_MEMORY, "%%save: out of memory") : 0;
}

static void zip_finish(bbuf *zip, const zmember *ms, int n)
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
        bb_put(zip, ms[i].name, strlen(ms[i].name));
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

/* finds member name in the archive; returns its data (inside buf) or NULL */
static const unsigned char *zip_find(const unsigned char *buf, size_t len, const char *name, size_t *size)
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

/* ---- a small JSON reader for the manifest ---- */
typedef struct jv {
    char kind;            /* 'o' object, 'a' array, 's' string, 'n' number, 't', 'f', 'z' null */
    char *str;            /* string value, or the number's text (malloc'ed) */
    int n;                /* items of an object or array */
    char **keys;          /* object keys */
    struct jv **items;    /* values */
} jv;

static void jv_free(jv *v)
{
    if (!v)
        return;
    for (int i = 0; i < v->n; i++) {
        if (v->keys)
            free(v->keys[i]);
        jv_free(v->items[i]);
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
    bbuf b = {0};
    bb_put(&b, "", 0);
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
                    bb_put(&b, u8, (size_t)k);
                    continue;
                }
                break;
            }
            case 0: free(b.p); return NULL;
            default: c = e; break;
            }
        }
        bb_put(&b, &c, 1);
    }
    if (**p != '"' || b.oom) {
        free(b.p);
        return NULL;
    }
    (*p)++;
    return (char *)b.p;
}

static jv *jparse(const char **p, int depth)
{
    jskip(p);
    if (depth > 64)
        return NULL;
    jv *v = calloc(1, sizeof *v);
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
                jv **it = realloc(v->items, sizeof *it * (size_t)cap);
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
            jv *item = jparse(p, depth + 1);
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
    jv_free(v);
    return NULL;
}

static jv *jget(const jv *o, const char *key)
{
    if (!o || o->kind != 'o')
        return NULL;
    for (int i = 0; i < o->n; i++)
        if (!strcmp(o->keys[i], key))
            return o->items[i];
    return NULL;
}

static const char *jstr(const jv *o, const char *key)
{
    jv *v = jget(o, key);
    return v && (v->kind == 's' || v->kind == 'n') ? v->str : NULL;
}

/* ---- saving ---- */

static const char *const type_names[] = {"unknown", "void", "bool", "int", "float", "string", "tensor",
                                         "auto", "tuple", "dtype", "device", "function"};

static int type_from_name(const char *n)
{
    for (int i = 0; i < (int)(sizeof type_names / sizeof type_names[0]); i++)
        if (n && !strcmp(n, type_names[i]))
            return i;
    return -1;
}

/* the text of a function's definition: from its node to the brace that closes its body */
static int func_text(const eng_func *fn, const char **start, size_t *len)
{
    const char *t = fn->src->text;
    int line = 1;
    while (*t && line < fn->def->line)
        if (*t++ == '\n')
            line++;
    for (int c = 1; *t && c < fn->def->col; c++)
        t++;
    const char *p = t;
    int depth = 0, seen = 0;
    for (; *p; p++) {
        if (*p == '"' || *p == '\'') {
            char q = *p++;
            while (*p && *p != q)
                p += (*p == '\\' && p[1]) ? 2 : 1;
            if (!*p)
                break;
        } else if (p[0] == '/' && p[1] == '/') {
            while (*p && *p != '\n')
                p++;
            if (!*p)
                break;
        } else if (p[0] == '/' && p[1] == '*') {
            const char *e = strstr(p + 2, "*/");
            if (!e)
                break;
            p = e + 1;
        } else if (*p == '{') {
            depth++;
            seen = 1;
        } else if (*p == '}' && --depth == 0 && seen) {
            *start = t;
            *len = (size_t)(p + 1 - t);
            return 0;
        }
    }
    return -1;
}

/* a tensor as the stored member NAME (.npy) */
static int add_tensor_member(bbuf *zip, zmember *ms, int *nm, const char *member, const tensor *t,
                             eng_error *err)
{
    size_t len = 0;
    unsigned char *npy = tensor_npy_encode(t, &len, err);
    if (!npy)
        return -1;
    int zr = zip_add(zip, &ms[*nm], member, npy, len, err);
    free(npy);
    if (zr)
        return -1;
    (*nm)++;
    return 0;
}

/* the global tensor variable that holds t itself, or NULL */
static const char *global_holding(const eng_session *s, const tensor *t)
{
    for (int i = 0; i < s->nglobals; i++) {
        const eng_global *g = &s->globals[i];
        if (g->defined && g->v.type == VAL_TENSOR && g->v.as.t == t)
            return g->name;
    }
    return NULL;
}

static void json_double(bbuf *b, const char *key, double v)
{
    if (isfinite(v))
        bb_printf(b, ", \"%s\": %.17g", key, v);
    else
        bb_printf(b, ", \"%s\": \"%s\"", key, isnan(v) ? "nan" : v > 0 ? "inf" : "-inf");
}

/* the "optimizers" array: every registered optimiser with its tensors as members
 * optimizer/H/{param,m,v}/I.npy (a parameter only when no global holds it) */
static int save_optimizers(eng_session *s, bbuf *man, bbuf *zip, zmember *ms, int *nm, int *nopts,
                           eng_error *err)
{
    bb_printf(man, "  \"optimizers\": [");
    int first = 1;
    for (int h = 1; h <= opt_max_handle(); h++) {
        opt_state *o = opt_lookup(h);
        if (!o)
            continue;
        bb_printf(man, "%s\n    {\"handle\": %d, \"kind\": \"%s\"", first ? "" : ",", h, opt_kind_name(o->kind));
        first = 0;
        json_double(man, "beta1", o->beta1);
        json_double(man, "beta2", o->beta2);
        json_double(man, "eps", o->eps);
        json_double(man, "wd", o->wd);
        if (o->kind == OPT_ADAMW_SF) { /* schedule-free AdamW's averaging state */
            json_double(man, "sf_weight_sum", o->sf_weight_sum);
            json_double(man, "sf_lr_max", o->sf_lr_max);
            bb_printf(man, ", \"warmup\": \"%lld\", \"sf_eval\": %s", (long long)o->warmup,
                      o->sf_eval ? "true" : "false");
        }
        bb_printf(man, ", \"nesterov\": %s, \"wd_1d\": %s, \"steps\": \"%lld\",\n     \"params\": [",
                  o->nesterov ? "true" : "false", o->wd_1d ? "true" : "false", (long long)o->steps);
        for (int i = 0; i < o->n; i++) {
            tensor *p = o->params[i];
            const char *gname = global_holding(s, p);
            char member[96];
            bb_printf(man, "%s\n      {", i ? "," : "");
            if (gname) {
                bb_printf(man, "\"global\": ");
                json_string(man, gname, strlen(gname));
            } else {
                snprintf(member, sizeof member, "optimizer/%d/param/%d.npy", h, i);
                if (add_tensor_member(zip, ms, nm, member, p, err))
                    return -1;
                bb_printf(man, "\"member\": \"%s\", \"dtype\": \"%s\"", member, kn_dtype_name(p->dtype));
            }
            const char *which[2] = {"m", "v"};
            tensor *bufs[2] = {o->m[i], o->v[i]};
            for (int k = 0; k < 2; k++) {
                if (!bufs[k])
                    continue;
                snprintf(member, sizeof member, "optimizer/%d/%s/%d.npy", h, which[k], i);
                if (add_tensor_member(zip, ms, nm, member, bufs[k], err))
                    return -1;
                bb_printf(man, ", \"%s\": \"%s\"", which[k], member);
            }
            bb_printf(man, "}");
        }
        bb_printf(man, "],\n     \"history\": [");
        for (int r = 0; r < o->nhist; r++) {
            bb_printf(man, r ? ", [" : "[");
            for (int c = 0; c < OPT_HIST_COLS; c++) {
                double v = o->hist[r * OPT_HIST_COLS + c];
                if (isfinite(v))
                    bb_printf(man, c ? ", %.17g" : "%.17g", v);
                else
                    bb_printf(man, c ? ", \"%s\"" : "\"%s\"", isnan(v) ? "nan" : v > 0 ? "inf" : "-inf");
            }
            bb_printf(man, "]");
        }
        bb_printf(man, "]}");
        (*nopts)++;
    }
    bb_printf(man, "%s],\n", first ? "" : "\n  ");
    return 0;
}

/* the "kernels" array: every __device__ and __global__ definition, in definition order */
static int save_kernels(eng_session *s, bbuf *man, int *nkernels)
{
    bb_printf(man, "  \"kernels\": [");
    const eng_ktable *t = s->kernels;
    for (int i = 0; t && i < t->n; i++) {
        const eng_kernel *k = t->items[i];
        bb_printf(man, "%s\n    {\"name\": ", i ? "," : "");
        json_string(man, k->name, strlen(k->name));
        bb_printf(man, ", \"kind\": \"%s\", \"cell\": ", k->is_global ? "__global__" : "__device__");
        json_string(man, k->cell, strlen(k->cell));
        bb_printf(man, ", \"line\": %d, \"source\": ", k->line);
        json_string(man, k->source, strlen(k->source));
        bb_printf(man, "}");
        (*nkernels)++;
    }
    bb_printf(man, "%s],\n", t && t->n ? "\n  " : "");
    return 0;
}

static void save_fail_cleanup(zmember *ms, int n)
{
    for (int i = 0; i < n; i++)
        free(ms[i].name);
    free(ms);
}

int eng_session_save(eng_session *s, const char *path, char **summary, eng_error *err)
{
    bbuf zip = {0}, man = {0};
    size_t nmembers = (size_t)s->nglobals + 1;
    for (int h = 1; h <= opt_max_handle(); h++)
        if (opt_lookup(h))
            nmembers += 3 * (size_t)opt_lookup(h)->n;
    zmember *ms = calloc(nmembers, sizeof *ms);
    int nm = 0, ntensors = 0, nvalues = 0, nfuncs = 0, nopts = 0, nkernels = 0, rc = -1;
    FILE *f = NULL;
    if (!ms)
        return eng_fail(err, ERR_MEMORY, "%%save: out of memory");
    bb_printf(&man, "{\n  \"format\": \"kiln-session\",\n  \"version\": %d,\n", FORMAT_VERSION);
    bb_printf(&man, "  \"rng\": {\"seed\": \"%llu\", \"offset\": \"%llu\"},\n", (unsigned long long)s->rng.seed,
              (unsigned long long)s->rng.offset);
    if (save_optimizers(s, &man, &zip, ms, &nm, &nopts, err) || save_kernels(s, &man, &nkernels))
        goto err;
    bb_printf(&man, "  \"globals\": [");
    int first = 1;
    for (int i = 0; i < s->nglobals; i++) {
        eng_global *g = &s->globals[i];
        value v = g->v;
        if (!g->defined || v.type == VAL_VOID)
            continue;
        int ty = g->type >= 0 && g->type <= TY_FUNC ? (int)g->type : 0;
        bb_printf(&man, "%s\n    {\"name\": ", first ? "" : ",");
        first = 0;
        json_string(&man, g->name, strlen(g->name));
        bb_printf(&man, ", \"type\": \"%s\", \"kind\": \"%s\"", type_names[ty], value_type_name(v.type));
        switch (v.type) {
        case VAL_BOOL: bb_printf(&man, ", \"value\": %s", v.as.i ? "true" : "false"); break;
        case VAL_INT: bb_printf(&man, ", \"value\": %lld", (long long)v.as.i); break;
        case VAL_FLOAT:
            if (isfinite(v.as.f))
                bb_printf(&man, ", \"value\": %.17g", v.as.f);
            else
                bb_printf(&man, ", \"value\": \"%s\"", isnan(v.as.f) ? "nan" : v.as.f > 0 ? "inf" : "-inf");
            break;
        case VAL_STRING:
            bb_printf(&man, ", \"value\": ");
            json_string(&man, v.as.s->data, (size_t)v.as.s->len);
            break;
        case VAL_DTYPE: bb_printf(&man, ", \"value\": \"%s\"", kn_dtype_name((kn_dtype)v.as.i)); break;
        case VAL_DEVICE: bb_printf(&man, ", \"value\": \"%s\"", value_device_name(v.as.i)); break;
        case VAL_TUPLE:
            bb_printf(&man, ", \"value\": [");
            for (int k = 0; k < v.as.tup->n; k++)
                bb_printf(&man, k ? ", %lld" : "%lld", (long long)v.as.tup->v[k]);
            bb_printf(&man, "]");
            break;
        case VAL_TENSOR: {
            tensor *t = v.as.t;
            char member[300];
            snprintf(member, sizeof member, "%s.npy", g->name);
            bb_printf(&man, ", \"member\": ");
            json_string(&man, member, strlen(member));
            bb_printf(&man, ", \"dtype\": \"%s\", \"device\": \"%s\", \"requires_grad\": %s, \"shape\": [",
                      kn_dtype_name(t->dtype), t->storage->backend->name, t->requires_grad ? "true" : "false");
            for (int d = 0; d < t->ndim; d++)
                bb_printf(&man, d ? ", %lld" : "%lld", (long long)t->shape[d]);
            bb_printf(&man, "]");
            if (add_tensor_member(&zip, ms, &nm, member, t, err))
                goto err;
            ntensors++;
            nvalues--;
            break;
        }
        case VAL_FUNC: {
            const char *text;
            size_t len;
            if (func_text(v.as.fn, &text, &len)) {
                eng_fail(err, ERR_RUNTIME, "%%save: cannot find the source of function %s", g->name);
                goto err;
            }
            bb_printf(&man, ", \"source\": ");
            json_string(&man, text, len);
            nfuncs++;
            nvalues--;
            break;
        }
        default: break;
        }
        nvalues++;
        bb_printf(&man, "}");
    }
    bb_printf(&man, "\n  ]\n}\n");
    if (man.oom) {
        eng_fail(err, ERR_MEMORY, "%%save: out of memory");
        goto err;
    }
    if (zip_add(&zip, &ms[nm], MANIFEST, (const unsigned char *)man.p, man.len, err))
        goto err;
    nm++;
    zip_finish(&zip, ms, nm);
    if (zip.oom) {
        eng_fail(err, ERR_MEMORY, "%%save: out of memory");
        goto err;
    }
    if (!(f = fopen(path, "wb"))) {
        eng_fail(err, ERR_IO, "%%save: cannot create '%s': %s", path, strerror(errno));
        goto err;
    }
    if (fwrite(zip.p, 1, zip.len, f) != zip.len) {
        eng_fail(err, ERR_IO, "%%save: writing '%s' failed: %s", path, strerror(errno));
        goto err;
    }
    int cr = fclose(f);
    f = NULL;
    if (cr) {
        eng_fail(err, ERR_IO, "%%save: writing '%s' failed: %s", path, strerror(errno));
        goto err;
    }
    if (summary) {
        char buf[512];
        snprintf(buf, sizeof buf,
                 "Saved %d tensor%s, %d other value%s, %d function%s, %d kernel%s and %d optimiser%s to %s\n",
                 ntensors, ntensors == 1 ? "" : "s", nvalues, nvalues == 1 ? "" : "s", nfuncs,
                 nfuncs == 1 ? "" : "s", nkernels, nkernels == 1 ? "" : "s", nopts, nopts == 1 ? "" : "s", path);
        *summary = strdup(buf);
    }
    rc = 0;
err:
    if (f)
        fclose(f);
    save_fail_cleanup(ms, nm);
    free(zip.p);
    free(man.p);
    return rc;
}

/* ---- loading ---- */

static int bind_global(eng_session *s, const char *name, int type, value v, eng_error *err)
{
    int g = eng_global_add(s, name, (int)strlen(name));
    if (g < 0) {
        value_decref(v);
        return eng_fail(err, ERR_MEMORY, "%%load: out of memory");
    }
    eng_global *gl = &s->globals[g];
    value_decref(gl->v);
    gl->v = v;
    gl->type = (ast_type)type;
    gl->defined = 1;
    return 0;
}

/* one non-function global from its manifest entry */
static int load_value(eng_session *s, const jv *e, const unsigned char *buf, size_t len, const char *path,
                      int *ntensors, eng_error *err)
{
    const char *name = jstr(e, "name"), *kind = jstr(e, "kind");
    int type = type_from_name(jstr(e, "type"));
    jv *val = jget(e, "value");
    if (!name || !kind || type < 0)
        return eng_fail(err, ERR_VALUE, "%%load: '%s': a manifest entry lacks its name, kind or type", path);
    value v = value_void();
    if (!strcmp(kind, "tensor")) {
        const char *member = jstr(e, "member");
        size_t size = 0;
        const unsigned char *data = member ? zip_find(buf, len, member, &size) : NULL;
        if (!data)
            return eng_fail(err, ERR_VALUE, "%%load: '%s' has no stored member for tensor %s", path, name);
        tensor *t = tensor_load_npy_mem(data, size, member, err);
        if (!t)
            return -1;
        const char *dt = jstr(e, "dtype");
        int want = dt ? kn_dtype_from_name(dt) : -1;
        if (want >= 0 && (kn_dtype)want != t->dtype) { /* bf16 is stored as f32 */
            tensor *c = tensor_cast(t, (kn_dtype)want, err);
            tensor_decref(t);
            if (!(t = c))
                return -1;
        }
        jv *rg = jget(e, "requires_grad");
        if (rg && rg->kind == 't')
            t->requires_grad = 1;
        v = value_tensor(t);
        (*ntensors)++;
    } else if (!strcmp(kind, "bool") && val) {
        v = value_bool(val->kind == 't');
    } else if (!strcmp(kind, "int") && val && val->str) {
        v = value_int(strtoll(val->str, NULL, 10));
    } else if (!strcmp(kind, "float") && val && val->str) {
        v = value_float(strtod(val->str, NULL));
    } else if (!strcmp(kind, "string") && val && val->kind == 's') {
        kn_string *str = kn_string_new(val->str, (int64_t)strlen(val->str));
        if (!str)
            return eng_fail(err, ERR_MEMORY, "%%load: out of memory");
        v.type = VAL_STRING;
        v.as.s = str;
    } else if (!strcmp(kind, "dtype") && val && val->str && kn_dtype_from_name(val->str) >= 0) {
        v = value_dtype((kn_dtype)kn_dtype_from_name(val->str));
    } else if (!strcmp(kind, "device") && val && val->str) {
        v.type = VAL_DEVICE;
        v.as.i = value_device_index(val->str) > 0 ? value_device_index(val->str) : 0;
    } else if (!strcmp(kind, "tuple") && val && val->kind == 'a') {
        int64_t items[TENSOR_MAXDIM * 4];
        int n = val->n < (int)(sizeof items / sizeof items[0]) ? val->n : (int)(sizeof items / sizeof items[0]);
        for (int i = 0; i < n; i++)
            items[i] = val->items[i]->str ? strtoll(val->items[i]->str, NULL, 10) : 0;
        kn_tuple *tup = kn_tuple_new(n, items);
        if (!tup)
            return eng_fail(err, ERR_MEMORY, "%%load: out of memory");
        v.type = VAL_TUPLE;
        v.as.tup = tup;
    } else
        return eng_fail(err, ERR_VALUE, "%%load: '%s': cannot restore %s (a %s)", path, name, kind);
    return bind_global(s, name, type, v, err);
}

/* a stored member as a tensor of dtype want (-1: as stored) */
static tensor *load_member(const unsigned char *buf, size_t len, const char *member, int want, const char *path,
                           eng_error *err)
{
    size_t size = 0;
    const unsigned char *data = member ? zip_find(buf, len, member, &size) : NULL;
    if (!data) {
        eng_fail(err, ERR_VALUE, "%%load: '%s' has no stored member '%s'", path, member ? member : "?");
        return NULL;
    }
    tensor *t = tensor_load_npy_mem(data, size, member, err);
    if (t && want >= 0 && (kn_dtype)want != t->dtype) { /* bf16 is stored as f32 */
        tensor *c = tensor_cast(t, (kn_dtype)want, err);
        tensor_decref(t);
        t = c;
    }
    return t;
}

static double jdouble(const jv *o, const char *key, double dflt)
{
    const char *v = jstr(o, key);
    return v ? strtod(v, NULL) : dflt; /* strtod reads "nan", "inf" and "-inf" too */
}

static int jbool(const jv *o, const char *key)
{
    jv *v = jget(o, key);
    return v && v->kind == 't';
}

/* one optimiser from its manifest entry, registered under its saved handle */
static int load_optimizer(eng_session *s, const jv *e, const unsigned char *buf, size_t len, const char *path,
                          eng_error *err)
{
    const char *kind = jstr(e, "kind"), *handle = jstr(e, "handle");
    jv *params = jget(e, "params");
    int k = kind ? opt_kind_from_name(kind) : -1;
    if (k < 0 || !handle || !params || params->kind != 'a' || params->n > 4096)
        return eng_fail(err, ERR_VALUE, "%%load: '%s': an optimiser entry lacks its kind, handle or params", path);
    int n = params->n, rc = -1;
    tensor **ps = calloc((size_t)n + 1, sizeof *ps);
    opt_state *o = NULL;
    if (!ps)
        return eng_fail(err, ERR_MEMORY, "%%load: out of memory");
    for (int i = 0; i < n; i++) {
        const jv *pe = params->items[i];
        const char *gname = jstr(pe, "global");
        if (gname) {
            int g = eng_global_find(s, gname, (int)strlen(gname));
            if (g < 0 || s->globals[g].v.type != VAL_TENSOR) {
                eng_fail(err, ERR_VALUE, "%%load: '%s': optimiser %s's parameter %s is not a saved tensor", path,
                         handle, gname);
                goto done;
            }
            ps[i] = s->globals[g].v.as.t;
            tensor_incref(ps[i]);
        } else {
            const char *dt = jstr(pe, "dtype");
            if (!(ps[i] = load_member(buf, len, jstr(pe, "member"), dt ? kn_dtype_from_name(dt) : -1, path, err)))
                goto done;
            ps[i]->requires_grad = 1;
        }
    }
    if (!(o = k == OPT_ADAMW      ? opt_adamw_new(ps, n, err)
              : k == OPT_ADAMW_SF ? opt_adamw_sf_new(ps, n, err)
                                  : opt_sgd_new(ps, n, err)))
        goto done;
    o->beta1 = jdouble(e, "beta1", o->beta1);
    o->beta2 = jdouble(e, "beta2", o->beta2);
    o->eps = jdouble(e, "eps", o->eps);
    o->wd = jdouble(e, "wd", o->wd);
    o->nesterov = jbool(e, "nesterov");
    o->wd_1d = jbool(e, "wd_1d");
    o->steps = jstr(e, "steps") ? strtoll(jstr(e, "steps"), NULL, 10) : 0;
    o->sf_weight_sum = jdouble(e, "sf_weight_sum", 0);
    o->sf_lr_max = jdouble(e, "sf_lr_max", 0);
    o->warmup = jstr(e, "warmup") ? strtoll(jstr(e, "warmup"), NULL, 10) : 0;
    o->sf_eval = jbool(e, "sf_eval");
    for (int i = 0; i < n; i++) {
        const jv *pe = params->items[i];
        const char *mm = jstr(pe, "m"), *vm = jstr(pe, "v");
        if ((mm && !(o->m[i] = load_member(buf, len, mm, (int)ps[i]->dtype, path, err))) ||
            (vm && !(o->v[i] = load_member(buf, len, vm, (int)ps[i]->dtype, path, err))))
            goto done;
        for (int b = 0; b < 2; b++) {
            tensor *t = b ? o->v[i] : o->m[i];
            if (t && (t->ndim != ps[i]->ndim ||
                      memcmp(t->shape, ps[i]->shape, sizeof(int64_t) * (size_t)t->ndim))) {
                eng_fail(err, ERR_SHAPE, "%%load: '%s': optimiser %s's state for parameter %d has the wrong shape",
                         path, handle, i + 1);
                goto done;
            }
        }
    }
    jv *hist = jget(e, "history");
    if (hist && hist->kind == 'a' && hist->n > 0) {
        double *rows = calloc((size_t)hist->n * OPT_HIST_COLS, sizeof *rows);
        if (!rows) {
            eng_fail(err, ERR_MEMORY, "%%load: out of memory");
            goto done;
        }
        for (int r = 0; r < hist->n; r++)
            for (int c = 0; c < OPT_HIST_COLS && hist->items[r]->kind == 'a' && c < hist->items[r]->n; c++) {
                const jv *v = hist->items[r]->items[c];
                rows[r * OPT_HIST_COLS + c] = v->str ? strtod(v->str, NULL) : NAN;
            }
        int hr = opt_set_history(o, rows, hist->n, err);
        free(rows);
        if (hr)
            goto done;
    }
    rc = opt_register_at(strtoll(handle, NULL, 10), o, err);
    o = NULL; /* registered, or freed by opt_register_at */
done:
    opt_free(o);
    for (int i = 0; i < n; i++)
        tensor_decref(ps[i]);
    free(ps);
    return rc;
}

int eng_session_load(eng_session *s, const char *path, char **summary, eng_error *err)
{
    unsigned char *buf = NULL;
    jv *root = NULL;
    bbuf funcs = {0};
    int rc = -1, ntensors = 0, nvalues = 0, nfuncs = 0, nopts = 0, nkernels = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return eng_fail(err, ERR_IO, "%%load: cannot open '%s': %s", path, strerror(errno));
    long flen = -1;
    if (fseek(f, 0, SEEK_END) == 0)
        flen = ftell(f);
    if (flen < 0 || fseek(f, 0, SEEK_SET) != 0) {
        eng_fail(err, ERR_IO, "%%load: cannot read '%s'", path);
        goto err;
    }
    if (!(buf = malloc((size_t)flen + 1))) {
        eng_fail(err, ERR_MEMORY, "%%load: out of memory for '%s' (%ld bytes)", path, flen);
        goto err;
    }
    if (fread(buf, 1, (size_t)flen, f) != (size_t)flen) {
        eng_fail(err, ERR_IO, "%%load: reading '%s' failed", path);
        goto err;
    }
    size_t mlen = 0;
    const unsigned char *mdata = zip_find(buf, (size_t)flen, MANIFEST, &mlen);
    if (!mdata) {
        eng_fail(err, ERR_VALUE, "%%load: '%s' is not a Kiln session file (no stored %s member)", path, MANIFEST);
        goto err;
    }
    char *mtext = strndup((const char *)mdata, mlen);
    if (!mtext) {
        eng_fail(err, ERR_MEMORY, "%%load: out of memory");
        goto err;
    }
    const char *p = mtext;
    root = jparse(&p, 0);
    free(mtext);
    jv *globals = jget(root, "globals");
    const char *fmt = jstr(root, "format");
    if (!root || !fmt || strcmp(fmt, "kiln-session") || !globals || globals->kind != 'a') {
        eng_fail(err, ERR_VALUE, "%%load: '%s' has an unreadable manifest", path);
        goto err;
    }
    const char *ver = jstr(root, "version");
    if (!ver || atoi(ver) > FORMAT_VERSION) {
        eng_fail(err, ERR_VALUE, "%%load: '%s' has session format version %s; this Kiln reads up to %d", path,
                 ver ? ver : "?", FORMAT_VERSION);
        goto err;
    }
    /* values first, so that the functions' bodies can refer to them */
    for (int i = 0; i < globals->n; i++) {
        const jv *e = globals->items[i];
        const char *kind = jstr(e, "kind");
        if (kind && !strcmp(kind, "function")) {
            const char *src = jstr(e, "source");
            if (src) {
                bb_put(&funcs, src, strlen(src));
                bb_put(&funcs, "\n", 1);
                nfuncs++;
            }
            continue;
        }
        int before = ntensors;
        if (load_value(s, e, buf, (size_t)flen, path, &ntensors, err))
            goto err;
        if (ntensors == before)
            nvalues++;
    }
    jv *opts = jget(root, "optimizers");
    for (int i = 0; opts && opts->kind == 'a' && i < opts->n; i++, nopts++)
        if (load_optimizer(s, opts->items[i], buf, (size_t)flen, path, err))
            goto err;
    /* kernels before functions: a function's body may launch one */
    jv *kernels = jget(root, "kernels");
    for (int i = 0; kernels && kernels->kind == 'a' && i < kernels->n; i++, nkernels++) {
        const jv *e = kernels->items[i];
        const char *kname = jstr(e, "name"), *kkind = jstr(e, "kind"), *ksrc = jstr(e, "source");
        const char *kcell = jstr(e, "cell"), *kline = jstr(e, "line");
        if (!kname || !kkind || !ksrc) {
            eng_fail(err, ERR_VALUE, "%%load: '%s': a kernel entry lacks its name, kind or source", path);
            goto err;
        }
        if (eng_kernel_define(s->kernels, ksrc, (int)strlen(ksrc), kname, !strcmp(kkind, "__global__"),
                              kcell ? kcell : path, kline ? atoi(kline) : 1, err))
            goto err;
    }
    if (nfuncs) {
        char name[300];
        snprintf(name, sizeof name, "%s (functions)", path);
        eng_compiled *c = eng_compile(s, (const char *)funcs.p, name, 1, err);
        if (!c)
            goto err;
        int r = eng_run_compiled(s, c, err);
        eng_compiled_free(c);
        if (r)
            goto err;
    }
    jv *rng = jget(root, "rng");
    const char *seed = jstr(rng, "seed"), *off = jstr(rng, "offset");
    if (seed && off) {
        s->rng.seed = strtoull(seed, NULL, 10);
        s->rng.offset = strtoull(off, NULL, 10);
    }
    if (summary) {
        char msg[512];
        snprintf(msg, sizeof msg,
                 "Loaded %d tensor%s, %d other value%s, %d function%s, %d kernel%s and %d optimiser%s from %s\n",
                 ntensors, ntensors == 1 ? "" : "s", nvalues, nvalues == 1 ? "" : "s", nfuncs,
                 nfuncs == 1 ? "" : "s", nkernels, nkernels == 1 ? "" : "s", nopts, nopts == 1 ? "" : "s", path);
        *summary = strdup(msg);
    }
    rc = 0;
err:
    fclose(f);
    free(buf);
    free(funcs.p);
    jv_free(root);
    return rc;
}
