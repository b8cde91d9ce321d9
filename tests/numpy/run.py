#!/usr/bin/env python3
"""Cross-checks Kiln's tensor operations against NumPy.

Usage: run.py path/to/kiln   (make test-numpy)

NumPy makes random inputs (seeded, random shapes) and saves them as .npy; one Kiln
script (one cell per check, so a failing check cannot hide the others) loads them,
computes every op and saves each result with save_npy; NumPy then compares each
result with its own computation: shape, dtype, and values within the tolerance the
check states. Covered: every elementwise op (f32 and f64, integer and mixed dtypes,
scalars mixed in), NumPy broadcasting on random shape pairs, every reduction along
every dimension with and without keepdim, non-contiguous operands (transposes,
stepped slices), empty tensors, matmul in its NumPy forms, the shape built-ins (each
built-in op of engine/tensor/ops.def must appear in some check, or the run fails),
.npy round trips both ways for every dtype (C and Fortran order, format versions 1-3,
big-endian), and load_idx on the real Fashion-MNIST files compared with a gzip+NumPy
reading.

Tolerances: f32 elementwise results within 4 ulp-ish (rtol 2e-6); f32 reductions
against a float64 reference within 1e-6 of the reduced magnitude (Kiln accumulates in
double); f64 within 1e-12 relative; integers, bools, shapes, indices and files exactly.
"""
import gzip
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

KILN = sys.argv[1] if len(sys.argv) > 1 else "build/kiln"
FASHION = "/usr/share/datasets/fashion-mnist"

rng = np.random.default_rng(20261124)
tmp = tempfile.mkdtemp(prefix="kiln_numpy_")
setup = []    # statements of the first cell (load inputs, make views)
checks = []   # dicts: name, code, expected, rtol, atol, dtype
NP_DTYPES = {"f32": np.float32, "f64": np.float64, "i32": np.int32, "i64": np.int64,
             "u8": np.uint8, "bool": np.bool_, "f16": np.float16}


def path(name):
    return os.path.join(tmp, name)


def inp(name, arr):
    """Saves arr for Kiln and declares `tensor name` in the setup cell."""
    np.save(path(name + ".npy"), arr)
    setup.append(f'tensor {name} = load_npy("{path(name + ".npy")}");')
    return arr


def view(name, code, arr):
    """A Kiln view (code) whose NumPy twin is arr."""
    setup.append(f"tensor {name} = {code};")
    return arr


def check(name, code, expected, rtol=0.0, atol=0.0, dtype=None):
    """Kiln evaluates code; its result must match expected."""
    expected = np.asarray(expected)
    checks.append(dict(name=name, code=code, expected=expected, rtol=rtol, atol=atol,
                       dtype=np.dtype(dtype) if dtype is not None else expected.dtype))


def rand_shape(ndim=None):
    ndim = int(rng.integers(1, 5)) if ndim is None else ndim
    return tuple(int(s) for s in rng.integers(1, 7, size=ndim))


def broadcast_partner(shape):
    """A random shape that broadcasts with shape (a suffix, some dims set to 1)."""
    k = int(rng.integers(1, len(shape) + 1))
    tail = list(shape[-k:])
    for i in range(len(tail)):
        if rng.random() < 0.4:
            tail[i] = 1
    if rng.random() < 0.3:
        tail = [1] + tail if len(tail) < 6 else tail
    return tuple(tail)


F32 = dict(rtol=2e-6, atol=1e-7)
F64 = dict(rtol=1e-12, atol=1e-300)


def gelu(x):
    erf = np.vectorize(math.erf)
    return (0.5 * x.astype(np.float64) * (1 + erf(x.astype(np.float64) / math.sqrt(2)))).astype(x.dtype)


def sigmoid(x):
    return (1 / (1 + np.exp(-x.astype(np.float64)))).astype(x.dtype)


def f64(fn):
    """fn computed in float64, rounded to x's dtype: the reference of a float op."""
    return lambda x, *a: fn(x.astype(np.float64), *a).astype(x.dtype)


def softplus(x):
    return np.logaddexp(0, x)


def elu(x, alpha=1.0):
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))


# ---- elementwise, unary -------------------------------------------------------------
UNARY = [
    ("abs", np.abs, None), ("exp", np.exp, None), ("log", np.log, "pos"),
    ("sqrt", np.sqrt, "pos"), ("tanh", np.tanh, None), ("sigmoid", sigmoid, None),
    ("relu", lambda x: np.maximum(x, 0).astype(x.dtype), None), ("gelu", gelu, None),
    ("sin", np.sin, None), ("cos", np.cos, None), ("floor", np.floor, None),
    ("ceil", np.ceil, None), ("round", np.round, None),
    ("log1p", np.log1p, "pos"), ("expm1", np.expm1, None), ("sign", np.sign, None),
    # composites (engine/tensor/ops.def OP_COMPOSITE): "chain", a few roundings in a chain of ops
    ("softplus", f64(softplus), None, "chain"),
    ("silu", f64(lambda x: x / (1 + np.exp(-x))), None, "chain"),
    ("mish", f64(lambda x: x * np.tanh(softplus(x))), None, "chain"),
    ("logsigmoid", f64(lambda x: -softplus(-x)), None, "chain"),
    ("hardtanh", f64(lambda x: np.clip(x, -1, 1)), None, "chain"),
    ("rsqrt", f64(lambda x: 1 / np.sqrt(x)), "pos", "chain"),
    ("leaky_relu", f64(lambda x: np.where(x > 0, x, 0.01 * x)), None, "chain"),
    ("elu", f64(elu), None, "chain"),
]
for dt, tol in (("f32", F32), ("f64", F64)):
    x = inp(f"u_{dt}", (rng.standard_normal(rand_shape(3)) * 3).astype(NP_DTYPES[dt]))
    xp = inp(f"up_{dt}", (np.abs(rng.standard_normal(rand_shape(2))) * 5 + 1e-3).astype(NP_DTYPES[dt]))
    for fname, fn, dom, *chain in UNARY:
        src, arr = (f"up_{dt}", xp) if dom == "pos" else (f"u_{dt}", x)
        t = dict(tol)
        if (fname == "gelu" or chain) and dt == "f32":
            t = dict(rtol=4e-6, atol=1e-7)
        if chain and dt == "f64":
            t = dict(rtol=1e-12, atol=1e-15)
        check(f"{fname} {dt}", f"{fname}({src})", fn(arr), **t)
    f32c = dict(rtol=4e-6, atol=1e-7) if dt == "f32" else dict(rtol=1e-12, atol=1e-15)
    check(f"leaky_relu slope {dt}", f"leaky_relu(u_{dt}, 0.2)", f64(lambda v: np.where(v > 0, v, 0.2 * v))(x), **f32c)
    check(f"elu alpha {dt}", f"elu(u_{dt}, 1.5)", f64(lambda v: elu(v, 1.5))(x), **f32c)
    check(f"neg {dt}", f"-u_{dt}", -x, **tol)
    check(f"clamp {dt}", f"clamp(u_{dt}, -1.5, 2.0)", np.clip(x, -1.5, 2.0), **tol)
    # a non-contiguous input: a transpose and a stepped slice
    check(f"exp transposed {dt}", f"exp(transpose(u_{dt}, 0, 2))", np.exp(x.transpose(2, 1, 0)), **tol)
    check(f"tanh stepped {dt}", f"tanh(u_{dt}[::2, 1:, ::3])", np.tanh(x[::2, 1:, ::3]), **tol)
xi = inp("u_i32", rng.integers(-50, 50, size=rand_shape(2)).astype(np.int32))
check("abs i32", "abs(u_i32)", np.abs(xi))
check("neg i32", "-u_i32", -xi)
check("relu i32", "relu(u_i32)", np.maximum(xi, 0))
check("sign i32", "sign(u_i32)", np.sign(xi))
check("clamp i32 huge bounds saturate", "clamp(u_i32, -1e300, 1e300)", xi)
check("elu of i32 gives f32", "elu(u_i32)", elu(xi.astype(np.float64)).astype(np.float32), **F32)
check("softplus of i32 gives f32", "softplus(u_i32)", softplus(xi.astype(np.float64)).astype(np.float32), **F32)
# stable forms: no overflow for large |x|, full precision for tiny x
huge = inp("huge", np.array([-1000, -100, -30, -1e-30, 0, 1e-30, 30, 100, 1000], dtype=np.float64))
check("softplus stable", "softplus(huge)", softplus(huge), **F64)
check("logsigmoid stable", "logsigmoid(huge)", -softplus(-huge), **F64)
check("log1p tiny", "log1p(huge * 1e-20)", np.log1p(huge * 1e-20), **F64)
check("expm1 tiny", "expm1(huge * 1e-20)", np.expm1(huge * 1e-20), **F64)
check("clamp i32", "clamp(u_i32, -10, 10)", np.clip(xi, -10, 10))
check("exp of i32 gives f32", "exp(u_i32 / 10)", np.exp((np.trunc(xi / 10)).astype(np.float32)), **F32)
check("sqrt of i32 gives f32", "sqrt(abs(u_i32))", np.sqrt(np.abs(xi).astype(np.float32)), **F32)
# a large input crosses the parallel threshold and the fast contiguous paths
big = inp("big", rng.standard_normal(300007).astype(np.float32))
check("exp big", "exp(big)", np.exp(big), **F32)
check("sigmoid big", "sigmoid(big)", sigmoid(big), **F32)
check("exp big stepped", "exp(big[1::2])", np.exp(big[1::2]), **F32)
edge = inp("edge", np.array([-104, -103, -90, -87.5, -20, -1e-8, 0, 1e-8, 20, 88, 88.72, 88.73, 100,
                             np.inf, -np.inf, np.nan], dtype=np.float32))
with np.errstate(all="ignore"):
    check("exp edges", "exp(edge)", np.exp(edge), rtol=2e-6, atol=2e-45)

# ---- elementwise, binary with broadcasting ------------------------------------------
BINARY = [("+", np.add), ("-", np.subtract), ("*", np.multiply), ("/", np.divide)]
for k in range(6):
    sa = rand_shape()
    sb = broadcast_partner(sa)
    if k % 2:
        sa, sb = sb, sa
    dt = "f32" if k < 4 else "f64"
    tol = F32 if dt == "f32" else F64
    a = inp(f"ba{k}", rng.standard_normal(sa).astype(NP_DTYPES[dt]))
    b = inp(f"bb{k}", (rng.standard_normal(sb) + 3).astype(NP_DTYPES[dt]))
    for op, fn in BINARY:
        check(f"{sa} {op} {sb} {dt}", f"ba{k} {op} bb{k}", fn(a, b), **tol)
    check(f"pow {sa} {sb}", f"pow(abs(ba{k}), bb{k})", np.power(np.abs(a), b), **tol)
    check(f"maximum {sa} {sb}", f"maximum(ba{k}, bb{k} - 3)", np.maximum(a, b - NP_DTYPES[dt](3)), **tol)
    check(f"minimum {sa} {sb}", f"minimum(ba{k}, bb{k} - 3)", np.minimum(a, b - NP_DTYPES[dt](3)), **tol)
    for op, fn in (("<", np.less), ("<=", np.less_equal), (">", np.greater), ("==", np.equal), ("!=", np.not_equal)):
        check(f"{sa} {op} {sb}", f"ba{k} {op} (bb{k} - 3)", fn(a, b - NP_DTYPES[dt](3)))
    check(f"where {sa} {sb}", f"where(ba{k} > 0, ba{k}, bb{k})", np.where(a > 0, a, b), **tol)
# non-contiguous operands in a binary op
m = inp("m", rng.standard_normal((6, 8)).astype(np.float32))
n_ = inp("n", rng.standard_normal((8, 6)).astype(np.float32))
check("transpose + contiguous", "m.T + n", m.T + n_, **F32)
check("stepped * transposed", "m[::2, 1::3] * n.T[1::2, ::3]", m[::2, 1::3] * n_.T[1::2, ::3], **F32)
check("row broadcast of a view", "m - m[0]", m - m[0], **F32)
check("column broadcast with keepdim", "m - max(m, 1, true)", m - m.max(1, keepdims=True), **F32)
# scalars mix in; dtypes promote
check("f32 * 2.0", "m * 2.0", m * np.float32(2), **F32)
check("2 - f32", "2 - m", np.float32(2) - m, **F32)
check("pow(x, 2.0)", "pow(m, 2.0)", np.power(m, np.float32(2)), **F32)
check("maximum(x, 0)", "maximum(m, 0)", np.maximum(m, np.float32(0)), **F32)
check("f32 > 0.5", "m > 0.5", m > 0.5)
ia = inp("ia", rng.integers(-1000, 1000, size=(5, 7)).astype(np.int32))
ib = inp("ib", rng.integers(1, 50, size=(7,)).astype(np.int32) * rng.choice([-1, 1], size=7).astype(np.int32))
il = inp("il", rng.integers(-10**12, 10**12, size=(5, 7)).astype(np.int64))
bu8 = inp("bu8", rng.integers(0, 256, size=(5, 7)).astype(np.uint8))
check("i32 + i32", "ia + ib", ia + ib)
check("i32 * i32", "ia * ib", ia * ib)
check("i32 / i32 truncates", "ia / ib", np.trunc(ia / ib).astype(np.int32))
check("i32 % i32 as C", "ia % ib", np.fmod(ia, ib))
check("i64 - i32", "il - ia", il - ia.astype(np.int64))
check("i64 large add exact", "il + il", il + il)
check("u8 + u8 wraps", "bu8 + bu8", (bu8 + bu8).astype(np.uint8))
check("u8 + i32 promotes", "bu8 + ia", bu8.astype(np.int32) + ia)
check("i32 + f32 promotes", "ia + m[:5, :7]", ia.astype(np.float32) + m[:5, :7], **F32)
check("i32 * 0.5 is f32", "ia * 0.5", ia.astype(np.float32) * np.float32(0.5), **F32)
check("i64 + f64", "il + to(m[:5, :7], f64)", il.astype(np.float64) + m[:5, :7].astype(np.float64), **F64)
check("i32 < f32", "ia < m[:5, :7] * 1000", ia < m[:5, :7] * np.float32(1000))
check("bool + bool counts", "(ia > 0) + (ib > 0)", (ia > 0).astype(np.int64) + (ib > 0).astype(np.int64))
check("pow i32", "pow(ia % 5, 3)", np.power(np.fmod(ia, 5), 3).astype(np.int32))
check("maximum i64 i32", "maximum(il, ia)", np.maximum(il, ia.astype(np.int64)))
check("where mixed dtypes", "where(ia > 0, ia, 0.5)", np.where(ia > 0, ia.astype(np.float32), np.float32(0.5)))
check("to i32 truncates", "to(m * 10, i32)", (m * np.float32(10)).astype(np.int32))
check("to u8 from i32", "to(abs(ia) % 256, u8)", (np.abs(ia) % 256).astype(np.uint8))
check("to f16", "to(m, f16)", m.astype(np.float16))

# ---- reductions ----------------------------------------------------------------------
RED = ["sum", "mean", "max", "min", "argmax", "argmin", "std", "var", "norm"]


def ref_reduce(op, x, axis, keep):
    x64 = x.astype(np.float64)
    kw = dict(axis=axis, keepdims=keep)
    if op == "sum":
        r = np.sum(x64, **kw)
        return r.astype(x.dtype if x.dtype.kind == "f" else np.int64)
    if op in ("max", "min"):
        return getattr(np, op)(x, **kw)
    if op in ("argmax", "argmin"):
        if axis is None:
            r = getattr(np, op)(x)
            return np.array(r, dtype=np.int64).reshape((1,) * x.ndim if keep else ())
        return getattr(np, op)(x, axis=axis, keepdims=keep).astype(np.int64)
    out = np.float32 if x.dtype.kind != "f" else x.dtype
    if op == "mean":
        return np.mean(x64, **kw).astype(out)
    if op == "std":
        return np.std(x64, **kw).astype(out)
    if op == "var":
        return np.var(x64, **kw).astype(out)
    return np.sqrt(np.sum(x64 * x64, **kw)).astype(out)


def red_tol(op, x, axis):
    if op in ("max", "min", "argmax", "argmin") or x.dtype.kind != "f":
        if op in ("mean", "std", "var", "norm"):
            return dict(rtol=1e-6, atol=1e-6)
        return dict()
    n = x.size if axis is None else x.shape[axis]
    scale = float(np.max(np.abs(x))) if x.size else 1.0
    if x.dtype == np.float64:
        return dict(rtol=1e-12, atol=1e-13 * n * scale * scale)
    return dict(rtol=2e-6, atol=1e-6 * max(n, 1) * scale * (scale if op in ("var", "norm") else 1))


r3 = inp("r3", rng.standard_normal((5, 7, 9)).astype(np.float32))
r4 = inp("r4", rng.standard_normal((3, 4, 2, 5)).astype(np.float64))
ri = inp("ri", rng.integers(-100, 100, size=(6, 5)).astype(np.int32))
r3t = view("r3t", "transpose(r3, 0, 2)", r3.transpose(2, 1, 0))
r3s = view("r3s", "r3[1::2, ::3, 2:]", r3[1::2, ::3, 2:])
rbig = inp("rbig", (rng.standard_normal((257, 1031)) + 0.5).astype(np.float32))
for name, x in (("r3", r3), ("r4", r4), ("ri", ri), ("r3t", r3t), ("r3s", r3s), ("rbig", rbig)):
    for op in RED:
        check(f"{op}({name})", f"{op}({name})", ref_reduce(op, x, None, False), **red_tol(op, x, None))
        for d in range(x.ndim):
            for keep in (False, True):
                kv = "true" if keep else "false"
                check(f"{op}({name}, {d}, {kv})", f"{op}({name}, {d}, {kv})", ref_reduce(op, x, d, keep),
                      **red_tol(op, x, d))
    check(f"sum({name}, -1)", f"sum({name}, -1)", ref_reduce("sum", x, x.ndim - 1, False),
          **red_tol("sum", x, x.ndim - 1))
# a long f32 sum, and a row softmax as a user writes it
lng = inp("lng", (rng.random(2_000_003) * 2).astype(np.float32))
check("sum of 2e6 f32", "sum(lng)", np.float32(np.sum(lng.astype(np.float64))), rtol=1e-7)
check("mean of 2e6 f32", "mean(lng)", np.float32(np.mean(lng.astype(np.float64))), rtol=1e-7)
check("max of 2e6 f32", "max(lng)", lng.max())
check("argmax of 2e6 f32", "argmax(lng)", np.int64(lng.argmax()))
sm = inp("sm", rng.standard_normal((64, 1000)).astype(np.float32))
e_ = np.exp(sm - sm.max(1, keepdims=True))
check("row softmax", "exp(sm - max(sm, 1, true)) / sum(exp(sm - max(sm, 1, true)), 1, true)",
      e_ / e_.sum(1, keepdims=True), rtol=1e-5, atol=1e-8)
nanx = inp("nanx", np.array([[1, np.nan, 3], [4, 5, 6]], dtype=np.float32))
check("max propagates NaN", "max(nanx, 1)", np.max(nanx, 1))
check("argmax finds NaN", "argmax(nanx, 1)", np.argmax(nanx, 1).astype(np.int64))

# ---- empty tensors -------------------------------------------------------------------
check("empty + broadcast", "zeros(0, 3) + ones(3)", np.zeros((0, 3), np.float32))
check("sum of empty dim", "sum(zeros(0, 3), 0)", np.zeros(3, np.float32))
check("sum of empty", "sum(zeros(0))", np.float32(0))
with np.errstate(all="ignore"):
    check("mean of empty is nan", "mean(zeros(0))", np.float32(np.nan))
check("reshape empty", "reshape(zeros(2, 0), 0, 5)", np.zeros((0, 5), np.float32))
check("cat with empty", "cat(zeros(0, 3), ones(2, 3))", np.ones((2, 3), np.float32))
check("matmul empty inner", "zeros(3, 0) @ zeros(0, 4)", np.zeros((3, 4), np.float32))
check("empty slice", "m[3:3]", m[3:3])

# ---- matmul --------------------------------------------------------------------------
A = inp("A", rng.standard_normal((17, 33)).astype(np.float32))
B = inp("B", rng.standard_normal((33, 9)).astype(np.float32))
Bt = inp("Bt", rng.standard_normal((9, 33)).astype(np.float32))
A3 = inp("A3", rng.standard_normal((4, 17, 33)).astype(np.float32))
B3 = inp("B3", rng.standard_normal((2, 1, 33, 9)).astype(np.float64))
v33 = inp("v33", rng.standard_normal(33).astype(np.float32))
MI = inp("MI", rng.integers(-9, 9, size=(5, 6)).astype(np.int32))
MT = dict(rtol=1e-5, atol=1e-5)
check("matmul 2d", "A @ B", A @ B, **MT)
check("matmul b transposed", "A @ Bt.T", A @ Bt.T, **MT)
check("matmul a transposed", "A.T.T @ B", A @ B, **MT)
check("matmul both transposed", "Bt @ A.T", Bt @ A.T, **MT)
check("matmul strided (copy)", "A[::2, ::3] @ B[::3]", A[::2, ::3] @ B[::3], **MT)
check("matmul batched @ 2d", "A3 @ B", A3 @ B, **MT)
check("matmul batch broadcast f64", "to(A3, f64) @ B3", A3.astype(np.float64) @ B3, rtol=1e-12, atol=1e-12)
check("matmul 2d @ 1d", "A @ v33", A @ v33, **MT)
check("matmul 1d @ 2d", "v33 @ B", v33 @ B, **MT)
check("matmul 1d @ 1d", "v33 @ v33", np.float32(v33 @ v33), **MT)
check("matmul builtin", "matmul(A3, B)", A3 @ B, **MT)
check("matmul i32", "MI @ MI.T", MI @ MI.T)
check("dot", "dot(v33, v33)", np.float32(np.dot(v33, v33)), **MT)
check("outer", "outer(v33, v33[:5])", np.outer(v33, v33[:5]), **F32)

# ---- shape built-ins -----------------------------------------------------------------
S = inp("S", rng.standard_normal((2, 3, 4)).astype(np.float32))
check("reshape -1", "reshape(S, 4, -1)", S.reshape(4, -1))
check("reshape tuple", "reshape(S, shape(S.T))", S.reshape(S.T.shape))
check("reshape of transpose", "reshape(S.T, 6, 4)", S.T.reshape(6, 4))
check("flatten", "flatten(S[:, 1:])", S[:, 1:].flatten())
check("transpose 2d", "transpose(S[0])", S[0].T)
check("transpose dims", "transpose(S, 0, 2)", S.transpose(2, 1, 0))
check("permute", "permute(S, 1, 2, 0)", S.transpose(1, 2, 0))
check("squeeze", "squeeze(reshape(S, 1, 2, 1, 12))", S.reshape(1, 2, 1, 12).squeeze())
check("squeeze dim", "squeeze(reshape(S, 1, 2, 1, 12), 2)", S.reshape(1, 2, 1, 12).squeeze(2))
check("unsqueeze", "unsqueeze(S, 1)", S[:, None])
check("unsqueeze -1", "unsqueeze(S, -1)", S[..., None])
check("cat dim 0", "cat(S, S[:1])", np.concatenate([S, S[:1]]))
check("cat dim 2 views", "cat(S, S[:, :, ::2], 2)", np.concatenate([S, S[:, :, ::2]], 2))
check("cat dim -1", "cat(S, S, -1)", np.concatenate([S, S], -1))
check("stack", "stack(S, S, S)", np.stack([S, S, S]))
check("stack dim 3", "stack(S, S.T.T, 3)", np.stack([S, S], 3))
check("clone of view", "clone(S.T)", S.T.copy())
check("contiguous", "contiguous(S[:, ::2])", S[:, ::2])
gi = inp("gi", np.array([[1, 0], [1, 1]], dtype=np.int64))
check("gather rows", "S[gi]", S[gi])
check("gather i32 negative", "S[to(gi, i32) - 2]", S[gi.astype(np.int32) - 2])
check("gather of transposed", "S.T[gi]", S.T[gi])

# ---- indexing: masks, None, ..., integer tensors in any dimension, assignment --------
XI = inp("XI", rng.standard_normal((4, 5, 6)).astype(np.float32))
XL = inp("XL", rng.integers(-50, 50, size=(7, 3)).astype(np.int64))
m2 = inp("m2", rng.random((4, 5)) < 0.5)
m1 = inp("m1", rng.random(5) < 0.5)
i1 = inp("i1", rng.integers(-5, 5, size=3).astype(np.int64))
i2 = inp("i2", rng.integers(0, 6, size=(2, 2)).astype(np.int32))
i3 = inp("i3", rng.integers(-4, 4, size=(3, 1)).astype(np.int64))
perm = inp("perm", rng.permutation(7).astype(np.int64)[:4])
dup = inp("dup", np.array([1, 1, 5, 1, 0], dtype=np.int64))
check("mask read", "XI[XI > 0.5]", XI[XI > 0.5])
check("mask over leading dims", "XI[m2]", XI[m2])
check("mask in dim 1", "XI[:, m1]", XI[:, m1])
check("mask after ellipsis", "XI[..., XI[0, 0] > 0]", XI[..., XI[0, 0] > 0])
check("None and ellipsis", "XI[None, 1, ..., None]", XI[None, 1, ..., None])
check("ellipsis int", "XI[..., 2]", XI[..., 2])
check("None between", "XI[1, None, :, ::2]", XI[1, None, :, ::2])
check("index dim 1", "XI[:, i1]", XI[:, i1])
check("index dim 2 i32 2-d", "XI[:, :, i2]", XI[:, :, i2])
check("index then slice", "XI[i1, 2:]", XI[i1, 2:])
check("index adjacent pair", "XI[:, i1, i3]", XI[:, i1, i3])
check("index separated pair", "XI[i1, :, i3]", XI[i1, :, i3])
check("int and index separated", "XI[0, :, i1]", XI[0, :, i1])
check("int and index adjacent", "XI[:, 0, i2]", XI[:, 0, i2])
check("mask and index", "XI[m1[:4], :, i1[:1]]", XI[m1[:4], :, i1[:1]])
check("index of i64", "XL[perm]", XL[perm])


def put(name, body, expected):
    """A function of the setup cell that assigns into a copy of its input."""
    setup.append(f"tensor {name}(tensor t) {{ tensor y = clone(t); {body} return y; }}")
    return expected


def np_put(a, fn):
    a = a.copy()
    fn(a)
    return a


vals = inp("vals", rng.standard_normal(int((XI > 0).sum())).astype(np.float32))
check("mask = scalar", "put_ms(XI)", put("put_ms", "y[y > 0] = 0.5;", np_put(XI, lambda a: a.__setitem__(a > 0, 0.5))))
check("mask = values", "put_mv(XI)",
      put("put_mv", "y[y > 0] = vals;", np_put(XI, lambda a: a.__setitem__(a > 0, vals))))
check("mask += row", "put_mr(XI)",
      put("put_mr", "y[m2] += XI[0, 0];", np_put(XI, lambda a: a.__setitem__(m2, a[m2] + XI[0, 0]))))
check("mask *= scalar int", "put_mi(XL)",
      put("put_mi", "y[y < 0] *= -3;", np_put(XL, lambda a: a.__setitem__(a < 0, a[a < 0] * -3))))
check("index = scalar dim 1", "put_is(XI)",
      put("put_is", "y[:, {4, 0, 2}] = -1;", np_put(XI, lambda a: a.__setitem__((slice(None), [4, 0, 2]), -1))))
check("index rows = tensor", "put_ir(XL)",
      put("put_ir", "y[perm] = XL[:4] * 10;", np_put(XL, lambda a: a.__setitem__(perm, XL[:4] * 10))))
check("index += repeated", "put_id(XL)",
      put("put_id", "y[dup] += 100;", np_put(XL, lambda a: a.__setitem__(dup, a[dup] + 100))))
check("index -= adjacent pair", "put_ip(XI)",
      put("put_ip", "y[:, i1, i3] -= 1;", np_put(XI, lambda a: a.__setitem__((slice(None), i1, i3), a[:, i1, i3] - 1))))
check("None ... assign", "put_ne(XI)",
      put("put_ne", "y[None, ..., 1] = 7;", np_put(XI, lambda a: a.__setitem__((None, Ellipsis, 1), 7))))

# ---- creation ------------------------------------------------------------------------
check("zeros i32", "zeros(3, 4, i32)", np.zeros((3, 4), np.int32))
check("ones tuple", "ones(shape(S))", np.ones(S.shape, np.float32))
check("full", "full(2, 3, 7.5)", np.full((2, 3), 7.5, np.float32))
check("full f64", "full(2, 3, 7, f64)", np.full((2, 3), 7, np.float64))
check("arange int", "arange(10)", np.arange(10))
check("arange float", "arange(0.5, 3.0, 0.25)", np.arange(0.5, 3.0, 0.25).astype(np.float32))
check("arange negative step", "arange(10, 0, -3)", np.arange(10, 0, -3))
check("linspace", "linspace(-1, 1, 11)", np.linspace(-1, 1, 11).astype(np.float32), **F32)
check("eye", "eye(3, 4)", np.eye(3, 4, dtype=np.float32))
check("eye i64", "eye(3, i64)", np.eye(3, dtype=np.int64))
check("zeros_like", "zeros_like(ia)", np.zeros_like(ia))
check("ones_like dtype", "ones_like(ia, f64)", np.ones(ia.shape, np.float64))

# ---- .npy round trips ----------------------------------------------------------------
roundtrips = []  # (name, in file, expected array)
for dt in ("bool", "u8", "i32", "i64", "f16", "f32", "f64"):
    base = rng.standard_normal((3, 5, 2)) * 100
    arr = (base > 0) if dt == "bool" else base.astype(NP_DTYPES[dt])
    for order in ("C", "F"):
        for version in ((1, 0), (2, 0), (3, 0)):
            a = np.asfortranarray(arr) if order == "F" else np.ascontiguousarray(arr)
            fn = path(f"rt_{dt}_{order}_{version[0]}.npy")
            with open(fn, "wb") as f:
                np.lib.format.write_array(f, a, version=version)
            roundtrips.append((f"npy {dt} {order} v{version[0]}", fn, arr))
for name, arr in (("big-endian f4", np.arange(12, dtype=">f4").reshape(3, 4)),
                  ("big-endian i8", np.arange(-6, 6, dtype=">i8").reshape(4, 3)),
                  ("int8 widens", np.arange(-5, 5, dtype=np.int8)),
                  ("int16 widens", np.arange(-5, 5, dtype=np.int16) * 1000),
                  ("uint16 widens", np.arange(0, 10, dtype=np.uint16) * 6000),
                  ("0-d", np.array(3.5, dtype=np.float64)),
                  ("empty", np.zeros((0, 4), np.float32))):
    fn = path(f"rt_{name.replace(' ', '_')}.npy")
    np.save(fn, arr)
    want = arr.astype(arr.dtype.newbyteorder("="))
    if arr.dtype.kind in "iu" and arr.dtype.itemsize < 4:
        want = arr.astype(np.int32)
    roundtrips.append((f"npy {name}", fn, want))
for name, fn, arr in roundtrips:
    check(name, f'load_npy("{fn}")', arr)
# Kiln writes, NumPy reads (every dtype, from non-contiguous data)
for dt in ("u8", "i32", "i64", "f16", "f32", "f64"):
    check(f"save {dt} from a view", f"to(S.T * 10, {dt})", (S.T * np.float32(10)).astype(NP_DTYPES[dt]))
check("save bool from a view", "S.T * 10 > 1", S.T * np.float32(10) > 1)

# ---- IDX: the real Fashion-MNIST files ------------------------------------------------
def read_idx(fn):
    with gzip.open(fn, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=">u1", offset=4 + 4 * ndim).reshape(dims).astype(np.uint8)


idx_files = []
if os.path.isdir(FASHION):
    for base in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                 "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        fn = os.path.join(FASHION, base + ".gz")
        check(f"load_idx {base}", f'load_idx("{fn}")', read_idx(fn))
    # a plain (not gzipped) copy reads the same
    plain = path("t10k-labels-idx1-ubyte")
    with gzip.open(os.path.join(FASHION, "t10k-labels-idx1-ubyte.gz"), "rb") as f, open(plain, "wb") as g:
        g.write(f.read())
    check("load_idx plain", f'load_idx("{plain}")', read_idx(os.path.join(FASHION, "t10k-labels-idx1-ubyte.gz")))
    imgs = read_idx(os.path.join(FASHION, "t10k-images-idx3-ubyte.gz"))
    check("idx images as f32 / 255, mean per image",
          f'mean(to(load_idx("{os.path.join(FASHION, "t10k-images-idx3-ubyte.gz")}"), f32) / 255.0, -1)',
          (imgs.astype(np.float64) / 255).mean(-1).astype(np.float32), rtol=1e-5, atol=1e-6)
else:
    print(f"test-numpy: {FASHION} is missing (Debian package dataset-fashion-mnist); IDX checks skipped")


# ---- ordering, scans, predicates, counting, sampling (engine/tensor/tensor_order.c) ----------
# NumPy's sort is not stable by default: kind="stable" is Kiln's order (ties keep theirs)
ov = inp("ov_f32", np.round(rng.standard_normal((5, 7, 6)) * 2).astype(np.float32) / 2)  # many ties
ovn = ov.copy()
ovn[1, 2, 3] = np.nan
ovn[4, 0, 0] = np.nan
inp("ovn_f32", ovn)
oi = inp("oi_i32", rng.integers(-5, 5, size=(6, 9)).astype(np.int32))
od = inp("od_f64", rng.standard_normal((4, 1025)))
for axis in (0, 1, 2, -1):
    check(f"sort f32 dim {axis}", f"sort(ov_f32, {axis})", np.sort(ov, axis=axis, kind="stable"))
    check(f"argsort f32 dim {axis}", f"argsort(ov_f32, {axis})", np.argsort(ov, axis=axis, kind="stable"))
    # descending, stable: NumPy's stable argsort of -x (ties keep their order)
    check(f"argsort descending dim {axis}", f"argsort(ov_f32, {axis}, true)", np.argsort(-ov, axis=axis, kind="stable"))
check("sort with NaN last", "sort(ovn_f32)", np.sort(ovn, axis=-1, kind="stable"))
check("argsort with NaN last", "argsort(ovn_f32, 1)", np.argsort(ovn, axis=1, kind="stable"))
check("sort i32", "sort(oi_i32, 0)", np.sort(oi, axis=0, kind="stable"))
check("sort descending i32", "sort(oi_i32, 1, true)", -np.sort(-oi, axis=1, kind="stable"))
check("argsort of a transposed view", "argsort(ov_f32.T, 0)", np.argsort(ov.T, axis=0, kind="stable"))
check("sort f64 long rows", "sort(od_f64)", np.sort(od, axis=-1), **F64)
check("sort 0-d", "sort(ov_f32[0, 0, 0])", np.sort(ov[0, 0, 0:1])[0])
check("sort empty", "sort(zeros(3, 0))", np.zeros((3, 0), np.float32))
check("sort bool", "sort(oi_i32 > 0)", np.sort(oi > 0, axis=-1))
for k, axis in ((3, -1), (1, 0), (6, 2), (0, 1)):
    want_i = np.argsort(-ov, axis=axis, kind="stable").take(range(k), axis=axis)
    check(f"topk k={k} dim {axis}", f"topk(ov_f32, {k}, {axis})", np.take_along_axis(ov, want_i, axis=axis))
    check(f"topk_indices k={k} dim {axis}", f"topk_indices(ov_f32, {k}, {axis})", want_i)
want_s = np.argsort(od, axis=1, kind="stable")[:, :5]
check("topk smallest f64", "topk(od_f64, 5, 1, false)", np.take_along_axis(od, want_s, axis=1), **F64)
check("topk_indices smallest f64", "topk_indices(od_f64, 5, 1, false)", want_s)
cs = inp("cs_f64", rng.standard_normal((5, 6, 4)))
csi = inp("cs_i32", rng.integers(-3, 4, size=(4, 7)).astype(np.int32))
for axis in (0, 1, 2, -1):
    check(f"cumsum f64 dim {axis}", f"cumsum(cs_f64, {axis})", np.cumsum(cs, axis=axis), **F64)
    check(f"cumprod f64 dim {axis}", f"cumprod(cs_f64, {axis})", np.cumprod(cs, axis=axis), **F64)
check("cumsum f32", "cumsum(ov_f32, 1)", np.cumsum(ov, axis=1), **F32)
check("cumsum flattened", "cumsum(cs_f64)", np.cumsum(cs), **F64)
check("cumsum i32 gives i64", "cumsum(cs_i32, 1)", np.cumsum(csi, axis=1, dtype=np.int64))
check("cumprod i32 gives i64", "cumprod(cs_i32, 0)", np.cumprod(csi, axis=0, dtype=np.int64))
check("cumsum bool gives i64", "cumsum(cs_i32 > 0, 1)", np.cumsum(csi > 0, axis=1, dtype=np.int64))
check("cumsum of a transposed view", "cumsum(cs_f64.T, 1)", np.cumsum(cs.T, axis=1), **F64)
check("cumsum big", "cumsum(big)", np.cumsum(big.astype(np.float64)).astype(np.float32), rtol=1e-4, atol=2e-3)
sp = inp("sp_f32", np.array([[1.5, np.nan, -np.inf, 0.0], [np.inf, -2.0, np.nan, 3.0]], np.float32))
sp64 = inp("sp_f64", sp.astype(np.float64))
for name, fn in (("isnan", np.isnan), ("isinf", np.isinf), ("isfinite", np.isfinite)):
    check(f"{name} f32", f"{name}(sp_f32)", fn(sp))
    check(f"{name} f64", f"{name}(sp_f64)", fn(sp64))
    check(f"{name} i32", f"{name}(cs_i32)", fn(csi))
check("nan_to_num f32", "nan_to_num(sp_f32)", np.nan_to_num(sp))
check("nan_to_num f64 given", "nan_to_num(sp_f64, -1, 100, -100)", np.nan_to_num(sp64, nan=-1, posinf=100, neginf=-100))
check("nan_to_num i32", "nan_to_num(cs_i32)", np.nan_to_num(csi))
check("clip f32", "clip(ov_f32, -0.5, 1)", np.clip(ov, -0.5, 1))
check("clip i32", "clip(oi_i32, -2, 3)", np.clip(oi, -2, 3))
for axis in ("", ", 0", ", 1", ", -1, true"):
    ax = None if not axis else int(axis.split(",")[1])
    keep = "true" in axis
    check(f"any{axis}", f"any(oi_i32 > 3{axis})", np.any(oi > 3, axis=ax, keepdims=keep))
    check(f"all{axis}", f"all(oi_i32 > -4{axis})", np.all(oi > -4, axis=ax, keepdims=keep))
with np.errstate(invalid="ignore"):
    check("any of NaN", "any(sp_f32 * 0)", np.any(sp * 0))
check("all of empty", "all(zeros(0))", np.all(np.zeros(0)))
check("any f64 dim", "any(cs_f64 > 1.5, 2)", np.any(cs > 1.5, axis=2))
close_b = inp("close_b", (ov * (1 + 1e-7)).astype(np.float32))
check("allclose true", "allclose(ov_f32, close_b)", np.allclose(ov, close_b))
check("allclose false", "allclose(ov_f32, close_b + 0.01)", np.allclose(ov, close_b + np.float32(0.01)))
check("allclose broadcast rtol atol", "allclose(ov_f32, ov_f32[0], 10, 10)", np.allclose(ov, ov[0], 10, 10))
check("allclose NaN", "allclose(sp_f32, sp_f32)", np.allclose(sp, sp))
check("allclose inf equal", "allclose(sp_f32[1, 0], sp_f32[1, 0])", np.allclose(sp[1, 0], sp[1, 0]))
check("unique f32", "unique(ov_f32)", np.unique(ov))
check("unique i32", "unique(oi_i32)", np.unique(oi))
check("unique NaN once", "unique(sp_f32)", np.unique(sp))
bc = inp("bc_i64", rng.integers(0, 12, size=40))
bw = inp("bw_f32", rng.standard_normal(40).astype(np.float32))
check("bincount", "bincount(bc_i64)", np.bincount(bc))
check("bincount minlength", "bincount(bc_i64, 20)", np.bincount(bc, minlength=20))
check("bincount weights", "bincount(bc_i64, bw_f32)", np.bincount(bc, weights=bw.astype(np.float64)), **F64)
check("bincount empty", "bincount(bc_i64[0:0])", np.bincount(np.zeros(0, np.int64)))
check("bincount u8", "bincount(to(bc_i64, u8), bw_f32, 3)",
      np.bincount(bc.astype(np.uint8), weights=bw.astype(np.float64), minlength=3), **F64)
# sampling: properties NumPy can check (the draws are Kiln's own stream)
check("randperm is a permutation", "sort(randperm(1000))", np.arange(1000))
check("randperm 0", "randperm(0)", np.zeros(0, np.int64))
check("shuffle keeps the rows", "sort(shuffle(bc_i64))", np.sort(bc))
check("shuffle of a matrix moves whole rows", "sum(shuffle(cs_f64), 0)", cs.sum(0), **F64)
check("multinomial without replacement is a permutation", "sort(multinomial(ones(50), 50))", np.arange(50))
check("multinomial skips zero weights", "sort(multinomial({0.0, 0.0, 3.0, 1.0}, 2))", np.array([2, 3]))
pm = np.array([0.1, 0.0, 0.5, 0.25, 0.15])
check("multinomial with replacement: frequencies",
      "to(bincount(multinomial({0.1, 0.0, 0.5, 0.25, 0.15}, 40000, true), 5), f64) / 40000", pm, rtol=0, atol=0.012)
check("multinomial 2-d rows", "multinomial({{1.0, 0.0}, {0.0, 2.0}}, 3, true)", np.array([[0, 0, 0], [1, 1, 1]]))
# ---- shape and index built-ins (engine/lang/builtins_shape.def), model state --------------
E1 = inp("E1", rng.standard_normal((4, 5)).astype(np.float32))
E2 = inp("E2", rng.standard_normal((5, 3)).astype(np.float32))
E3 = inp("E3", rng.standard_normal((3, 4, 5)).astype(np.float32))
E4 = inp("E4", rng.standard_normal((3, 5, 2)).astype(np.float32))
ev = inp("ev", rng.standard_normal(5).astype(np.float32))
EI = inp("EI", rng.integers(-5, 5, size=(4, 5)).astype(np.int64))
ET = dict(rtol=1e-5, atol=1e-5)
for spec, args, arrs in (("ij,jk->ik", "E1, E2", (E1, E2)), ("bij,bjk->bik", "E3, E4", (E3, E4)),
                         ("i,i->", "ev, ev", (ev, ev)), ("ij->ji", "E1", (E1,)), ("ij,j->i", "E1, ev", (E1, ev)),
                         ("bi,bi->b", "E1, E1", (E1, E1)), ("ijk->ikj", "E3", (E3,)), ("ij->", "E1", (E1,)),
                         ("ij,jk,kl->il", "E1, E2, E2.T", (E1, E2, E2.T)), ("i,j->ij", "ev, ev", (ev, ev)),
                         ("bij,bkj->bik", "E3, E3", (E3, E3)), ("ij,jk", "E1, E2", (E1, E2)),
                         ("ji", "E1", (E1,)), ("ij,ij->ij", "E1, E1.T.T", (E1, E1)), ("bij->j", "E3", (E3,))):
    check(f"einsum {spec}", f'einsum("{spec}", {args})', np.einsum(spec, *arrs).astype(np.float32), **ET)
check("einsum i64", 'einsum("ij,kj->ik", EI, EI)', np.einsum("ij,kj->ik", EI, EI))
check("einsum of a view", 'einsum("ij,jk->ik", E1[:, ::2], E2[::2])', np.einsum("ij,jk->ik", E1[:, ::2], E2[::2]), **ET)
# '...' (NumPy's ellipsis broadcasting): batch dimensions, a size-1 one and missing ones
EB = inp("EB", rng.standard_normal((2, 1, 4, 5)).astype(np.float32))
for spec, args, arrs in (("...ij,...jk->...ik", "EB, E4", (EB, E4)), ("...ij,...jk", "E3, E2", (E3, E2)),
                         ("...i->...", "E3", (E3,)), ("i...->...i", "E3", (E3,)), ("...ij->...ji", "EB", (EB,)),
                         ("...i,...i->...", "E3, ev", (E3, ev)), ("...,...", "ev, E3[:, :1, :]", (ev, E3[:, :1, :])),
                         ("i...,i...->...", "E4, E4", (E4, E4)), ("...ij,...jk,...kl->...il", "E3, E4, E1[:2]",
                                                                    (E3, E4, E1[:2])), ("b...,b...->...b", "E3, E3", (E3, E3))):
    check(f"einsum {spec}", f'einsum("{spec}", {args})', np.einsum(spec, *arrs).astype(np.float32), **ET)
check("einsum ... i64", 'einsum("...ij,...kj->...ik", EI, EI)', np.einsum("...ij,...kj->...ik", EI, EI))
oi = inp("oi", rng.integers(0, 6, size=(3, 4)).astype(np.int64))
check("one_hot", "one_hot(oi, 7)", np.eye(7, dtype=np.int64)[oi])
check("one_hot inferred", "one_hot(oi[0])", np.eye(oi[0].max() + 1, dtype=np.int64)[oi[0]])
check("split", "split(E3, 2, 2)[1]", E3[:, :, 2:4])
check("split last short", "split(E3, 2, -1)[2]", E3[:, :, 4:])
check("split count", "len(split(arange(7), 3))", np.int64(3))
check("tolist length", "len(tolist(E3))", np.int64(len(E3.tolist())))
check("tolist element", "tolist(E3)[2][1][4]", np.float32(E3.tolist()[2][1][4]))  # a number saves as f32
check("tolist i64 element", "tolist(EI)[3][2]", np.int64(EI.tolist()[3][2]))
check("chunk", "chunk(E3, 2, 1)[1]", np.array_split(E3, 2, 1)[1])
check("chunk default dim", "chunk(E3, 3)[2]", E3[2:3])
check("repeat", "repeat(E3, 2, 1, 1, 2)", np.tile(E3, (2, 1, 1, 2)))
check("repeat tuple", "repeat(ev, shape(E1))", np.tile(ev, E1.shape))
check("repeat 5-d", "repeat(reshape(E1, 1, 4, 1, 5, 1), 2, 1, 3, 1, 2)", np.tile(E1.reshape(1, 4, 1, 5, 1), (2, 1, 3, 1, 2)))
check("tile", "tile(E3, 2)", np.tile(E3, 2))
check("tile more", "tile(ev, 2, 3)", np.tile(ev, (2, 3)))
check("repeat_interleave", "repeat_interleave(E3, 2, 1)", np.repeat(E3, 2, 1))
check("repeat_interleave flat", "repeat_interleave(EI, 3)", np.repeat(EI, 3))
check("expand", "expand(ev, 3, -1)", np.broadcast_to(ev, (3, 5)))
check("expand tuple", "expand(reshape(ev, 5, 1), shape(E1.T))", np.broadcast_to(ev[:, None], (5, 4)))
check("flip all", "flip(E3)", np.flip(E3))
check("flip dims", "flip(E3, 0, -1)", np.flip(E3, (0, 2)))
check("flip i64", "flip(EI, 1)", np.flip(EI, 1))
check("roll flat", "roll(E3, 7)", np.roll(E3, 7))
check("roll dim", "roll(E3, -2, 1)", np.roll(E3, -2, 1))
check("roll big", "roll(EI, 23, 1)", np.roll(EI, 23, 1))
check("tril", "tril(E1)", np.tril(E1))
check("triu k", "triu(E1, 2)", np.triu(E1, 2))
check("tril batched k", "tril(E3, -1)", np.tril(E3, -1))
check("triu i64", "triu(EI, -1)", np.triu(EI, -1))
check("diag of vector", "diag(ev)", np.diag(ev))
check("diag of vector k", "diag(ev, -2)", np.diag(ev, -2))
check("diag of matrix", "diag(E1)", np.diag(E1))
check("diag of matrix k", "diag(E1, 2)", np.diag(E1, 2))
check("diag of matrix -k", "diag(EI, -3)", np.diag(EI, -3))
check("masked_fill", "masked_fill(E1, E1 > 0, 0.5)", np.where(E1 > 0, np.float32(0.5), E1))
check("masked_fill broadcast", "masked_fill(E3, ev > 0, -1)", np.where(ev > 0, np.float32(-1), E3))
check("masked_fill i64", "masked_fill(EI, EI < 0, 0)", np.where(EI < 0, 0, EI))
ai = inp("ai", np.array([3, 0, 3, 1, 3], dtype=np.int64))
asrc = inp("asrc", rng.standard_normal((3, 5, 5)).astype(np.float32))
want = E3.copy()
np.add.at(want, (slice(None), ai), asrc)
check("index_add dim 1", "index_add(E3, 1, ai, asrc)", want, **ET)
want = EI.copy()
np.add.at(want, ai[:4] % 4, EI)
check("index_add i64 dim 0", "index_add(EI, 0, ai[:4] % 4, EI)", want)
si = inp("si", rng.integers(0, 4, size=(3, 2, 5)).astype(np.int64))
ssrc = inp("ssrc", rng.standard_normal((3, 2, 5)).astype(np.float32))
want = E3.copy()
ii, jj, kk = np.indices(si.shape)
np.add.at(want, (ii, si, kk), ssrc)
check("scatter_add dim 1", "scatter_add(E3, 1, si, ssrc)", want, **ET)
want = np.zeros(6, np.int64)
np.add.at(want, oi.ravel(), 1)
check("scatter_add as bincount", "scatter_add(zeros(6, i64), 0, flatten(oi), ones(12, i64))", want)
check("size", "E3.size(-1)", np.int64(5))
check("view", "E3.view(5, -1)", E3.reshape(5, -1))
check("float", "EI.float()", EI.astype(np.float32))
check("double", "E1.double()", E1.astype(np.float64))
check("long", "E1.long()", E1.astype(np.int64))
check("int", "E1.int()", E1.astype(np.int32))
check("bool", "EI.bool()", EI.astype(bool))
check("cpu", "E1.cpu()", E1)
# save_tensors writes an .npz NumPy reads (checked after the run), load_tensors reads NumPy's
npz_np = path("from_numpy.npz")
np.savez(npz_np, first=E1, second=EI)
check("load_tensors numpy's npz", f'load_tensors("{npz_np}", "second")[0]', EI)
check("load_tensors all", f'load_tensors("{npz_np}")[0]', E1)
npz_z = path("compressed.npz")
np.savez_compressed(npz_z, big=np.tile(E3, (4, 4, 4)), small=ev)
check("load_tensors np.savez_compressed", f'load_tensors("{npz_z}", "small", "big")[1]', np.tile(E3, (4, 4, 4)))
npz_kiln = path("from_kiln.npz")
setup.append(f'save_tensors("{npz_kiln}", "a", E1.T, "b", EI > 0);')


def shape_builtins():
    """The built-ins of engine/lang/builtins_shape.def (each must have a check above)."""
    src = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../engine/lang/builtins_shape.def")).read()
    return [n for n in re.findall(r'^BUILTIN\("(\w+)"', src, re.M) if n != "cuda"]  # cuda: no GPU here


def check_saved_npz():
    """np.load reads what save_tensors wrote."""
    if not os.path.exists(npz_kiln):
        return ["save_tensors wrote no file"]
    with np.load(npz_kiln) as z:
        if sorted(z.files) != ["a", "b"] or not np.array_equal(z["a"], E1.T) or not np.array_equal(z["b"], EI > 0):
            return [f"np.load of save_tensors' file: {z.files}"]
    return []


# ---- every built-in op of engine/tensor/ops.def has a check here -------------------------------
def table_builtins():
    """The built-in names of engine/tensor/ops.def (BUILTIN and OWN rows, and composites)
    and of engine/lang/builtins_vocab.def."""
    src = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../engine/tensor/ops.def")).read()
    src = src[src.index("clang-format off"):]
    names = re.findall(r'^OP_(?:UNARY|BINARY)\(\w+,\s*"(\w+)",\s*(?:BUILTIN|OWN)\b', src, re.M)
    vocab = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../engine/lang/builtins_vocab.def")).read()
    return names + re.findall(r"^OP_COMPOSITE\((\w+),", src, re.M) + re.findall(r'^BUILTIN\("(\w+)"', vocab, re.M)


def unchecked_builtins():
    called = set()
    for c in checks:
        called.update(re.findall(r"\b(\w+)\(", c["code"]))
    called.update(re.findall(r"\.(\w+)\(", " ".join(c["code"] for c in checks)))  # x.size(d) ...
    return [n for n in table_builtins() + shape_builtins() if n not in called]


# ---- run Kiln, compare ------------------------------------------------------------------
def main():
    script = path("checks.kn")
    with open(script, "w") as f:
        f.write("\n".join(setup) + "\n")
        for i, c in enumerate(checks):
            f.write(f"//%%\nsave_npy(\"{path(f'out_{i}.npy')}\", {c['code']});\n")
    t0 = time.time()
    proc = subprocess.run([KILN, "run", "-k", script], capture_output=True, text=True)
    elapsed = time.time() - t0
    failed = []
    for i, c in enumerate(checks):
        fn = path(f"out_{i}.npy")
        if not os.path.exists(fn):
            failed.append(f"{c['name']}: Kiln produced no result for `{c['code']}`")
            continue
        got = np.load(fn)
        want = c["expected"]
        if got.shape != want.shape:
            failed.append(f"{c['name']}: shape {got.shape}, want {want.shape}")
        elif got.dtype != c["dtype"]:
            failed.append(f"{c['name']}: dtype {got.dtype}, want {c['dtype']}")
        elif got.dtype.kind in "biu" or (c["rtol"] == 0 and c["atol"] == 0):
            if not np.array_equal(got, want, equal_nan=got.dtype.kind == "f"):
                bad = np.argwhere(got != want)
                failed.append(f"{c['name']}: values differ at {bad[:3].tolist()}")
        else:
            g64, w64 = got.astype(np.float64), want.astype(np.float64)
            with np.errstate(all="ignore"):
                ok = np.isclose(g64, w64, rtol=c["rtol"], atol=c["atol"], equal_nan=True)
            if not ok.all():
                k = np.argwhere(~ok)[0]
                err = np.abs(g64 - w64)
                failed.append(f"{c['name']}: {int((~ok).sum())} values off, e.g. at {k.tolist()}: "
                              f"got {g64[tuple(k)]!r}, want {w64[tuple(k)]!r} "
                              f"(max abs err {np.nanmax(err):.3g}, rtol {c['rtol']}, atol {c['atol']})")
    print(f"test-numpy: {len(checks)} checks, kiln ran them in {elapsed:.2f} s")
    failed += check_saved_npz()
    missing = unchecked_builtins()
    if missing:
        failed.append(f"ops of engine/tensor/ops.def with no check here: {', '.join(missing)}")
    else:
        print(f"test-numpy: each of the {len(table_builtins())} built-in ops of engine/tensor/ops.def is checked")
    # a sanitizer build (make asan) reports memory errors on stderr
    for marker in ("Sanitizer", "runtime error:"):
        if marker in proc.stderr:
            failed.append("kiln's sanitizer reported an error:\n" + proc.stderr[proc.stderr.index(marker) - 200:][:3000])
            break
    if proc.returncode not in (0, 1):
        failed.append(f"kiln exited with status {proc.returncode}")
    if failed:
        for f in failed:
            print("FAIL", f)
        if proc.stderr.strip() or proc.stdout.strip():
            print("---- kiln output (tail) ----")
            print((proc.stdout + proc.stderr)[-3000:])
        print(f"test-numpy: {len(failed)} of {len(checks)} checks failed")
        return 1
    print("test-numpy: all passed")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
