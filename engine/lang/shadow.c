/* shadow.c — user functions that take a built-in's name, and %del.
 *
 * A function defined with a built-in's name (a faster `gelu`) shadows it: every call of
 * that name runs the user's function, including calls in functions checked before it
 * was defined (a model given to fit). The checker resolves a call of a built-in's name
 * to the built-in when no global of that name is visible; the session keeps, per
 * built-in, the index of the global of the same name (eng_session.shadow, set when the
 * global is created), and the interpreter asks eng_shadow_func at each call: one load
 * and a test, no hashing. `%del NAME` (or `%reset`) un-defines the global; the same
 * calls go back to the built-in. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "engine/lang/interp.h"
#include "engine/lang/kernels.h"

/* the index of the defined global `name`, or -1 with an error saying what the name is */
static int deletable(eng_session *s, const char *name, eng_error *err)
{
    int g = eng_global_find(s, name, (int)strlen(name));
    if (g >= 0 && s->globals[g].defined)
        return g;
    if (eng_kernel_find(s->kernels, name, (int)strlen(name)))
        return eng_fail(err, ERR_NAME, "%%del: '%s' is a kernel: redefine it, or %%reset clears every kernel", name);
    if (eng_builtin_find(name, (int)strlen(name)))
        return eng_fail(err, ERR_NAME, "%%del: '%s' is a built-in, not a name of this session", name);
    return eng_fail(err, ERR_NAME, "%%del: no variable or function named '%s'", name);
}

int eng_global_delete(eng_session *s, const char *name, eng_error *err)
{
    int g = deletable(s, name, err);
    if (g < 0)
        return -1;
    eng_global *gl = &s->globals[g];
    value v = gl->v;
    gl->v = value_void();
    gl->defined = 0;
    gl->type = TY_UNKNOWN;
    value_decref(v);
    return 0;
}

/* %del NAME [NAME ...]: all or nothing. Every name is checked (a defined global) before
 * any is deleted, so a typo in the second name does not leave the first one gone. */
int eng_magic_del(eng_session *s, const char *magic, const char *rest, eng_source *src, eng_error *err)
{
    int count = 0;
    for (int pass = 0; pass < 2; pass++) {
        const char *p = rest;
        count = 0;
        for (;;) {
            while (isspace((unsigned char)*p) || *p == ',')
                p++;
            if (!*p)
                break;
            const char *start = p;
            while (isalnum((unsigned char)*p) || *p == '_')
                p++;
            if (p == start || (*p && !isspace((unsigned char)*p) && *p != ','))
                return eng_fail(err, ERR_VALUE, "%%del takes names, as in %%del x gelu; got '%s'", start);
            char name[256];
            int n = (int)(p - start) < (int)sizeof name - 1 ? (int)(p - start) : (int)sizeof name - 1;
            memcpy(name, start, (size_t)n);
            name[n] = 0;
            count++;
            if (pass == 0) {
                if (deletable(s, name, err) < 0)
                    return -1;
                continue;
            }
            int g = eng_global_find(s, name, n);
            if (g < 0 || !s->globals[g].defined)
                continue; /* named twice: gone already */
            if (eng_global_delete(s, name, err))
                return -1;
            const eng_builtin *b = eng_builtin_find(name, n);
            if (b) { /* say that the built-in is back: the user asked for it, or should know */
                char line[400];
                int len = snprintf(line, sizeof line, "%s: the built-in %s is back\n", name, b->signature);
                eng_stream(s, 1, line, (size_t)(len < (int)sizeof line ? len : (int)sizeof line - 1));
            }
        }
        if (!count)
            return eng_fail(err, ERR_VALUE, "%%del needs the names to delete, as in %%del x gelu");
    }
    return 0;
}
