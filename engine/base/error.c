/* error.c — filling eng_error and naming its kinds. */
#include "engine/base/error.h"

#include <stdarg.h>
#include <stdio.h>

int eng_vfail(eng_error *err, eng_errkind kind, const char *fmt, va_list ap)
{
    if (!err || err->kind != ERR_NONE)
        return -1;
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    err->kind = kind;
    return -1;
}

int eng_fail(eng_error *err, eng_errkind kind, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    eng_vfail(err, kind, fmt, ap);
    va_end(ap);
    return -1;
}

const char *eng_errkind_name(eng_errkind kind)
{
    switch (kind) {
    case ERR_NONE: return "NoError";
    case ERR_SYNTAX: return "SyntaxError";
    case ERR_NAME: return "NameError";
    case ERR_TYPE: return "TypeError";
    case ERR_SHAPE: return "ShapeError";
    case ERR_INDEX: return "IndexError";
    case ERR_VALUE: return "ValueError";
    case ERR_ZERODIV: return "ZeroDivisionError";
    case ERR_IO: return "IOError";
    case ERR_MEMORY: return "MemoryError";
    case ERR_RUNTIME: return "RuntimeError";
    case ERR_COMPILE: return "CompileError";
    case ERR_CUDA: return "CudaError";
    case ERR_INTERRUPT: return "Interrupted";
    }
    return "Error";
}
