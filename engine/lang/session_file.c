/* session_file.c — %save and %load: the session as a .npz archive of NAME.npy tensors
 * plus a hand-written JSON manifest, __kiln__.json (the container and the manifest's
 * reader: engine/io/session_npz.c). Format and %load's checks: docs/session-file.md. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/tensor/backend.h"
#include "engine/io/fileopen.h"
#include "engine/lang/interp.h"
#include "engine/lang/kernels.h"
#include "engine/lang/custom_ops.h"
#include "engine/train/optim.h"
#include "engine/lang/session_file.h"
#include "engine/io/session_npz.h"
#include "engine/base/strbuf.h"
#include "engine/tensor/tensor_impl.h"

#define MANIFEST "__kiln__.json"
#define FORMAT_VERSION 2

/* short names for the container and the manifest reader (engine/io/session_npz.h) */
typedef strbuf bbuf;
#define bb_put strbuf_put
#define bb_printf strbuf_printf
typedef npz_member zmember;
typedef npz_json jv;
#define zip_add npz_add
#define zip_finish npz_finish
#define zip_find npz_find
#define json_string npz_json_string
#define jv_free npz_json_free
#define jget npz_json_get
#define jstr npz_json_str

/* ---- saving ---- */

/* s as a quoted, escaped C string for messages, cut after about 60 bytes */
static const char *quoted(char *out, size_t cap, const char *s)
{
    size_t k = 0;
    out[k++] = '"';
    for (; s && *s && k + 12 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out[k++] = '\\';
            out[k++] = (char)c;
        } else if (c < 32 || c == 127)
            k += (size_t)snprintf(out + k, cap - k, "\\x%02x", c);
        else
            out[k++] = (char)c;
    }
    if (s && *s) {
        memcpy(out + k, "...", 3);
        k += 3;
    }
    out[k++] = '"';
    out[k] = 0;
    return out;
}

/* Why name cannot be a name in a session file, or NULL when it can. variable: 1 the name
 * of a variable, which must not hide a built-in or a name the language defines either;
 * 2 a function, which may shadow a built-in (engine/lang/shadow.c) but not a name the
 * language defines; 0 a kernel (kernels live in their own namespace). */
static const char *name_problem(const char *name, int variable)
{
    size_t n = strlen(name);
    if (n == 0)
        return "an empty name";
    if (n > 255)
        return "a name longer than 255 bytes";
    if (!strcmp(name, "__global__") || !strcmp(name, "__device__"))
        return "a keyword";
    lexer lx;
    lex_init(&lx, name);
    token t = lex_next(&lx);
    if (t.len != (int)n)
        return "not an identifier";
    if (t.kind >= TK_INT_KW && t.kind <= TK_CONST)
        return "a keyword (the type names int, float, tensor, ... are keywords)";
    if (t.kind != TK_NAME)
        return "not an identifier";
    if (variable == 1 && eng_builtin_find(name, (int)n))
        return "the name of a built-in function, which it would hide";
    if (variable && check_constant_index(name, (int)n) >= 0)
        return "a name the language defines (a dtype, a device or a constant), which it would hide";
    return NULL;
}


static const char *const type_names[] = {"unknown", "void", "bool", "int", "float", "string", "tensor",
                                         "auto", "tuple", "dtype", "device", "function"};

static int type_from_name(const char *n)
{
    for (int i = 0; i < (int)(sizeof type_names / sizeof type_names[0]); i++)
        if (n && !strcmp(n, type_names[i]))
            return i;
    return -1;
}

/* the text of a function's definition: from its node to the brace that closes its body
 * (also %source's, engine/lang/magic_source.c) */
int eng_func_text(const eng_func *fn, const char **start, size_t *len)
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
        if (g->defined && g->v.type == VAL_TENSOR && g->v.as.t == t && !name_problem(g->name, 1))
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
    for (int h = 1; h <= opt_max_handle(&s->optims); h++) {
        opt_state *o = opt_lookup(&s->optims, h);
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
                bb_printf(man, "\"member\": \"%s\", \"dtype\": \"%s\"", member, tensor_dtype_name(p->dtype));
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
        if (k->defines) { /* the earlier cells' #defines it saw */
            bb_printf(man, ", \"defines\": ");
            json_string(man, k->defines, strlen(k->defines));
        }
        bb_printf(man, "}");
        (*nkernels)++;
    }
    bb_printf(man, "%s],\n", t && t->n ? "\n  " : "");
    return 0;
}

/* the "backwards" array: set_backward's pairs whose two functions are saved */
static void save_backwards(eng_session *s, bbuf *man)
{
    const eng_custom_table *t = s->customs;
    int n = 0;
    bb_printf(man, "  \"backwards\": [");
    for (int i = 0; t && i < t->n; i++) {
        int f = eng_global_find(s, t->v[i].fname, (int)strlen(t->v[i].fname));
        int b = eng_global_find(s, t->v[i].bwname, (int)strlen(t->v[i].bwname));
        if (f < 0 || b < 0 || s->globals[f].v.type != VAL_FUNC || s->globals[b].v.type != VAL_FUNC)
            continue;
        bb_printf(man, "%s\n    {\"function\": ", n++ ? "," : "");
        json_string(man, t->v[i].fname, strlen(t->v[i].fname));
        bb_printf(man, ", \"backward\": ");
        json_string(man, t->v[i].bwname, strlen(t->v[i].bwname));
        bb_printf(man, "}");
    }
    bb_printf(man, "%s],\n", n ? "\n  " : "");
}

static void save_fail_cleanup(zmember *ms, int n)
{
    for (int i = 0; i < n; i++)
        free(ms[i].name);
    free(ms);
}

int eng_session_save(eng_session *s, const char *path, char **summary, eng_error *err)
{
    bbuf zip = {0}, man = {0}, skipped = {0}, lists = {0};
    size_t nmembers = (size_t)s->nglobals + 1;
    for (int h = 1; h <= opt_max_handle(&s->optims); h++)
        if (opt_lookup(&s->optims, h))
            nmembers += 3 * (size_t)opt_lookup(&s->optims, h)->n;
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
    save_backwards(s, &man);
    bb_printf(&man, "  \"globals\": [");
    int first = 1;
    for (int i = 0; i < s->nglobals; i++) {
        eng_global *g = &s->globals[i];
        value v = g->v;
        if (!g->defined || v.type == VAL_VOID)
            continue;
        if (v.type == VAL_LIST) { /* split's results: the items are what to keep */
            bb_printf(&lists, "%s%s", lists.len ? ", " : "", g->name);
            continue;
        }
        if (name_problem(g->name, v.type == VAL_FUNC ? 2 : 1)) { /* %load would refuse it: say so, save the rest */
            bb_printf(&skipped, "%s%s", skipped.len ? ", " : "", g->name);
            continue;
        }
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
        case VAL_DTYPE: bb_printf(&man, ", \"value\": \"%s\"", tensor_dtype_name((tensor_dtype)v.as.i)); break;
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
                      tensor_dtype_name(t->dtype), t->storage->backend->name, t->requires_grad ? "true" : "false");
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
            if (eng_func_text(v.as.fn, &text, &len)) {
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
    if (!(f = eng_file_open(path, "wb", "%save", err)))
        goto err;
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
        if (skipped.len)
            bb_printf(&skipped, " (the name of a built-in or a name the language defines, which %%load refuses to "
                                "bring back: copy it to another name to keep it)\n");
        if (lists.len && !lists.oom) /* after the names, in the same "Not saved" line */
            bb_printf(&skipped, "%s%s (a list, as split returns: keep its items in tensors to save them)\n",
                      skipped.len ? "Not saved: " : "", lists.p);
        *summary = skipped.len && !skipped.oom ? malloc(strlen(buf) + skipped.len + 16) : strdup(buf);
        if (*summary && skipped.len && !skipped.oom)
            sprintf(*summary, "%sNot saved: %s", buf, skipped.p);
    }
    rc = 0;
err:
    if (f)
        fclose(f);
    save_fail_cleanup(ms, nm);
    free(zip.p);
    free(man.p);
    free(skipped.p);
    free(lists.p);
    return rc;
}

/* ---- loading ----
 * A session file is code: its functions and kernels run whatever their bodies say when
 * they are called. So %load reads and checks the whole file into a staging area first,
 * without changing the session: every name (an identifier, not a keyword, a built-in or
 * a name the language defines), every value, every optimiser, every kernel (one
 * definition, #define-style preprocessor lines only) and every function (one
 * definition, nothing else: no statement runs), and the functions' bodies against the
 * staged values in a scratch session. Only then does it commit, all of it. */

typedef struct staged_global {
    const char *name;     /* the manifest's (borrowed) */
    int type;             /* declared type: an index into type_names */
    value v;              /* owned; void for a function */
    const char *source;   /* a function's source (borrowed), else NULL */
    char *alias;          /* a variable holding a function of another name (auto f = sq;):
                             that name (malloc'ed), bound once the functions are defined */
} staged_global;

typedef struct staged_opt {
    int64_t handle;       /* the saved handle */
    opt_state *o;         /* owned until registered */
} staged_opt;

typedef struct staged_kernel {
    const char *name, *source, *cell; /* borrowed from the manifest */
    const char *defines;              /* the #defines it saw, or NULL (borrowed) */
    int is_global, line;
} staged_kernel;

typedef struct load_ctx {
    const char *path;           /* the file, for messages */
    const unsigned char *buf;   /* the whole file */
    size_t len;
    staged_global *g;           /* the globals, in file order */
    int ng;
    staged_opt *opts;
    int nopts;
    staged_kernel *k;
    int nk;
    bbuf funcs;                 /* the functions' sources as one cell */
    int ntensors, nvalues, nfuncs;
    const jv *pairs;            /* "backwards" (checked), set once the functions are defined */
    struct name_ref *byname;    /* the globals sorted by name, for lookups (ng of them) */
} load_ctx;

/* a name and the index of its entry: sorted, for duplicates and lookups in O(n log n) */
typedef struct name_ref {
    const char *name;
    int idx;
} name_ref;

static int name_ref_cmp(const void *a, const void *b)
{
    const name_ref *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : (x->idx > y->idx) - (x->idx < y->idx);
}

/* names sorted by (name, index) in a new array; *dup_a < *dup_b get the entries of the
 * first name found twice, or -1. NULL when out of memory. */
static name_ref *sort_names(const char *const *names, size_t stride, int n, int *dup_a, int *dup_b)
{
    name_ref *r = malloc(sizeof *r * (size_t)(n + 1));
    *dup_a = *dup_b = -1;
    if (!r)
        return NULL;
    for (int i = 0; i < n; i++)
        r[i] = (name_ref){*(const char *const *)((const char *)names + stride * (size_t)i), i};
    qsort(r, (size_t)n, sizeof *r, name_ref_cmp);
    for (int i = 1; i < n && *dup_a < 0; i++)
        if (!strcmp(r[i - 1].name, r[i].name)) {
            *dup_a = r[i - 1].idx;
            *dup_b = r[i].idx;
        }
    return r;
}

/* the index of the staged global named name, or -1 */
static int find_staged(const load_ctx *L, const char *name)
{
    name_ref key = {name, -1};
    int lo = 0, hi = L->ng;
    while (lo < hi) { /* the first entry not below (name, -1) */
        int mid = (lo + hi) / 2;
        if (name_ref_cmp(&L->byname[mid], &key) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < L->ng && !strcmp(L->byname[lo].name, name) ? L->byname[lo].idx : -1;
}

/* "%load: 'PATH': " + message + "; nothing was loaded" */
static int load_fail(const load_ctx *L, eng_error *err, eng_errkind kind, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int load_fail(const load_ctx *L, eng_error *err, eng_errkind kind, const char *fmt, ...)
{
    char msg[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return eng_fail(err, kind, "%%load: '%s': %s; nothing was loaded", L->path, msg);
}

/* err's message replaced by text, cut to fit */
static void set_msg(eng_error *err, const strbuf *text)
{
    size_t n = text->p && !text->oom ? text->len : 0;
    if (n >= sizeof err->msg)
        n = sizeof err->msg - 1;
    if (n)
        memcpy(err->msg, text->p, n);
    err->msg[n] = 0;
}

/* an error from below (npy, optimisers, kernels) with the file and the entry before it */
static int load_wrap(const load_ctx *L, eng_error *err, const char *entry)
{
    strbuf b = {0};
    strbuf_printf(&b, "%%load: '%s': %s: %s; nothing was loaded", L->path, entry, err->msg);
    set_msg(err, &b);
    free(b.p);
    if (err->kind == ERR_NONE)
        err->kind = ERR_VALUE;
    return -1;
}

/* the declared types whose value must be of that very kind */
static int type_fits(int type, const char *kind)
{
    static const char *const strict[] = {"bool", "int", "float", "string", "tensor", "function"};
    for (size_t i = 0; i < sizeof strict / sizeof strict[0]; i++)
        if (!strcmp(type_names[type], strict[i]))
            return !strcmp(kind, strict[i]);
    return 1;
}

/* one non-function global's value from its manifest entry */
static int stage_value(load_ctx *L, const jv *e, const char *name, const char *kind, value *out, eng_error *err)
{
    jv *val = jget(e, "value");
    value v = value_void();
    if (!strcmp(kind, "tensor")) {
        const char *member = jstr(e, "member");
        size_t size = 0;
        const unsigned char *data = member ? zip_find(L->buf, L->len, member, &size) : NULL;
        if (!data)
            return eng_fail(err, ERR_VALUE, "no stored member for tensor %s", name);
        tensor *t = tensor_load_npy_mem(data, size, member, err);
        if (!t)
            return -1;
        const char *dt = jstr(e, "dtype");
        int want = dt ? tensor_dtype_from_name(dt) : -1;
        if (want >= 0 && (tensor_dtype)want != t->dtype) { /* bf16 is stored as f32 */
            tensor *c = tensor_cast(t, (tensor_dtype)want, err);
            tensor_decref(t);
            if (!(t = c))
                return -1;
        }
        jv *rg = jget(e, "requires_grad");
        if (rg && rg->kind == 't')
            t->requires_grad = 1;
        v = value_tensor(t);
        L->ntensors++;
    } else if (!strcmp(kind, "bool") && val) {
        v = value_bool(val->kind == 't');
    } else if (!strcmp(kind, "int") && val && val->str) {
        v = value_int(strtoll(val->str, NULL, 10));
    } else if (!strcmp(kind, "float") && val && val->str) {
        v = value_float(strtod(val->str, NULL));
    } else if (!strcmp(kind, "string") && val && val->kind == 's') {
        eng_string *str = eng_string_new(val->str, (int64_t)strlen(val->str));
        if (!str)
            return eng_fail(err, ERR_MEMORY, "out of memory");
        v.type = VAL_STRING;
        v.as.s = str;
    } else if (!strcmp(kind, "dtype") && val && val->str && tensor_dtype_from_name(val->str) >= 0) {
        v = value_dtype((tensor_dtype)tensor_dtype_from_name(val->str));
    } else if (!strcmp(kind, "device") && val && val->str) {
        v.type = VAL_DEVICE;
        v.as.i = value_device_index(val->str) > 0 ? value_device_index(val->str) : 0;
    } else if (!strcmp(kind, "tuple") && val && val->kind == 'a') {
        int64_t items[TENSOR_MAXDIM * 4];
        int n = val->n < (int)(sizeof items / sizeof items[0]) ? val->n : (int)(sizeof items / sizeof items[0]);
        for (int i = 0; i < n; i++)
            items[i] = val->items[i]->str ? strtoll(val->items[i]->str, NULL, 10) : 0;
        eng_tuple *tup = eng_tuple_new(n, items);
        if (!tup)
            return eng_fail(err, ERR_MEMORY, "out of memory");
        v.type = VAL_TUPLE;
        v.as.tup = tup;
    } else
        return eng_fail(err, ERR_VALUE, "cannot restore %s %s from this entry", eng_a(kind), kind);
    if (v.type != VAL_TENSOR)
        L->nvalues++;
    *out = v;
    return 0;
}

/* the line col of text (1-based), up to 50 bytes of it, into out */
static void excerpt_at(char *out, size_t cap, const char *text, int line, int col)
{
    const char *p = text;
    for (int l = 1; l < line && p; l++)
        if ((p = strchr(p, '\n')))
            p++;
    for (int c = 1; p && *p && *p != '\n' && c < col; c++)
        p++;
    char piece[51];
    size_t n = 0;
    while (p && p[n] && p[n] != '\n' && n < sizeof piece - 1)
        n++;
    memcpy(piece, p ? p : "", n);
    piece[n] = 0;
    quoted(out, cap, piece);
}

static const char *stmt_name(const ast *n)
{
    switch (n->kind) {
    case AST_DECL: return "a declaration";
    case AST_EXPR: return "an expression statement";
    case AST_FUNC: return "another function's definition";
    case AST_KERNEL: return "a kernel definition";
    case AST_MAGIC: return "a magic";
    case AST_EMPTY: return "an empty statement";
    default: return "a statement";
    }
}

/* A source that must be exactly one definition: of a function (kernel 0), or of the
 * kernel (kernel 1, is_global its kind) named name. A function's name may be any (name
 * NULL): it goes into defined (256 bytes). entry names the source in messages. */
static int check_definition(const load_ctx *L, const char *entry, const char *name, const char *src, int kernel,
                            int is_global, char *defined, eng_error *err)
{
    ast_cell cell;
    eng_error perr[1];
    memset(perr, 0, sizeof perr);
    char ex[96];
    int rc = 0;
    if (ast_parse(src, &cell, perr, 1)) {
        rc = load_fail(L, err, ERR_SYNTAX, "%s: its source does not parse (%d:%d: %s)", entry, perr[0].line,
                       perr[0].col, perr[0].msg);
    } else if (!cell.arena || cell.nstmts == 0) {
        rc = load_fail(L, err, ERR_VALUE, "%s: its source defines nothing", entry);
    } else {
        for (int i = 0; i < cell.nstmts && !rc; i++) {
            ast *n = cell.stmts[i];
            int want = kernel ? AST_KERNEL : AST_FUNC;
            const char *got = kernel ? n->name : n->str;
            int glen = kernel ? n->nlen : n->slen;
            int named = !name || (glen == (int)strlen(name) && !memcmp(got, name, (size_t)glen));
            if (i == 0 && (int)n->kind == want && named && (!kernel || (n->ival == 1) == is_global)) {
                if (defined)
                    snprintf(defined, 256, "%.*s", glen < 255 ? glen : 255, got);
                continue;
            }
            excerpt_at(ex, sizeof ex, cell.src, n->line, n->col);
            if (i == 0 && (int)n->kind == want)
                rc = load_fail(L, err, ERR_VALUE, "%s: its source defines %s %.*s, not %s", entry,
                               n->ival == 1 ? "__global__" : "__device__", glen, got, name);
            else
                rc = load_fail(L, err, ERR_VALUE,
                               "%s: refused %s at %d:%d (%s): a session file's %s source may only define %s, "
                               "and nothing in it may run at load", entry, stmt_name(n), n->line, n->col, ex,
                               kernel ? "kernel" : "function", kernel ? "that kernel" : "one function");
        }
    }
    if (cell.arena)
        arena_decref(cell.arena);
    return rc;
}

/* The preprocessor lines of a kernel's source: only those that define (#define,
 * #undef, #pragma, #if...#endif); #include and the rest would reach outside the file.
 * Its "defines" (defs 1): only #undef, #line and #define lines. */
static int check_kernel_directives(const load_ctx *L, const char *entry, const char *src, int defs, eng_error *err)
{
    static const char *const ok[] = {"define", "undef", "pragma", "if", "ifdef", "ifndef", "elif", "else", "endif"};
    static const char *const ok_defs[] = {"define", "undef", "line"};
    int line = 1;
    for (const char *p = src; *p; line++) {
        const char *q = p;
        while (*q == ' ' || *q == '\t')
            q++;
        if (*q == '#') {
            q++;
            while (*q == ' ' || *q == '\t')
                q++;
            size_t n = 0;
            while (isalpha((unsigned char)q[n]) || q[n] == '_')
                n++;
            int fine = 0;
            for (size_t i = 0; !defs && i < sizeof ok / sizeof ok[0] && !fine; i++)
                fine = strlen(ok[i]) == n && !strncmp(q, ok[i], n);
            for (size_t i = 0; defs && i < sizeof ok_defs / sizeof ok_defs[0] && !fine; i++)
                fine = strlen(ok_defs[i]) == n && !strncmp(q, ok_defs[i], n);
            if (defs && (!fine || n == 0)) {
                char ex[96];
                excerpt_at(ex, sizeof ex, src, line, 1);
                return load_fail(L, err, ERR_VALUE, "%s: refused line %d of its defines (%s): they may hold "
                                 "#undef, #line and #define lines only", entry, line, ex);
            }
            if (!fine && n > 0) {
                char ex[96];
                excerpt_at(ex, sizeof ex, src, line, 1);
                return load_fail(L, err, ERR_VALUE, "%s: refused the preprocessor line %d (%s): a kernel's source "
                                 "may hold #define, #undef, #pragma and #if lines only", entry, line, ex);
            }
        } else if (defs && *q && *q != '\n' && *q != '\r') {
            char ex[96];
            excerpt_at(ex, sizeof ex, src, line, 1);
            return load_fail(L, err, ERR_VALUE, "%s: refused line %d of its defines (%s): they may hold #undef, "
                             "#line and #define lines only", entry, line, ex);
        }
        const char *nl = strchr(p, '\n');
        if (!nl)
            break;
        p = nl + 1;
    }
    return 0;
}

static void load_ctx_free(load_ctx *L)
{
    for (int i = 0; i < L->ng; i++) {
        value_decref(L->g[i].v);
        free(L->g[i].alias);
    }
    free(L->g);
    for (int i = 0; i < L->nopts; i++)
        opt_free(L->opts[i].o);
    free(L->opts);
    free(L->k);
    free(L->byname);
    free(L->funcs.p);
}

/* the staged global tensor named name, or NULL */
static tensor *staged_tensor(const load_ctx *L, const char *name)
{
    int i = find_staged(L, name);
    return i >= 0 && L->g[i].v.type == VAL_TENSOR ? L->g[i].v.as.t : NULL;
}

/* a stored member as a tensor of dtype want (-1: as stored) */
static tensor *load_member(const load_ctx *L, const char *member, int want, eng_error *err)
{
    size_t size = 0;
    const unsigned char *data = member ? zip_find(L->buf, L->len, member, &size) : NULL;
    if (!data) {
        eng_fail(err, ERR_VALUE, "no stored member '%s'", member ? member : "?");
        return NULL;
    }
    tensor *t = tensor_load_npy_mem(data, size, member, err);
    if (t && want >= 0 && (tensor_dtype)want != t->dtype) { /* bf16 is stored as f32 */
        tensor *c = tensor_cast(t, (tensor_dtype)want, err);
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

/* one optimiser from its manifest entry, unregistered, its parameters tied to the
 * staged globals */
static opt_state *stage_optimizer(const load_ctx *L, const jv *e, int64_t *handle_out, eng_error *err)
{
    const char *kind = jstr(e, "kind"), *handle = jstr(e, "handle");
    jv *params = jget(e, "params");
    int k = kind ? opt_kind_from_name(kind) : -1;
    if (k < 0 || !handle || !params || params->kind != 'a' || params->n > 4096) {
        eng_fail(err, ERR_VALUE, "the entry lacks its kind, handle or params");
        return NULL;
    }
    char *end;
    long long h = strtoll(handle, &end, 10);
    if (*end || h < 1 || h > 1 << 20) {
        eng_fail(err, ERR_VALUE, "handle %s is out of range 1..%d", handle, 1 << 20);
        return NULL;
    }
    *handle_out = h;
    int n = params->n;
    tensor **ps = calloc((size_t)n + 1, sizeof *ps);
    opt_state *o = NULL;
    if (!ps) {
        eng_fail(err, ERR_MEMORY, "out of memory");
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        const jv *pe = params->items[i];
        const char *gname = jstr(pe, "global");
        if (gname) {
            if (!(ps[i] = staged_tensor(L, gname))) {
                char q[96];
                eng_fail(err, ERR_VALUE, "parameter %d is the global %s, which is not a tensor of the file", i + 1,
                         quoted(q, sizeof q, gname));
                goto fail;
            }
            tensor_incref(ps[i]);
        } else {
            const char *dt = jstr(pe, "dtype");
            if (!(ps[i] = load_member(L, jstr(pe, "member"), dt ? tensor_dtype_from_name(dt) : -1, err)))
                goto fail;
            ps[i]->requires_grad = 1;
        }
    }
    if (!(o = k == OPT_ADAMW      ? opt_adamw_new(ps, n, err)
              : k == OPT_ADAMW_SF ? opt_adamw_sf_new(ps, n, err)
                                  : opt_sgd_new(ps, n, err)))
        goto fail;
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
        if ((mm && !(o->m[i] = load_member(L, mm, (int)ps[i]->dtype, err))) ||
            (vm && !(o->v[i] = load_member(L, vm, (int)ps[i]->dtype, err))))
            goto fail;
        for (int b = 0; b < 2; b++) {
            tensor *t = b ? o->v[i] : o->m[i];
            if (t && (t->ndim != ps[i]->ndim || memcmp(t->shape, ps[i]->shape, sizeof(int64_t) * (size_t)t->ndim))) {
                eng_fail(err, ERR_SHAPE, "the state of parameter %d has the wrong shape", i + 1);
                goto fail;
            }
        }
    }
    jv *hist = jget(e, "history");
    if (hist && hist->kind == 'a' && hist->n > 0) {
        double *rows = calloc((size_t)hist->n * OPT_HIST_COLS, sizeof *rows);
        if (!rows) {
            eng_fail(err, ERR_MEMORY, "out of memory");
            goto fail;
        }
        for (int r = 0; r < hist->n; r++)
            for (int c = 0; c < OPT_HIST_COLS && hist->items[r]->kind == 'a' && c < hist->items[r]->n; c++) {
                const jv *v = hist->items[r]->items[c];
                rows[r * OPT_HIST_COLS + c] = v->str ? strtod(v->str, NULL) : NAN;
            }
        int hr = opt_set_history(o, rows, hist->n, err);
        free(rows);
        if (hr)
            goto fail;
    }
    for (int i = 0; i < n; i++)
        tensor_decref(ps[i]);
    free(ps);
    return o;
fail:
    opt_free(o);
    for (int i = 0; i < n; i++)
        tensor_decref(ps[i]);
    free(ps);
    return NULL;
}

/* globals: each name checked, each value read, each function's source checked to be
 * its one definition and gathered into L->funcs */
static int stage_globals(load_ctx *L, const jv *globals, eng_error *err)
{
    if (!(L->g = calloc((size_t)globals->n + 1, sizeof *L->g)))
        return load_fail(L, err, ERR_MEMORY, "out of memory");
    char q[96], entry[160];
    for (int i = 0; i < globals->n; i++) {
        const jv *e = globals->items[i];
        const char *name = jstr(e, "name"), *kind = jstr(e, "kind"), *why;
        int type = type_from_name(jstr(e, "type"));
        if (!name || !kind || type < 0)
            return load_fail(L, err, ERR_VALUE, "globals[%d] lacks its name, kind or type", i);
        snprintf(entry, sizeof entry, "globals[%d] %s", i, quoted(q, sizeof q, name));
        if ((why = name_problem(name, strcmp(kind, "function") ? 1 : 2)))
            return load_fail(L, err, ERR_NAME, "%s: refused the name: it is %s", entry, why);
        if (!type_fits(type, kind))
            return load_fail(L, err, ERR_TYPE, "%s: declared %s but holds %s %s", entry, type_names[type], eng_a(kind), kind);
        staged_global *g = &L->g[L->ng];
        g->name = name;
        g->type = type;
        g->v = value_void();
        if (!strcmp(kind, "function")) {
            const char *src = jstr(e, "source");
            char defined[256];
            if (!src)
                return load_fail(L, err, ERR_VALUE, "%s: a function without its source", entry);
            if (check_definition(L, entry, NULL, src, 0, 0, defined, err))
                return -1;
            if (strcmp(defined, name)) { /* auto f = sq;: f refers to the file's sq */
                if (!(g->alias = strdup(defined)))
                    return load_fail(L, err, ERR_MEMORY, "out of memory");
                L->nfuncs++;
                L->ng++;
                continue;
            }
            g->source = src;
            bb_put(&L->funcs, src, strlen(src));
            bb_put(&L->funcs, "\n", 1);
            L->nfuncs++;
        } else if (stage_value(L, e, name, kind, &g->v, err))
            return load_wrap(L, err, entry);
        L->ng++;
    }
    int da, db;
    if (!(L->byname = sort_names(&L->g[0].name, sizeof *L->g, L->ng, &da, &db)))
        return load_fail(L, err, ERR_MEMORY, "out of memory");
    if (da >= 0)
        return load_fail(L, err, ERR_NAME, "globals[%d] %s: the name is also globals[%d]", db,
                         quoted(q, sizeof q, L->g[db].name), da);
    for (int i = 0; i < L->ng; i++) { /* an alias names a function the file defines */
        int j = L->g[i].alias ? find_staged(L, L->g[i].alias) : -1;
        if (L->g[i].alias && (j < 0 || !L->g[j].source))
            return load_fail(L, err, ERR_NAME, "globals[%d] %s: holds the function %s, which the file does not define",
                             i, quoted(q, sizeof q, L->g[i].name), L->g[i].alias);
    }
    return L->funcs.oom ? load_fail(L, err, ERR_MEMORY, "out of memory") : 0;
}

static int stage_optimizers(load_ctx *L, const jv *opts, eng_error *err)
{
    if (!opts || opts->kind != 'a')
        return 0;
    if (!(L->opts = calloc((size_t)opts->n + 1, sizeof *L->opts)))
        return load_fail(L, err, ERR_MEMORY, "out of memory");
    char entry[64];
    for (int i = 0; i < opts->n; i++) {
        snprintf(entry, sizeof entry, "optimizers[%d]", i);
        int64_t h = 0;
        opt_state *o = stage_optimizer(L, opts->items[i], &h, err);
        if (!o)
            return load_wrap(L, err, entry);
        L->opts[L->nopts++] = (staged_opt){h, o};
        for (int j = 0; j < L->nopts - 1; j++)
            if (L->opts[j].handle == h)
                return load_fail(L, err, ERR_VALUE, "%s: handle %lld is also optimizers[%d]'s", entry, (long long)h, j);
    }
    return 0;
}

/* "backwards": set_backward's pairs, each of two functions the file defines */
static int stage_backwards(load_ctx *L, const jv *pairs, eng_error *err)
{
    if (!pairs || pairs->kind != 'a')
        return 0;
    for (int i = 0; i < pairs->n; i++) {
        const jv *e = pairs->items[i];
        const char *names[2] = {jstr(e, "function"), jstr(e, "backward")};
        char q[96];
        for (int k = 0; k < 2; k++) {
            int g = names[k] ? find_staged(L, names[k]) : -1;
            if (!names[k])
                return load_fail(L, err, ERR_VALUE, "backwards[%d] lacks its function or backward", i);
            if (g < 0 || !L->g[g].source)
                return load_fail(L, err, ERR_NAME, "backwards[%d]: %s is not a function of the file", i,
                                 quoted(q, sizeof q, names[k]));
        }
        if (!strcmp(names[0], names[1]))
            return load_fail(L, err, ERR_VALUE, "backwards[%d]: %s cannot be its own backward", i,
                             quoted(q, sizeof q, names[0]));
    }
    L->pairs = pairs;
    return 0;
}

static int stage_kernels(load_ctx *L, const jv *kernels, eng_error *err)
{
    if (!kernels || kernels->kind != 'a')
        return 0;
    if (!(L->k = calloc((size_t)kernels->n + 1, sizeof *L->k)))
        return load_fail(L, err, ERR_MEMORY, "out of memory");
    char q[96], entry[160];
    for (int i = 0; i < kernels->n; i++) {
        const jv *e = kernels->items[i];
        const char *name = jstr(e, "name"), *kind = jstr(e, "kind"), *src = jstr(e, "source");
        const char *cell = jstr(e, "cell"), *line = jstr(e, "line"), *why;
        if (!name || !kind || !src)
            return load_fail(L, err, ERR_VALUE, "kernels[%d] lacks its name, kind or source", i);
        snprintf(entry, sizeof entry, "kernels[%d] %s", i, quoted(q, sizeof q, name));
        if ((why = name_problem(name, 0)))
            return load_fail(L, err, ERR_NAME, "%s: refused the name: it is %s", entry, why);
        int is_global = !strcmp(kind, "__global__");
        if (!is_global && strcmp(kind, "__device__"))
            return load_fail(L, err, ERR_VALUE, "%s: kind %s is neither __global__ nor __device__", entry,
                             quoted(q, sizeof q, kind));
        for (const char *c = cell; c && *c; c++) /* it goes into #line directives */
            if ((unsigned char)*c < 32 || *c == '"' || *c == '\\' || c - cell > 255)
                return load_fail(L, err, ERR_VALUE, "%s: refused its cell name %s", entry, quoted(q, sizeof q, cell));
        long ln = line ? strtol(line, NULL, 10) : 1;
        if (ln < 1 || ln > 100000000)
            return load_fail(L, err, ERR_VALUE, "%s: line %s is out of range", entry, line);
        const char *defs = jstr(e, "defines");
        if (check_definition(L, entry, name, src, 1, is_global, NULL, err) ||
            check_kernel_directives(L, entry, src, 0, err) || (defs && check_kernel_directives(L, entry, defs, 1, err)))
            return -1;
        L->k[L->nk++] = (staged_kernel){name, src, cell ? cell : L->path, defs, is_global, (int)ln};
    }
    int da, db;
    name_ref *r = sort_names(&L->k[0].name, sizeof *L->k, L->nk, &da, &db);
    free(r);
    if (!r)
        return load_fail(L, err, ERR_MEMORY, "out of memory");
    if (da >= 0)
        return load_fail(L, err, ERR_NAME, "kernels[%d] %s: the name is also kernels[%d]", db,
                         quoted(q, sizeof q, L->k[db].name), da);
    return 0;
}

/* The functions' bodies checked against the session as it will be after the commit
 * (its globals and kernels, then the file's), in a scratch session: the real one is
 * not touched. The kernels are defined there too (their parameters are parsed). */
static int check_in_scratch(eng_session *s, load_ctx *L, eng_error *err)
{
    eng_session *x = eng_session_new(); /* its own context: the real session's is untouched */
    if (!x)
        return load_fail(L, err, ERR_MEMORY, "out of memory");
    int rc = -1;
    char q[96], entry[160];
    for (int i = 0; i < s->nglobals; i++) {
        const eng_global *g = &s->globals[i];
        int xg = g->defined ? eng_global_add(x, g->name, (int)strlen(g->name)) : 0;
        if (xg < 0) {
            load_fail(L, err, ERR_MEMORY, "out of memory");
            goto out;
        }
        if (g->defined) {
            value_incref(g->v);
            x->globals[xg] = (eng_global){x->globals[xg].name, g->type, g->v, 1};
        }
    }
    for (int i = 0; i < L->ng; i++) {
        if (L->g[i].source)
            continue;
        int xg = eng_global_add(x, L->g[i].name, (int)strlen(L->g[i].name));
        if (xg < 0) {
            load_fail(L, err, ERR_MEMORY, "out of memory");
            goto out;
        }
        value_decref(x->globals[xg].v); /* an alias is void here: its function is in the cell checked */
        value_incref(L->g[i].v);
        x->globals[xg].v = L->g[i].v;
        x->globals[xg].type = (ast_type)L->g[i].type;
        x->globals[xg].defined = 1;
    }
    for (int i = 0; s->kernels && i < s->kernels->n; i++) {
        const eng_kernel *k = s->kernels->items[i];
        if (eng_kernel_define(x->kernels, k->source, (int)strlen(k->source), k->defines, k->name, k->is_global,
                              k->cell, k->line, err))
            goto out;
    }
    for (int i = 0; i < L->nk; i++) {
        const staged_kernel *k = &L->k[i];
        snprintf(entry, sizeof entry, "kernels[%d] %s", i, quoted(q, sizeof q, k->name));
        if (eng_kernel_define(x->kernels, k->source, (int)strlen(k->source), k->defines, k->name, k->is_global,
                              k->cell, k->line, err)) {
            load_wrap(L, err, entry);
            goto out;
        }
    }
    if (L->nfuncs) {
        eng_compiled *c = eng_compile(x, (const char *)L->funcs.p, "functions", 1, err);
        if (!c) {
            load_wrap(L, err, "its functions do not check");
            goto out;
        }
        eng_compiled_free(c);
    }
    rc = 0;
out:
    eng_session_free(x);
    return rc;
}

static void bind_global(eng_session *s, int g, int type, value v)
{
    eng_global *gl = &s->globals[g];
    value_decref(gl->v);
    gl->v = v;
    gl->type = (ast_type)type;
    gl->defined = 1;
}

/* Everything staged goes into the session. Only running out of memory can fail here,
 * and the first steps (the globals' indices) change nothing visible. */
static int commit(eng_session *s, load_ctx *L, const jv *root, eng_error *err)
{
    int *index = calloc((size_t)L->ng + 1, sizeof *index);
    if (!index)
        return load_fail(L, err, ERR_MEMORY, "out of memory");
    for (int i = 0; i < L->ng; i++)
        if ((index[i] = eng_global_add(s, L->g[i].name, (int)strlen(L->g[i].name))) < 0) {
            free(index);
            return load_fail(L, err, ERR_MEMORY, "out of memory");
        }
    int rc = -1;
    for (int i = 0; i < L->nopts; i++) {
        opt_state *o = L->opts[i].o;
        L->opts[i].o = NULL; /* registered, or freed by opt_register_at */
        if (opt_register_at(&s->optims, L->opts[i].handle, o, err))
            goto out;
    }
    for (int i = 0; i < L->nk; i++) {
        const staged_kernel *k = &L->k[i];
        if (eng_kernel_define(s->kernels, k->source, (int)strlen(k->source), k->defines, k->name, k->is_global,
                              k->cell, k->line, err))
            goto out;
    }
    for (int i = 0; i < L->ng; i++)
        if (!L->g[i].source && !L->g[i].alias) {
            bind_global(s, index[i], L->g[i].type, L->g[i].v);
            L->g[i].v = value_void();
        }
    if (L->nfuncs) { /* definitions only (checked): running them defines, nothing else */
        char name[300];
        snprintf(name, sizeof name, "%s (functions)", L->path);
        eng_compiled *c = eng_compile(s, (const char *)L->funcs.p, name, 1, err);
        int r = c ? eng_run_compiled(s, c, err) : -1;
        eng_compiled_free(c);
        if (r)
            goto out;
    }
    for (int i = 0; i < L->ng; i++) { /* auto f = sq;: now that sq is defined */
        int fg = L->g[i].alias ? eng_global_find(s, L->g[i].alias, (int)strlen(L->g[i].alias)) : -1;
        if (fg >= 0 && s->globals[fg].v.type == VAL_FUNC) {
            value_incref(s->globals[fg].v);
            bind_global(s, index[i], L->g[i].type, s->globals[fg].v);
        }
    }
    for (int i = 0; L->pairs && i < L->pairs->n; i++) /* set_backward's pairs */
        if (eng_custom_set(s, jstr(L->pairs->items[i], "function"), jstr(L->pairs->items[i], "backward"), err))
            goto out;
    jv *rng = jget(root, "rng");
    const char *seed = jstr(rng, "seed"), *off = jstr(rng, "offset");
    if (seed && off) {
        s->rng.seed = strtoull(seed, NULL, 10);
        s->rng.offset = strtoull(off, NULL, 10);
    }
    rc = 0;
out:
    if (rc) { /* out of memory half-way: say so, since part of the file is in */
        strbuf b = {0};
        strbuf_printf(&b, "%%load: '%s' was loaded only in part: %s", L->path, err->msg);
        set_msg(err, &b);
        free(b.p);
    }
    free(index);
    return rc;
}

int eng_session_load(eng_session *s, const char *path, char **summary, eng_error *err)
{
    unsigned char *buf = NULL;
    jv *root = NULL;
    load_ctx L = {.path = path};
    int rc = -1;
    FILE *f = eng_file_open(path, "rb", "%load", err);
    if (!f)
        return -1;
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
    L.buf = buf;
    L.len = (size_t)flen;
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
    root = npz_json_parse(&p);
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
    /* all of it staged and checked, then committed */
    if (stage_globals(&L, globals, err) || stage_optimizers(&L, jget(root, "optimizers"), err) ||
        stage_kernels(&L, jget(root, "kernels"), err) ||
        stage_backwards(&L, jget(root, "backwards"), err) || check_in_scratch(s, &L, err) || commit(s, &L, root, err))
        goto err;
    if (summary) {
        char msg[1024];
        int ntensors = L.ntensors, nvalues = L.nvalues, nfuncs = L.nfuncs, nkernels = L.nk, nopts = L.nopts;
        int n = snprintf(msg, sizeof msg,
                         "Loaded %d tensor%s, %d other value%s, %d function%s, %d kernel%s and %d optimiser%s from %s\n",
                         ntensors, ntensors == 1 ? "" : "s", nvalues, nvalues == 1 ? "" : "s", nfuncs,
                         nfuncs == 1 ? "" : "s", nkernels, nkernels == 1 ? "" : "s", nopts, nopts == 1 ? "" : "s",
                         path);
        if (nfuncs + nkernels > 0 && n > 0 && n < (int)sizeof msg)
            snprintf(msg + n, sizeof msg - (size_t)n,
                     "A session file is code: its functions and kernels (definitions only; nothing in the file "
                     "ran) do what their bodies say when you call them. Load files you trust.\n");
        *summary = strdup(msg);
    }
    rc = 0;
err:
    fclose(f);
    free(buf);
    load_ctx_free(&L);
    jv_free(root);
    return rc;
}
