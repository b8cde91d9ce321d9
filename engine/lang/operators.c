/* operators.c — the binary operators on values: ints (wrapping, C's division and
 * shifts with their errors), floats, strings (+ joins, comparisons), tensors
 * (elementwise through the op table, '@' as matmul), dtypes, devices and tuples.
 * Errors fill err with no position: the interpreter adds the operator's.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/lang/interp.h"
#include "engine/tensor/tensor.h"

static int is_num(value v) { return v.type == VAL_INT || v.type == VAL_BOOL || v.type == VAL_FLOAT; }
static double num(value v) { return v.type == VAL_FLOAT ? v.as.f : (double)v.as.i; }

op_id eng_tensor_op(int op)
{
    switch (op) {
    case TK_PLUS: return OP_ADD;
    case TK_MINUS: return OP_SUB;
    case TK_STAR: return OP_MUL;
    case TK_SLASH: return OP_DIV;
    case TK_PERCENT: return OP_MOD;
    case TK_EQ: return OP_EQ;
    case TK_NE: return OP_NE;
    case TK_LT: return OP_LT;
    case TK_LE: return OP_LE;
    case TK_GT: return OP_GT;
    case TK_GE: return OP_GE;
    default: return OP_COUNT;
    }
}

const char *eng_op_name(int op)
{
    static const char *const names[TK_NKINDS] = {
        [TK_PLUS] = "+", [TK_MINUS] = "-", [TK_STAR] = "*", [TK_SLASH] = "/", [TK_PERCENT] = "%",
        [TK_AT] = "@", [TK_AMP] = "&", [TK_PIPE] = "|", [TK_CARET] = "^", [TK_SHL] = "<<", [TK_SHR] = ">>",
        [TK_EQ] = "==", [TK_NE] = "!=", [TK_LT] = "<", [TK_LE] = "<=", [TK_GT] = ">", [TK_GE] = ">=",
    };
    return op >= 0 && op < TK_NKINDS && names[op] ? names[op] : "?";
}

int eng_int_binop(int op, int64_t a, int64_t b, value *out, eng_error *err)
{
    uint64_t ua = (uint64_t)a, ub = (uint64_t)b;
    switch (op) {
    case TK_PLUS: *out = value_int((int64_t)(ua + ub)); return 0;
    case TK_MINUS: *out = value_int((int64_t)(ua - ub)); return 0;
    case TK_STAR: *out = value_int((int64_t)(ua * ub)); return 0;
    case TK_SLASH:
    case TK_PERCENT:
        if (b == 0)
            return eng_fail(err, ERR_ZERODIV, "integer %s by zero (%lld %s 0)", op == TK_SLASH ? "division" : "modulo",
                        (long long)a, eng_op_name(op));
        if (b == -1) /* INT64_MIN / -1 overflows in C */
            *out = value_int(op == TK_SLASH ? (int64_t)(0 - ua) : 0);
        else
            *out = value_int(op == TK_SLASH ? a / b : a % b);
        return 0;
    case TK_AMP: *out = value_int(a & b); return 0;
    case TK_PIPE: *out = value_int(a | b); return 0;
    case TK_CARET: *out = value_int(a ^ b); return 0;
    case TK_SHL:
    case TK_SHR:
        if (b < 0 || b > 63)
            return eng_fail(err, ERR_VALUE, "shift count %lld is out of range 0..63", (long long)b);
        *out = value_int(op == TK_SHL ? (int64_t)(ua << b) : a >> b);
        return 0;
    case TK_EQ: *out = value_bool(a == b); return 0;
    case TK_NE: *out = value_bool(a != b); return 0;
    case TK_LT: *out = value_bool(a < b); return 0;
    case TK_LE: *out = value_bool(a <= b); return 0;
    case TK_GT: *out = value_bool(a > b); return 0;
    case TK_GE: *out = value_bool(a >= b); return 0;
    default: return eng_fail(err, ERR_TYPE, "operator '%s' cannot take int and int", eng_op_name(op));
    }
}

static int float_binop(int op, double a, double b, value *out, eng_error *err)
{
    switch (op) {
    case TK_PLUS: *out = value_float(a + b); return 0;
    case TK_MINUS: *out = value_float(a - b); return 0;
    case TK_STAR: *out = value_float(a * b); return 0;
    case TK_SLASH: *out = value_float(a / b); return 0;
    case TK_PERCENT: *out = value_float(fmod(a, b)); return 0;
    case TK_EQ: *out = value_bool(a == b); return 0;
    case TK_NE: *out = value_bool(a != b); return 0;
    case TK_LT: *out = value_bool(a < b); return 0;
    case TK_LE: *out = value_bool(a <= b); return 0;
    case TK_GT: *out = value_bool(a > b); return 0;
    case TK_GE: *out = value_bool(a >= b); return 0;
    default: return eng_fail(err, ERR_TYPE, "operator '%s' cannot take float operands", eng_op_name(op));
    }
}

int eng_binop(int op, value a, value b, value *out, eng_error *err)
{
    if ((a.type == VAL_INT || a.type == VAL_BOOL) && (b.type == VAL_INT || b.type == VAL_BOOL))
        return eng_int_binop(op, a.as.i, b.as.i, out, err);
    if (is_num(a) && is_num(b))
        return float_binop(op, num(a), num(b), out, err);
    if (a.type == VAL_TENSOR || b.type == VAL_TENSOR) {
        tensor *t = NULL;
        if (op == TK_AT) {
            if (a.type != VAL_TENSOR || b.type != VAL_TENSOR)
                return eng_fail(err, ERR_TYPE, "'@' multiplies tensors, got %s and %s", value_type_name(a.type),
                            value_type_name(b.type));
            t = tensor_matmul(a.as.t, b.as.t, err);
        } else {
            op_id id = eng_tensor_op(op);
            if (id == OP_COUNT)
                return eng_fail(err, ERR_TYPE, "operator '%s' does not apply to tensors", eng_op_name(op));
            if (a.type == VAL_TENSOR && b.type == VAL_TENSOR)
                t = tensor_binary(id, a.as.t, b.as.t, err);
            else if (a.type == VAL_TENSOR && is_num(b))
                t = tensor_binary_scalar(id, a.as.t, num(b), b.type == VAL_FLOAT, 0, err);
            else if (b.type == VAL_TENSOR && is_num(a))
                t = tensor_binary_scalar(id, b.as.t, num(a), a.type == VAL_FLOAT, 1, err);
            else
                return eng_fail(err, ERR_TYPE, "operator '%s' cannot take %s and %s", eng_op_name(op),
                            value_type_name(a.type), value_type_name(b.type));
        }
        if (!t)
            return -1;
        *out = value_tensor(t);
        return 0;
    }
    if (a.type == VAL_STRING && b.type == VAL_STRING) {
        if (op == TK_PLUS) {
            eng_string *s = eng_string_alloc(a.as.s->len + b.as.s->len, "joining strings", err);
            if (!s) /* a MemoryError over the host memory budget (engine/base/hostmem.h) */
                return -1;
            memcpy(s->data, a.as.s->data, (size_t)a.as.s->len);
            memcpy(s->data + a.as.s->len, b.as.s->data, (size_t)b.as.s->len + 1);
            out->type = VAL_STRING;
            out->as.s = s;
            return 0;
        }
        int c = strcmp(a.as.s->data, b.as.s->data);
        return eng_int_binop(op, c, 0, out, err);
    }
    if (a.type == b.type && (a.type == VAL_DTYPE || a.type == VAL_DEVICE) && (op == TK_EQ || op == TK_NE)) {
        *out = value_bool((a.as.i == b.as.i) == (op == TK_EQ));
        return 0;
    }
    if (a.type == VAL_TUPLE && b.type == VAL_TUPLE && (op == TK_EQ || op == TK_NE)) {
        int eq = a.as.tup->n == b.as.tup->n &&
                 !memcmp(a.as.tup->v, b.as.tup->v, sizeof(int64_t) * (size_t)a.as.tup->n);
        *out = value_bool(eq == (op == TK_EQ));
        return 0;
    }
    return eng_fail(err, ERR_TYPE, "operator '%s' cannot take %s and %s", eng_op_name(op), value_type_name(a.type),
                value_type_name(b.type));
}
