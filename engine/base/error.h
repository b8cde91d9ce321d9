/* error.h — errors as values that travel up to the cell.
 *
 * Every function that can fail on user input takes an eng_error * owned by the caller,
 * fills it and returns -1 (or NULL). Nothing in the engine exits or aborts on user input.
 * Tensor code fills kind and msg; the interpreter adds the line and column of the
 * expression that failed before the error reaches the sink.
 */
#ifndef KILN_ERROR_H
#define KILN_ERROR_H

#include <stdarg.h>

typedef enum eng_errkind {
    ERR_NONE = 0,
    ERR_SYNTAX,    /* SyntaxError: the lexer or parser */
    ERR_NAME,      /* NameError: undeclared name */
    ERR_TYPE,      /* TypeError: wrong type, wrong argument count, wrong dtype */
    ERR_SHAPE,     /* ShapeError: shapes that do not broadcast or multiply */
    ERR_INDEX,     /* IndexError: index or dimension out of range */
    ERR_VALUE,     /* ValueError: a bad argument value (negative size, bad format) */
    ERR_ZERODIV,   /* ZeroDivisionError: integer division or modulo by zero */
    ERR_IO,        /* IOError: missing or malformed file */
    ERR_MEMORY,    /* MemoryError: an allocation failed */
    ERR_RUNTIME,   /* RuntimeError: anything else at run time */
    ERR_COMPILE,   /* CompileError: a CUDA kernel did not compile (the compiler's messages) */
    ERR_CUDA,      /* CudaError: the device reported an error (illegal address, lost context) */
    ERR_INTERRUPT, /* Interrupted: eng_interrupt stopped the cell */
} eng_errkind;

typedef struct eng_error {
    eng_errkind kind; /* ERR_NONE while no error */
    int line, col;    /* 1-based position in the cell; 0 where not yet known */
    char msg[600];    /* one line, no trailing newline */
} eng_error;

/* Fills err (if non-NULL and not already set) and returns -1, so that
 * `return eng_fail(err, ERR_SHAPE, "...", ...);` reads as one statement. */
int eng_fail(eng_error *err, eng_errkind kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* eng_fail for a function of its own that takes a format (a located fail): -1 */
int eng_vfail(eng_error *err, eng_errkind kind, const char *fmt, va_list ap) __attribute__((format(printf, 3, 0)));

/* The Jupyter ename for a kind: "ShapeError", ... */
const char *eng_errkind_name(eng_errkind kind);

/* Grammar for messages: "a"/"an" before a type or dtype name as it is read aloud
 * ("an int", "an f32", "a u8", "a tensor"), and "s" after a count other than 1. */
static inline const char *eng_a(const char *word)
{
    char c = word ? word[0] : 0;
    int vowel = c == 'a' || c == 'e' || c == 'i' || c == 'o' || (c == 'u' && word[1] == 'n'); /* "an unknown" */
    int letter = (c == 'f' || c == 'x') && word[1] >= '0' && word[1] <= '9'; /* "an f32" */
    return vowel || letter ? "an" : "a";
}
static inline const char *eng_s(long long n) { return n == 1 ? "" : "s"; }

#endif
