/* complete_context.c — what completion knows of the place it completes at (for
 * session_complete.c): the type of the value before a '.', which built-ins and user
 * functions take that type as their first argument (x.f(a) is f(x, a)), and whether
 * the cursor is inside a __global__ / __device__ body, where CUDA's built-ins are the
 * words to offer.
 *
 * Types are found from the text alone, without running anything: a global's value
 * (`x.`), a member (`x.T.`, `x.shape.`), a call's declared result (`randn(3).`,
 * `x.sum().`, a user function's return type), an index (`x[0].` of a tensor), a string
 * literal. Anything else is unknown, and completion offers every built-in as before. */
#include <ctype.h>
#include <string.h>

#include "engine/lang/interp.h"
#include "engine/lang/session.h"

static int is_ident(int c) { return isalnum(c) || c == '_'; }

/* the CUDA words a kernel body may use (those cuda/sim/kiln_sim.h provides) */
const char *const eng_cuda_words[] = {
    "threadIdx", "blockIdx", "blockDim", "gridDim", "warpSize", "__syncthreads", "__syncthreads_count",
    "__syncthreads_and", "__syncthreads_or", "__syncwarp", "__threadfence", "__threadfence_block",
    "atomicAdd", "atomicSub", "atomicMax", "atomicMin", "atomicExch", "atomicCAS", "atomicAnd", "atomicOr",
    "atomicXor", "atomicInc", "atomicDec", "__shfl_sync", "__shfl_up_sync", "__shfl_down_sync",
    "__shfl_xor_sync", "__ballot_sync", "__any_sync", "__all_sync", "__activemask", "__popc", "__clz", "__ffs",
    "__brev", "__expf", "__logf", "__log2f", "__sinf", "__cosf", "__tanf", "__powf", "__fdividef",
    "__frsqrt_rn", "__saturatef", "__fmaf_rn", "__ldg", "__float2half", "__half2float", "__float2bfloat16",
    "__bfloat162float", "__float_as_int", "__int_as_float", "__float2int_rn", "expf", "logf", "sqrtf",
    "rsqrtf", "fabsf", "fmaxf", "fminf", "tanhf", "powf", "sinf", "cosf", "tanf", "erff", "erfcf", "fmaf",
    "floorf", "ceilf", "roundf", "cbrtf", "exp", "log", "sqrt", "fabs", "fmax", "fmin", "tanh", "min", "max",
    "__shared__", "__restrict__", "__forceinline__", "__launch_bounds__", "__device__", "extern", "const",
    "unsigned", "int", "float", "double", "char", "bool", "long", "short", "size_t", "int64_t", "__half",
    "__nv_bfloat16", "float2", "float4", "int2", "int4", "if", "else", "for", "while", "do", "break",
    "continue", "return", "sizeof", NULL};

/* ---- is the cursor in a kernel body? ---- */

/* 1 when code[0, cursor) ends inside the braces of a __global__ / __device__
 * definition (comments and strings are not looked into: a brace in them may mislead) */
int eng_complete_in_kernel(const char *code, int cursor)
{
    const char *last = NULL;
    for (const char *p = code; p < code + cursor; p++)
        if ((!strncmp(p, "__global__", 10) || !strncmp(p, "__device__", 10)) && (p == code || !is_ident(p[-1])) &&
            p + 10 <= code + cursor)
            last = p;
    if (!last)
        return 0;
    int depth = 0, opened = 0;
    for (const char *p = last; p < code + cursor; p++) {
        if (p[0] == '/' && p[1] == '/') {
            while (p < code + cursor && *p != '\n')
                p++;
        } else if (*p == '{') {
            depth++;
            opened = 1;
        } else if (*p == '}') {
            if (--depth == 0 && opened)
                return 0; /* the definition closed before the cursor */
        }
    }
    return opened && depth > 0;
}

/* ---- the type before a '.' ---- */

static int skip_back_blank(const char *code, int i)
{
    while (i >= 0 && (code[i] == ' ' || code[i] == '\t'))
        i--;
    return i;
}

/* code[i] is a closer (')' or ']'): the index of its opener, or -1 */
static int match_back(const char *code, int i)
{
    char close = code[i], open = close == ')' ? '(' : '[';
    int depth = 0;
    for (; i >= 0; i--) {
        if (code[i] == '"') { /* skip a string backwards */
            for (i--; i >= 0 && !(code[i] == '"' && (i == 0 || code[i - 1] != '\\')); i--)
                ;
            continue;
        }
        if (code[i] == close)
            depth++;
        else if (code[i] == open && --depth == 0)
            return i;
        else if (code[i] == '\n' && depth > 8)
            return -1;
    }
    return -1;
}

static int type_of_ast(ast_type t)
{
    switch (t) {
    case TY_BOOL: return VAL_BOOL;
    case TY_INT: return VAL_INT;
    case TY_FLOAT: return VAL_FLOAT;
    case TY_STRING: return VAL_STRING;
    case TY_TENSOR: return VAL_TENSOR;
    case TY_TUPLE: return VAL_TUPLE;
    default: return -1;
    }
}

static int type_of_ret(char ret)
{
    switch (ret) {
    case 'T': return VAL_TENSOR;
    case 'I': return VAL_INT;
    case 'F': return VAL_FLOAT;
    case 'B': return VAL_BOOL;
    case 'S': return VAL_STRING;
    default: return -1;
    }
}

static int type_ending_at(eng_session *s, const char *code, int i, int depth);

/* the type of the identifier code[from, to] (a name, or a member when a '.' precedes) */
static int type_of_name(eng_session *s, const char *code, int from, int to, int call, int depth)
{
    const char *name = code + from;
    int len = to - from + 1;
    int before = skip_back_blank(code, from - 1);
    if (before >= 0 && code[before] == '.' && !call) { /* a member */
        int base = type_ending_at(s, code, before - 1, depth + 1);
        if (base != VAL_TENSOR)
            return -1;
        static const struct { const char *name; int type; } members[] = {
            {"T", VAL_TENSOR}, {"grad", VAL_TENSOR}, {"shape", VAL_TUPLE}, {"ndim", VAL_INT},
            {"numel", VAL_INT}, {"dtype", VAL_DTYPE}, {"device", VAL_DEVICE}};
        for (size_t k = 0; k < sizeof members / sizeof members[0]; k++)
            if ((int)strlen(members[k].name) == len && !strncmp(members[k].name, name, (size_t)len))
                return members[k].type;
        return -1;
    }
    if (call) { /* a call (or a method call x.f(...)): its declared result */
        int g = eng_global_find(s, name, len);
        if (g >= 0 && s->globals[g].defined && s->globals[g].v.type == VAL_FUNC)
            return type_of_ast(s->globals[g].v.as.fn->def->type);
        const eng_builtin *b = eng_builtin_find(name, len);
        if (!b)
            return -1;
        int t = type_of_ret(b->ret);
        if (t < 0 && before >= 0 && code[before] == '.') /* '?': like the receiver (x.abs()) */
            t = type_ending_at(s, code, before - 1, depth + 1) == VAL_TENSOR ? VAL_TENSOR : -1;
        return t;
    }
    int g = eng_global_find(s, name, len);
    if (g >= 0 && s->globals[g].defined)
        return (int)s->globals[g].v.type;
    return -1;
}

/* the type of the postfix expression ending at code[i], or -1 */
static int type_ending_at(eng_session *s, const char *code, int i, int depth)
{
    i = skip_back_blank(code, i);
    if (i < 0 || depth > 16)
        return -1;
    if (code[i] == '"')
        return VAL_STRING;
    if (code[i] == ']') {
        int open = match_back(code, i);
        if (open <= 0)
            return -1;
        int base = type_ending_at(s, code, open - 1, depth + 1);
        return base == VAL_TENSOR ? VAL_TENSOR : base == VAL_TUPLE ? VAL_INT : -1;
    }
    int call = 0;
    if (code[i] == ')') {
        int open = match_back(code, i);
        if (open <= 0)
            return -1;
        i = skip_back_blank(code, open - 1);
        if (i < 0 || !is_ident((unsigned char)code[i]))
            return -1; /* (a + b).: not known */
        call = 1;
    }
    if (!is_ident((unsigned char)code[i]))
        return -1;
    int to = i;
    while (i > 0 && is_ident((unsigned char)code[i - 1]))
        i--;
    if (isdigit((unsigned char)code[i]))
        return -1;
    return type_of_name(s, code, i, to, call, depth);
}

int eng_complete_dot_type(eng_session *s, const char *code, int dot)
{
    return type_ending_at(s, code, dot - 1, 0);
}

/* ---- which functions take a type first ---- */

/* the first parameter's name in a built-in's signature ("x" of "sum(x[, dim])") */
static int first_param(const char *sig, char *out, size_t n)
{
    const char *p = strchr(sig, '(');
    if (!p)
        return 0;
    p++;
    while (*p == '[' || *p == ' ')
        p++;
    size_t k = 0;
    while (is_ident((unsigned char)*p) && k + 1 < n)
        out[k++] = *p++;
    out[k] = 0;
    return k > 0;
}

/* does built-in b take a value of type vtype (VAL_*) as its first argument, as a
 * method would? Read from the signature's first parameter name, which the .def tables
 * keep to a convention: x, t, a (tensors), format/path/prompt (strings), opt (an
 * optimiser handle, an int), model (a function); a few that take any value, or
 * tensors only as a list of parameters, are no one's methods */
int eng_builtin_takes(const eng_builtin *b, int vtype)
{
    static const char *const tensor_names[] = {"x", "t", "t1", "a", "logits", "loss", "idx", "cond", "input",
                                               "pred", "probs", NULL};
    static const char *const string_names[] = {"format", "path", "prompt", "s", "name", NULL};
    static const char *const int_names[] = {"opt", NULL};
    static const char *const func_names[] = {"model", "f", "fn", NULL};
    static const char *const not_methods[] = {"print", "printf", "cdiv", "dim3", "display", "update_display",
                                              "str", "adamw", "adamw_sf", "sgd", "zero_grad", NULL};
    for (int i = 0; not_methods[i]; i++)
        if (!strcmp(b->name, not_methods[i]))
            return vtype == VAL_STRING && !strcmp(b->name, "printf"); /* "%d\n".printf(3) reads well */
    if ((vtype == VAL_STRING || vtype == VAL_TUPLE || vtype == VAL_LIST) && !strcmp(b->name, "len"))
        return 1;
    char first[32];
    if (!first_param(b->signature, first, sizeof first))
        return 0;
    const char *const *names = vtype == VAL_TENSOR ? tensor_names : vtype == VAL_STRING ? string_names
                               : vtype == VAL_INT ? int_names : vtype == VAL_FUNC ? func_names : NULL;
    for (int i = 0; names && names[i]; i++)
        if (!strcmp(first, names[i]))
            return 1;
    return 0;
}

/* does the user function fn take a value of type vtype first? */
int eng_func_takes(const eng_func *fn, int vtype)
{
    return fn && fn->def && fn->def->nlist > 0 && type_of_ast(fn->def->list[0]->type) == vtype;
}
