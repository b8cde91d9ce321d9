/* fuzz_parse.c — libFuzzer target over the lexer, the parser and the checker.
 *
 * Each input is one cell: it is copied to a NUL-terminated buffer and checked against
 * one session kept for the whole run (eng_check_only parses and checks, running
 * nothing). Built with -DFUZZ_PARSE_ONLY it calls ast_parse directly, for fuzzing the
 * lexer and parser alone; ast_open_depth is exercised on the same input either way.
 *
 *   clang -fsanitize=fuzzer,address,undefined -DFUZZ_PARSE_ONLY -I. tests/fuzz/fuzz_parse.c \
 *     engine/lang/lex.c engine/lang/parse.c engine/base/stack.c engine/base/arena.c engine/base/error.c -o build/fuzz_parse_only
 *   build/fuzz_parse_only -dict=tests/fuzz/kiln.dict -max_len=4096 tests/fuzz/corpus
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/lang/ast.h"
#include "engine/base/error.h"
#ifndef FUZZ_PARSE_ONLY
#include "engine/engine.h"
#include "engine/lang/session.h"
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *code = malloc(size + 1);
    if (!code)
        return 0;
    memcpy(code, data, size);
    code[size] = 0;
    eng_error errs[16];
    memset(errs, 0, sizeof errs);

    int invalid = 0;
    (void)ast_open_depth(code, &invalid);
#ifdef FUZZ_PARSE_ONLY
    ast_cell cell;
    int n = ast_parse(code, &cell, errs, 16);
    for (int i = 0; i < n && i < 16; i++)
        if (errs[i].line < 1 || errs[i].col < 1 || errs[i].kind == ERR_NONE)
            __builtin_trap(); /* every error has a position and a kind */
    arena_decref(cell.arena);
#else
    static eng_session *session;
    if (!session)
        session = eng_session_new();
    if (session)
        (void)eng_check_only(session, code, errs, 16);
#endif
    free(code);
    return 0;
}
