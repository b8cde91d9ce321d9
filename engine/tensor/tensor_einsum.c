/* tensor_einsum.c — NumPy's einsum for one to three operands, composed of the front
 * end's recorded ops (sum, permute, reshape, matmul), so autograd differentiates it.
 *
 * The spec is parsed once ("ij,jk->ik"; without "->" the output is the letters seen
 * exactly once, in alphabetical order, as NumPy). Then: each operand first sums the
 * letters no one else needs; the operands are contracted left to right, two at a time,
 * as one batched matmul ([batch, kept of A, summed] @ [batch, summed, kept of B]); the
 * result sums what the output drops and is permuted to the output's order.
 *
 * "..." (NumPy's ellipsis): each operand's "..." stands for its dimensions that no
 * letter names; they broadcast against the other operands' as NumPy's do (aligned on
 * the right, size 1 against any size). Internally each of those dimensions gets a
 * label that is not a letter (1, 2, ...: the broadcast shape's positions), so the rest
 * of the algorithm treats them as letters; an operand's size-1 dimension where another
 * operand's is larger gets a label of its own instead (summed away first: a squeeze),
 * and the contraction broadcasts it. Without "->" the output is the "..." dimensions,
 * then the letters seen once; with "->" an output that lacks "..." while the operands'
 * cover dimensions is an error, as in NumPy.
 *
 * Not supported, with an error naming the spec: a letter twice in one operand (traces
 * and diagonals: use diag), more than three operands, and size-1 broadcasting between
 * letters.
 */
#include "engine/tensor/tensor.h"

#include <stdio.h>
#include <string.h>

#include "engine/tensor/tensor_impl.h"

#define EIN_MAXOPS 3
/* labels of the dimensions "..." stands for (not letters): position e of the
 * broadcast shape, and an operand's own size-1 dimension number k */
#define EIN_ELL(e) ((char)(1 + (e)))
#define EIN_PRIV(k) ((char)(1 + TENSOR_MAXDIM + (k)))

typedef struct ein_term {
    tensor *t;                 /* owned */
    char lab[TENSOR_MAXDIM];   /* one letter per dimension */
    int n;                     /* letters (= t->ndim) */
} ein_term;

static int has(const char *s, int n, char c)
{
    for (int i = 0; i < n; i++)
        if (s[i] == c)
            return 1;
    return 0;
}

/* sums t's dimensions whose letter is not in keep */
static int ein_sum_unneeded(ein_term *a, const char *keep, int nkeep, eng_error *err)
{
    for (int d = a->n - 1; d >= 0; d--) {
        if (has(keep, nkeep, a->lab[d]))
            continue;
        tensor *r = tensor_reduce(OP_SUM, a->t, d, 0, err);
        if (!r)
            return -1;
        tensor_decref(a->t);
        a->t = r;
        memmove(a->lab + d, a->lab + d + 1, (size_t)(a->n - d - 1));
        a->n--;
    }
    return 0;
}

/* a's dimensions in the order of the letters order[0..n) */
static tensor *ein_permute(const ein_term *a, const char *order, int n, eng_error *err)
{
    int perm[TENSOR_MAXDIM];
    for (int i = 0; i < n; i++)
        perm[i] = (int)((const char *)memchr(a->lab, order[i], (size_t)a->n) - a->lab);
    return tensor_permute(a->t, perm, n, err);
}

static int64_t ein_size(const ein_term *a, char c)
{
    return a->t->shape[(const char *)memchr(a->lab, c, (size_t)a->n) - a->lab];
}

/* a = a (x) b, keeping the letters in keep; b's tensor is consumed */
static int ein_contract(ein_term *a, ein_term *b, const char *keep, int nkeep, eng_error *err)
{
    char batch[TENSOR_MAXDIM], ao[TENSOR_MAXDIM], bo[TENSOR_MAXDIM], con[TENSOR_MAXDIM];
    int nb = 0, na = 0, nbo = 0, nc = 0;
    int64_t B = 1, M = 1, N = 1, K = 1;
    for (int i = 0; i < a->n; i++) {
        char c = a->lab[i];
        if (has(b->lab, b->n, c)) {
            if (has(keep, nkeep, c))
                batch[nb++] = c, B *= ein_size(a, c);
            else
                con[nc++] = c, K *= ein_size(a, c);
        } else
            ao[na++] = c, M *= ein_size(a, c);
    }
    for (int i = 0; i < b->n; i++)
        if (!has(a->lab, a->n, b->lab[i]))
            bo[nbo++] = b->lab[i], N *= ein_size(b, b->lab[i]);
    if (nb + na + nbo > TENSOR_MAXDIM) {
        eng_fail(err, ERR_SHAPE, "einsum: the result would have %d dimensions; at most %d are supported",
                 nb + na + nbo, TENSOR_MAXDIM);
        return -1;
    }
    char ord[TENSOR_MAXDIM], lab[TENSOR_MAXDIM];
    int64_t shape[TENSOR_MAXDIM];
    int n = 0;
    memcpy(ord, batch, (size_t)nb);
    memcpy(ord + nb, ao, (size_t)na);
    memcpy(ord + nb + na, con, (size_t)nc);
    tensor *ap = ein_permute(a, ord, a->n, err), *bp = NULL, *a3 = NULL, *b3 = NULL, *m = NULL, *out = NULL;
    memcpy(ord + nb, con, (size_t)nc);
    memcpy(ord + nb + nc, bo, (size_t)nbo);
    if (ap)
        bp = ein_permute(b, ord, b->n, err);
    int64_t as[3] = {B, M, K}, bs[3] = {B, K, N};
    if (bp && (a3 = tensor_reshape(ap, 3, as, err)) && (b3 = tensor_reshape(bp, 3, bs, err))) {
        if (tensor_dtype_is_float(a3->dtype) && tensor_dtype_is_float(b3->dtype))
            m = tensor_matmul(a3, b3, err);
        else { /* integers: a broadcast product summed over K ([B, M, K, 1] * [B, 1, K, N]) */
            tensor *au = tensor_unsqueeze(a3, 3, err), *bu = au ? tensor_unsqueeze(b3, 1, err) : NULL;
            tensor *p = bu ? tensor_binary(OP_MUL, au, bu, err) : NULL;
            m = p ? tensor_reduce(OP_SUM, p, 2, 0, err) : NULL;
            tensor_decref(au);
            tensor_decref(bu);
            tensor_decref(p);
        }
    }
    if (m) {
        for (int i = 0; i < nb; i++)
            lab[n] = batch[i], shape[n++] = ein_size(a, batch[i]);
        for (int i = 0; i < na; i++)
            lab[n] = ao[i], shape[n++] = ein_size(a, ao[i]);
        for (int i = 0; i < nbo; i++)
            lab[n] = bo[i], shape[n++] = ein_size(b, bo[i]);
        out = tensor_reshape(m, n, shape, err);
    }
    tensor_decref(ap);
    tensor_decref(bp);
    tensor_decref(a3);
    tensor_decref(b3);
    tensor_decref(m);
    tensor_decref(b->t);
    b->t = NULL;
    if (!out)
        return -1;
    tensor_decref(a->t);
    a->t = out;
    memcpy(a->lab, lab, (size_t)n);
    a->n = n;
    return 0;
}

static int ein_letter(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* The "..." of each operand that has one (its letters' position ell_at[i]) given the
 * labels of the dimensions no letter names: EIN_ELL(e) for position e of the broadcast
 * shape, aligned on the right; *nell its length. A size-1 dimension where another
 * operand's is larger gets a label of its own (summed away: the contraction
 * broadcasts). -1 with err when the shapes do not broadcast. */
static int ein_ellipsis(const char *spec, tensor *const *ops, int n, ein_term *terms, const int *ell_at, int *nell,
                        eng_error *err)
{
    int cnt[EIN_MAXOPS], priv = 0;
    int64_t size[TENSOR_MAXDIM];
    *nell = 0;
    for (int i = 0; i < n; i++) {
        cnt[i] = ell_at[i] < 0 ? 0 : ops[i]->ndim - terms[i].n;
        if (cnt[i] > *nell)
            *nell = cnt[i];
    }
    for (int e = 0; e < *nell; e++)
        size[e] = 1;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < cnt[i]; j++) {
            int e = *nell - cnt[i] + j;
            int64_t d = ops[i]->shape[ell_at[i] + j];
            if (d != 1 && size[e] != 1 && d != size[e]) {
                char b1[TENSOR_SHAPE_BUF], b2[TENSOR_SHAPE_BUF];
                int o = 0; /* the operand that set size[e] */
                while (o < i && !(cnt[o] >= *nell - e && ops[o]->shape[ell_at[o] + e - (*nell - cnt[o])] == size[e]))
                    o++;
                return eng_fail(err, ERR_SHAPE, "einsum: '%s': the '...' dimensions do not broadcast: operand %d "
                                "has shape %s, operand %d %s", spec, o + 1,
                                tensor_shape_str(ops[o]->ndim, ops[o]->shape, b1, sizeof b1), i + 1,
                                tensor_shape_str(ops[i]->ndim, ops[i]->shape, b2, sizeof b2)), -1;
            }
            if (d != 1)
                size[e] = d;
        }
    for (int i = 0; i < n; i++) {
        if (ell_at[i] < 0)
            continue;
        ein_term *t = &terms[i];
        memmove(t->lab + ell_at[i] + cnt[i], t->lab + ell_at[i], (size_t)(t->n - ell_at[i]));
        for (int j = 0; j < cnt[i]; j++) {
            int e = *nell - cnt[i] + j;
            t->lab[ell_at[i] + j] = ops[i]->shape[ell_at[i] + j] != size[e] ? EIN_PRIV(priv++) : EIN_ELL(e);
        }
        t->n += cnt[i];
    }
    return 0;
}

/* parses spec into the operands' letters and the output's; -1 with err naming spec */
static int ein_parse(const char *spec, tensor *const *ops, int n, ein_term *terms, char *outl, int *nout,
                     eng_error *err)
{
    char b1[TENSOR_SHAPE_BUF];
    const char *arrow = strstr(spec, "->");
    int k = 0, explicit_out = arrow != NULL;
    int ell_at[EIN_MAXOPS]; /* where an operand's "..." is among its letters, -1 none */
    for (int i = 0; i < n; i++)
        terms[i].n = 0, ell_at[i] = -1;
    for (const char *p = spec; *p && (!arrow || p < arrow); p++) {
        if (*p == ' ')
            continue;
        if (*p == '.') {
            if (strncmp(p, "...", 3) != 0)
                return eng_fail(err, ERR_VALUE, "einsum: '%s': a '.' that is not part of '...'", spec), -1;
            if (ell_at[k] >= 0)
                return eng_fail(err, ERR_VALUE, "einsum: '%s': operand %d has '...' twice", spec, k + 1), -1;
            ell_at[k] = terms[k].n;
            p += 2;
            continue;
        }
        if (*p == ',') {
            if (++k >= n)
                return eng_fail(err, ERR_VALUE, "einsum: '%s' names more operands than the %d given", spec, n), -1;
            continue;
        }
        if (!ein_letter(*p))
            return eng_fail(err, ERR_VALUE, "einsum: '%s': unexpected character '%c' (letters, ',' and '->' only)",
                            spec, *p), -1;
        ein_term *t = &terms[k];
        if (t->n >= TENSOR_MAXDIM)
            return eng_fail(err, ERR_VALUE, "einsum: '%s': operand %d has more than %d letters", spec, k + 1,
                            TENSOR_MAXDIM), -1;
        if (has(t->lab, t->n, *p))
            return eng_fail(err, ERR_VALUE, "einsum: '%s': operand %d repeats '%c' (a trace or diagonal), which is "
                            "not supported; take diag(x) first", spec, k + 1, *p), -1;
        t->lab[t->n++] = *p;
    }
    if (k != n - 1)
        return eng_fail(err, ERR_VALUE, "einsum: '%s' names %d operand%s but %d %s given", spec, k + 1,
                        k ? "s" : "", n, n == 1 ? "was" : "were"), -1;
    for (int i = 0; i < n; i++)
        if (ell_at[i] < 0 ? terms[i].n != ops[i]->ndim : terms[i].n > ops[i]->ndim)
            return eng_fail(err, ERR_SHAPE, "einsum: '%s': operand %d has %d letter%s%s for a %d-d tensor of shape %s",
                            spec, i + 1, terms[i].n, terms[i].n == 1 ? "" : "s", ell_at[i] < 0 ? "" : " and '...'",
                            ops[i]->ndim, tensor_shape_str(ops[i]->ndim, ops[i]->shape, b1, sizeof b1)), -1;
    int nell = 0; /* the dimensions "..." stands for, broadcast */
    if (ein_ellipsis(spec, ops, n, terms, ell_at, &nell, err) < 0)
        return -1;
    /* one size per letter */
    for (int i = 0; i < n; i++)
        for (int d = 0; d < terms[i].n; d++)
            for (int j = 0; j < i; j++)
                for (int e = 0; e < terms[j].n; e++)
                    if (terms[j].lab[e] == terms[i].lab[d] && ops[j]->shape[e] != ops[i]->shape[d])
                        return eng_fail(err, ERR_SHAPE, "einsum: '%s': '%c' is %lld in operand %d but %lld in "
                                        "operand %d", spec, terms[i].lab[d], (long long)ops[j]->shape[e], j + 1,
                                        (long long)ops[i]->shape[d], i + 1), -1;
    *nout = 0;
    if (explicit_out) {
        int out_ell = 0;
        for (const char *p = arrow + 2; *p; p++) {
            if (*p == ' ')
                continue;
            if (*p == '.') {
                if (strncmp(p, "...", 3) != 0 || out_ell)
                    return eng_fail(err, ERR_VALUE, "einsum: '%s': the output's '.' must be one '...'", spec), -1;
                if (*nout + nell > TENSOR_MAXDIM)
                    return eng_fail(err, ERR_VALUE, "einsum: '%s': more than %d output dimensions", spec,
                                    TENSOR_MAXDIM), -1;
                for (int e = 0; e < nell; e++)
                    outl[(*nout)++] = EIN_ELL(e);
                out_ell = 1;
                p += 2;
                continue;
            }
            if (!ein_letter(*p))
                return eng_fail(err, ERR_VALUE, "einsum: '%s': unexpected character '%c' in the output", spec, *p), -1;
            if (has(outl, *nout, *p))
                return eng_fail(err, ERR_VALUE, "einsum: '%s': the output repeats '%c'", spec, *p), -1;
            int seen = 0;
            for (int i = 0; i < n && !seen; i++)
                seen = has(terms[i].lab, terms[i].n, *p);
            if (!seen)
                return eng_fail(err, ERR_VALUE, "einsum: '%s': output letter '%c' is in no operand", spec, *p), -1;
            if (*nout >= TENSOR_MAXDIM)
                return eng_fail(err, ERR_VALUE, "einsum: '%s': more than %d output letters", spec, TENSOR_MAXDIM), -1;
            outl[(*nout)++] = *p;
        }
        if (nell && !out_ell)
            return eng_fail(err, ERR_VALUE, "einsum: '%s': '...' stands for %d dimension%s of the operands but the "
                            "output has no '...' (write it in the output, e.g. '->...%s')", spec, nell,
                            nell == 1 ? "" : "s", arrow + 2), -1;
    } else { /* implicit: the "..." dimensions, then the letters seen once, sorted */
        for (int e = 0; e < nell; e++)
            outl[(*nout)++] = EIN_ELL(e);
        for (int c = 'A'; c <= 'z'; c++) {
            int count = 0;
            for (int i = 0; i < n; i++)
                count += has(terms[i].lab, terms[i].n, (char)c);
            if (count == 1 && ein_letter((char)c) && *nout < TENSOR_MAXDIM)
                outl[(*nout)++] = (char)c;
        }
    }
    return 0;
}

tensor *tensor_einsum(const char *spec, tensor *const *ops, int n, eng_error *err)
{
    if (n < 1 || n > EIN_MAXOPS) {
        eng_fail(err, ERR_VALUE, "einsum: '%s' with %d operands: one to %d are supported", spec, n, EIN_MAXOPS);
        return NULL;
    }
    ein_term terms[EIN_MAXOPS];
    char outl[TENSOR_MAXDIM];
    int nout = 0;
    memset(terms, 0, sizeof terms);
    if (ein_parse(spec, ops, n, terms, outl, &nout, err) < 0)
        return NULL;
    tensor *out = NULL;
    for (int i = 0; i < n; i++) {
        terms[i].t = ops[i];
        tensor_incref(ops[i]);
    }
    /* each operand sums the letters that neither the output nor another operand has */
    for (int i = 0; i < n; i++) {
        char keep[TENSOR_MAXDIM * (EIN_MAXOPS + 1)];
        int nk = 0;
        memcpy(keep, outl, (size_t)nout);
        nk = nout;
        for (int j = 0; j < n; j++)
            if (j != i) {
                memcpy(keep + nk, terms[j].lab, (size_t)terms[j].n);
                nk += terms[j].n;
            }
        if (ein_sum_unneeded(&terms[i], keep, nk, err) < 0)
            goto done;
    }
    for (int i = 1; i < n; i++) {
        char keep[TENSOR_MAXDIM * (EIN_MAXOPS + 1)];
        int nk = nout;
        memcpy(keep, outl, (size_t)nout);
        for (int j = i + 1; j < n; j++) {
            memcpy(keep + nk, terms[j].lab, (size_t)terms[j].n);
            nk += terms[j].n;
        }
        if (ein_contract(&terms[0], &terms[i], keep, nk, err) < 0)
            goto done;
    }
    if (ein_sum_unneeded(&terms[0], outl, nout, err) < 0)
        goto done;
    out = ein_permute(&terms[0], outl, nout, err);
done:
    for (int i = 0; i < n; i++)
        tensor_decref(terms[i].t);
    return out;
}
