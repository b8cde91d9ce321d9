/* builtins_state.c — named tensors in .npz files (save_tensors, load_tensors), a model's
 * parameters as a checkpoint (save_model, load_model) and one epoch's minibatches for a
 * hand-written loop (batches, batch_indices); listed in engine/lang/builtins_state.def.
 *
 * The .npz is what np.savez writes: a zip archive of stored (uncompressed) NAME.npy
 * members (engine/io/session_npz.c writes and finds them, engine/io/npy.c encodes), so
 * np.load(path)["w1"] reads a tensor back and torch.from_numpy takes it from there;
 * load_tensors also reads np.savez_compressed's deflated members (zlib).
 * A checkpoint names each parameter of an optimiser after the global that holds it
 * (the language has no modules: the optimiser is the one list of what a model trains).
 * Shuffles are Fisher-Yates on Philox draws from the session's RNG, as fit's.
 */
#include "engine/lang/builtins_state.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/base/strbuf.h"
#include "engine/io/fileopen.h"
#include "engine/io/session_npz.h"
#include "engine/lang/interp.h"
#include "engine/tensor/backend.h"
#include "engine/tensor/tensor_impl.h"
#include "engine/tensor/tensor_order.h"
#include "engine/train/autograd.h"
#include "engine/train/optim.h"

#define NPZ_MAX_MEMBERS 65535 /* a zip without zip64 */

/* ---- writing ---- */

typedef struct npz_out {
    strbuf zip;          /* the archive being built */
    npz_member *ms;      /* its members so far */
    int n, cap;
} npz_out;

static void npz_out_free(npz_out *o)
{
    for (int i = 0; i < o->n; i++)
        free(o->ms[i].name);
    free(o->ms);
    free(o->zip.p);
}

/* a name np.load and %load-style readers take back: no '/', no NUL, not empty */
static int check_name(eng_call *c, const char *name, size_t len)
{
    if (len == 0 || len > 200 || memchr(name, '/', len) || memchr(name, '\\', len) || strlen(name) != len)
        return eng_fail(c->err, ERR_VALUE, "%s: '%s' cannot name a member of an .npz (1 to 200 characters, no '/', "
                        "'\\\\' or NUL)", c->name, name);
    return 0;
}

static int npz_out_add(eng_call *c, npz_out *o, const char *name, const tensor *t)
{
    for (int i = 0; i < o->n; i++)
        if (strlen(o->ms[i].name) == strlen(name) + 4 && !strncmp(o->ms[i].name, name, strlen(name)))
            return eng_fail(c->err, ERR_VALUE, "%s: the name '%s' is given twice", c->name, name);
    if (o->n == o->cap) {
        int cap = o->cap ? 2 * o->cap : 8;
        npz_member *ms = realloc(o->ms, sizeof *ms * (size_t)cap);
        if (!ms)
            return eng_fail(c->err, ERR_MEMORY, "%s: out of memory", c->name);
        o->ms = ms;
        o->cap = cap;
    }
    size_t len = 0;
    unsigned char *npy = tensor_npy_encode(t, &len, c->err);
    if (!npy)
        return -1;
    char member[220];
    snprintf(member, sizeof member, "%s.npy", name);
    int rc = npz_add(&o->zip, &o->ms[o->n], member, npy, len, c->err);
    free(npy);
    if (rc < 0)
        return -1;
    o->n++;
    return 0;
}

static int npz_out_write(eng_call *c, npz_out *o, const char *path)
{
    npz_finish(&o->zip, o->ms, o->n);
    if (o->zip.oom)
        return eng_fail(c->err, ERR_MEMORY, "%s: out of memory building '%s'", c->name, path);
    FILE *f = eng_file_open(path, "wb", c->name, c->err);
    if (!f)
        return -1;
    int rc = fwrite(o->zip.p, 1, o->zip.len, f) == o->zip.len ? 0 : -1;
    if (fclose(f) != 0)
        rc = -1;
    if (rc < 0)
        return eng_fail(c->err, ERR_IO, "%s: writing '%s' failed", c->name, path);
    return 0;
}

int bi_save_tensors(eng_call *c, value *out)
{
    const char *path;
    if (arg_string(c, 0, &path) < 0)
        return -1;
    if ((c->argc - 1) % 2 != 0)
        return eng_fail(c->err, ERR_VALUE, "save_tensors: give a name before each tensor: save_tensors(path, \"w\", w, "
                        "\"b\", b); %d arguments after the path", c->argc - 1);
    npz_out o = {0};
    int rc = -1;
    for (int i = 1; i < c->argc; i += 2) {
        const char *name;
        tensor *t;
        if (arg_string(c, i, &name) < 0 || check_name(c, name, (size_t)c->argv[i].as.s->len) < 0)
            goto done;
        if (c->argv[i + 1].type != VAL_TENSOR) {
            eng_fail(c->err, ERR_TYPE, "save_tensors: argument %d ('%s') must be a tensor, got %s", i + 2, name,
                     value_type_name(c->argv[i + 1].type));
            goto done;
        }
        t = c->argv[i + 1].as.t;
        if (npz_out_add(c, &o, name, t) < 0)
            goto done;
    }
    rc = npz_out_write(c, &o, path);
done:
    npz_out_free(&o);
    if (rc == 0)
        *out = value_void();
    return rc;
}

/* ---- reading ---- */

/* the whole file, malloc'ed; NULL with err */
static unsigned char *read_all(eng_call *c, const char *path, size_t *len)
{
    FILE *f = eng_file_open(path, "rb", c->name, c->err);
    if (!f)
        return NULL;
    unsigned char *buf = NULL;
    long flen = -1;
    if (fseek(f, 0, SEEK_END) == 0)
        flen = ftell(f);
    if (flen < 0 || fseek(f, 0, SEEK_SET) != 0)
        eng_fail(c->err, ERR_IO, "%s: cannot read '%s'", c->name, path);
    else if (!(buf = eng_host_malloc((size_t)flen + 1, c->name, c->err)))
        ;
    else if (fread(buf, 1, (size_t)flen, f) != (size_t)flen) {
        eng_fail(c->err, ERR_IO, "%s: reading '%s' failed", c->name, path);
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *len = (size_t)(flen > 0 ? flen : 0);
    return buf;
}

/* the names of buf's .npy members ("w1, b1, ...") for messages */
static void member_names(const unsigned char *buf, size_t len, char *out, size_t cap)
{
    size_t count = 0, at = 0, nl;
    const char *nm;
    int stored;
    out[0] = 0;
    for (size_t i = 0; npz_member_at(buf, len, i, &nm, &nl, &stored, &count) == 0 && at + 8 < cap; i++) {
        size_t k = nl >= 4 && !memcmp(nm + nl - 4, ".npy", 4) ? nl - 4 : nl;
        at += (size_t)snprintf(out + at, cap - at, "%s%.*s", i ? ", " : "", (int)k, nm);
    }
}

/* member name (without .npy) of the archive in buf as a tensor; NULL with err */
static tensor *npz_tensor(eng_call *c, const char *path, const unsigned char *buf, size_t len, const char *name)
{
    char member[220];
    size_t size = 0;
    snprintf(member, sizeof member, "%s.npy", name);
    eng_error e = {0};
    unsigned char *data = npz_read_member(buf, len, member, &size, c->name, &e);
    if (data) {
        tensor *t = tensor_load_npy_mem(data, size, member, c->err);
        free(data);
        return t;
    }
    if (!strstr(e.msg, "(absent)")) {
        *c->err = e;
        return NULL;
    }
    char names[400];
    member_names(buf, len, names, sizeof names);
    eng_fail(c->err, ERR_VALUE, "%s: '%s' has no tensor named '%s' (it has: %s)", c->name, path, name,
             names[0] ? names : "nothing");
    return NULL;
}

/* buf must be a zip archive (an empty one will do); *count its members */
static int check_npz(eng_call *c, const char *path, const unsigned char *buf, size_t len, size_t *count)
{
    const char *nm;
    size_t nl;
    int stored;
    *count = (size_t)-1; /* set once the archive's end record is found */
    if (npz_member_at(buf, len, 0, &nm, &nl, &stored, count) < 0 && *count != 0)
        return eng_fail(c->err, ERR_VALUE, "%s: '%s' is not an .npz file (a zip archive of .npy members)", c->name,
                        path);
    return 0;
}

int bi_load_tensors(eng_call *c, value *out)
{
    const char *path;
    size_t len = 0, count = 0;
    if (arg_string(c, 0, &path) < 0)
        return -1;
    for (int i = 1; i < c->argc; i++) {
        const char *nm;
        if (arg_string(c, i, &nm) < 0)
            return -1;
    }
    unsigned char *buf = read_all(c, path, &len);
    if (!buf)
        return -1;
    eng_list *l = NULL;
    int rc = -1;
    if (check_npz(c, path, buf, len, &count) < 0)
        goto done;
    int n = c->argc > 1 ? c->argc - 1 : (int)count;
    if (!(l = eng_list_new(n))) {
        eng_fail(c->err, ERR_MEMORY, "load_tensors: out of memory");
        goto done;
    }
    for (int i = 0; i < n; i++) {
        char name[220];
        if (c->argc > 1)
            snprintf(name, sizeof name, "%s", c->argv[i + 1].as.s->data);
        else {
            const char *nm;
            size_t nl;
            int stored;
            if (npz_member_at(buf, len, (size_t)i, &nm, &nl, &stored, &count) < 0) {
                eng_fail(c->err, ERR_VALUE, "load_tensors: '%s' is not a well-formed .npz file", path);
                goto done;
            }
            if (nl < 4 || memcmp(nm + nl - 4, ".npy", 4) || nl - 4 >= sizeof name) {
                eng_fail(c->err, ERR_VALUE, "load_tensors: member '%.*s' of '%s' is not an .npy array", (int)nl, nm,
                         path);
                goto done;
            }
            snprintf(name, sizeof name, "%.*s", (int)(nl - 4), nm);
        }
        tensor *t = npz_tensor(c, path, buf, len, name);
        if (!t)
            goto done;
        l->v[i] = value_tensor(t);
    }
    *out = (value){VAL_LIST, {.list = l}};
    l = NULL;
    rc = 0;
done:
    if (l)
        value_decref((value){VAL_LIST, {.list = l}});
    free(buf);
    return rc;
}

/* ---- model checkpoints ---- */

/* the name of parameter k: the global that holds it, else "param<k>" */
static void param_name(eng_session *s, tensor *p, int k, char *buf, size_t cap)
{
    for (int g = 0; g < s->nglobals; g++)
        if (s->globals[g].defined && s->globals[g].v.type == VAL_TENSOR && s->globals[g].v.as.t == p &&
            strlen(s->globals[g].name) < 200) {
            snprintf(buf, cap, "%s", s->globals[g].name);
            return;
        }
    snprintf(buf, cap, "param%d", k);
}

int bi_save_model(eng_call *c, value *out)
{
    const char *path;
    opt_state *o;
    if (arg_string(c, 0, &path) < 0 || arg_optimiser(c, 1, &o) < 0)
        return -1;
    npz_out z = {0};
    int rc = 0;
    for (int k = 0; k < o->n && rc == 0; k++) {
        char name[220];
        param_name(c->session, o->params[k], k, name, sizeof name);
        rc = npz_out_add(c, &z, name, o->params[k]);
    }
    if (rc == 0)
        rc = npz_out_write(c, &z, path);
    npz_out_free(&z);
    if (rc == 0)
        *out = value_void();
    return rc;
}

int bi_load_model(eng_call *c, value *out)
{
    const char *path;
    opt_state *o;
    size_t len = 0, count = 0;
    if (arg_string(c, 0, &path) < 0 || arg_optimiser(c, 1, &o) < 0)
        return -1;
    unsigned char *buf = read_all(c, path, &len);
    if (!buf)
        return -1;
    tensor **vals = calloc((size_t)(o->n ? o->n : 1), sizeof *vals);
    int rc = -1;
    if (!vals) {
        eng_fail(c->err, ERR_MEMORY, "load_model: out of memory");
        goto done;
    }
    if (check_npz(c, path, buf, len, &count) < 0)
        goto done;
    /* every parameter is read and checked before any is written */
    for (int k = 0; k < o->n; k++) {
        char name[220], b1[ENG_SHAPE_BUF], b2[ENG_SHAPE_BUF];
        param_name(c->session, o->params[k], k, name, sizeof name);
        if (!(vals[k] = npz_tensor(c, path, buf, len, name)))
            goto done;
        tensor *p = o->params[k], *v = vals[k];
        int same = p->ndim == v->ndim;
        for (int d = 0; same && d < p->ndim; d++)
            same = p->shape[d] == v->shape[d];
        if (!same) {
            eng_fail(c->err, ERR_SHAPE, "load_model: '%s' is %s in '%s' but %s in the model", name,
                     eng_shape_str(v->ndim, v->shape, b1, sizeof b1), path,
                     eng_shape_str(p->ndim, p->shape, b2, sizeof b2));
            goto done;
        }
    }
    if ((size_t)o->n != count) { /* a file of another model that happens to share these names */
        char names[400];
        member_names(buf, len, names, sizeof names);
        eng_fail(c->err, ERR_VALUE, "load_model: '%s' holds %zu tensors (%s) but the optimiser trains %d parameters",
                 path, count, names, o->n);
        goto done;
    }
    int mode = ag_set_grad_mode(0); /* an in-place write into parameters */
    rc = 0;
    for (int k = 0; k < o->n && rc == 0; k++)
        rc = tensor_assign(o->params[k], vals[k], c->err);
    ag_set_grad_mode(mode);
done:
    for (int k = 0; vals && k < o->n; k++)
        tensor_decref(vals[k]);
    free(vals);
    free(buf);
    if (rc == 0)
        *out = value_void();
    return rc;
}

/* ---- minibatches ---- */

/* 0..n-1, shuffled from the session's RNG when asked (as fit shuffles: tensor_shuffle_order):
 * an i64 tensor on be */
static tensor *epoch_order(eng_call *c, int64_t n, int shuffle, const eng_backend *be)
{
    int64_t *perm = eng_host_malloc(sizeof *perm * (size_t)(n ? n : 1), c->name, c->err);
    if (!perm)
        return NULL;
    tensor *r = NULL;
    if (shuffle) {
        if (tensor_shuffle_order(eng_session_rng(c->session), perm, n, c->err) < 0)
            goto done;
    } else
        for (int64_t i = 0; i < n; i++)
            perm[i] = i;
    int64_t shape[1] = {n};
    tensor *h = tensor_from_host(perm, DT_I64, 1, shape, c->err);
    if (h) {
        r = tensor_to(h, be, c->err);
        tensor_decref(h);
    }
done:
    free(perm);
    return r;
}

static int batch_args(eng_call *c, int from, int64_t *bs, int *shuffle)
{
    if (arg_int(c, from, bs) < 0)
        return -1;
    *shuffle = 0;
    if (from + 1 < c->argc && arg_bool(c, from + 1, shuffle) < 0)
        return -1;
    if (from + 2 < c->argc)
        return eng_fail(c->err, ERR_VALUE, "%s: too many arguments (x[, y], batch_size[, shuffle])", c->name);
    if (*bs <= 0)
        return eng_fail(c->err, ERR_VALUE, "%s: the batch size must be positive, got %lld", c->name, (long long)*bs);
    return 0;
}

/* the list of slices of order, batch_size each */
static eng_list *index_slices(eng_call *c, tensor *order, int64_t n, int64_t bs)
{
    int64_t nb = n ? (n - 1) / bs + 1 : 0; /* no sum that could overflow */
    if (nb > (1 << 24)) {
        eng_fail(c->err, ERR_VALUE, "%s: %lld batches is too many", c->name, (long long)nb);
        return NULL;
    }
    eng_list *l = eng_list_new((int)nb);
    if (!l) {
        eng_fail(c->err, ERR_MEMORY, "%s: out of memory", c->name);
        return NULL;
    }
    for (int64_t b = 0; b < nb; b++) {
        tensor *s = tensor_slice(order, 0, b * bs, b * bs + bs, 1, c->err);
        if (!s) {
            value_decref((value){VAL_LIST, {.list = l}});
            return NULL;
        }
        l->v[b] = value_tensor(s);
    }
    return l;
}

int bi_batch_indices(eng_call *c, value *out)
{
    int64_t n, bs;
    int shuffle;
    if (arg_int(c, 0, &n) < 0 || batch_args(c, 1, &bs, &shuffle) < 0)
        return -1;
    if (n < 0)
        return eng_fail(c->err, ERR_VALUE, "batch_indices: n must be >= 0, got %lld", (long long)n);
    tensor *order = epoch_order(c, n, shuffle, eng_current_backend());
    if (!order)
        return -1;
    eng_list *l = index_slices(c, order, n, bs);
    tensor_decref(order);
    if (!l)
        return -1;
    *out = (value){VAL_LIST, {.list = l}};
    return 0;
}

int bi_batches(eng_call *c, value *out)
{
    char b1[ENG_SHAPE_BUF], b2[ENG_SHAPE_BUF];
    int has_y = c->argc > 1 && c->argv[1].type == VAL_TENSOR;
    tensor *x = NULL, *y = NULL, *order = NULL;
    eng_list *idx = NULL, *l = NULL;
    int64_t bs;
    int shuffle, rc = -1;
    if (arg_tensor(c, 0, &x) < 0 || (has_y && arg_tensor(c, 1, &y) < 0) || batch_args(c, has_y ? 2 : 1, &bs, &shuffle) < 0)
        goto done;
    if (x->ndim == 0 || (y && (y->ndim == 0 || y->shape[0] != x->shape[0]))) {
        if (y)
            eng_fail(c->err, ERR_SHAPE, "batches: x %s and y %s must have the same number of rows (dimension 0)",
                     eng_shape_str(x->ndim, x->shape, b1, sizeof b1), eng_shape_str(y->ndim, y->shape, b2, sizeof b2));
        else
            eng_fail(c->err, ERR_SHAPE, "batches: a 0-d tensor has no rows to batch");
        goto done;
    }
    int64_t n = x->shape[0];
    if (!(order = epoch_order(c, n, shuffle, x->storage->backend)) || !(idx = index_slices(c, order, n, bs)))
        goto done;
    if (!(l = eng_list_new(idx->n))) {
        eng_fail(c->err, ERR_MEMORY, "batches: out of memory");
        goto done;
    }
    for (int b = 0; b < idx->n; b++) {
        tensor *ib = idx->v[b].as.t;
        /* slices of a permutation of the rows: in range, so no check and no read back */
        tensor *xb = tensor_gather_trusted(x, ib, c->err);
        if (!xb)
            goto done;
        if (!y) {
            l->v[b] = value_tensor(xb);
            continue;
        }
        tensor *yb = tensor_gather_trusted(y, ib, c->err);
        eng_list *pair = yb ? eng_list_new(2) : NULL;
        if (!pair) {
            tensor_decref(xb);
            tensor_decref(yb);
            if (yb)
                eng_fail(c->err, ERR_MEMORY, "batches: out of memory");
            goto done;
        }
        pair->v[0] = value_tensor(xb);
        pair->v[1] = value_tensor(yb);
        l->v[b] = (value){VAL_LIST, {.list = pair}};
    }
    *out = (value){VAL_LIST, {.list = l}};
    l = NULL;
    rc = 0;
done:
    if (l)
        value_decref((value){VAL_LIST, {.list = l}});
    if (idx)
        value_decref((value){VAL_LIST, {.list = idx}});
    tensor_decref(order);
    tensor_decref(x);
    tensor_decref(y);
    return rc;
}
