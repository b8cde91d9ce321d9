/* backend.c — the registry of backends: which ones this build links, which one the
 * session's new tensors are made on.
 *
 * The session starts on the device named by $KILN_DEVICE ("cpu", "sim" or "cuda"; the
 * CPU when unset, unknown or unusable — a missing GPU never stops a kernel from
 * starting), and eng_set_current_backend changes it (%device). The choice is the
 * running session's (its eng_ctx, engine/base/context.h): %device in one session leaves
 * another where it was. "sim" is the simulator
 * backend: the CUDA backend's kernels on host memory, for tests. The engine knows the
 * backends by their eng_backend symbols alone (the dependency points from cpu/ and
 * cuda/ to engine/tensor/backend.h, never back).
 */
#include "engine/tensor/backend.h"
#include "engine/base/context.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const eng_backend sim_backend;
#ifdef KILN_HAVE_CUDA
extern const eng_backend cuda_backend;
#endif

static const eng_backend *const linked[] = {
    &cpu_backend,
    &sim_backend,
#ifdef KILN_HAVE_CUDA
    &cuda_backend,
#endif
};

const eng_backend *eng_backend_linked(const char *name)
{
    for (size_t i = 0; i < sizeof linked / sizeof linked[0]; i++)
        if (!strcmp(linked[i]->name, name))
            return linked[i];
    return NULL;
}

const eng_backend *eng_backend_named(const char *name, eng_error *err)
{
    const eng_backend *be = eng_backend_linked(name);
    if (!be) {
        if (!strcmp(name, "cuda"))
            eng_fail(err, ERR_RUNTIME, "this build has no CUDA backend (built without the CUDA toolkit)");
        else
            eng_fail(err, ERR_VALUE, "unknown device '%s' (cpu, cuda or sim)", name);
        return NULL;
    }
    if (be->usable) {
        eng_error e = {0};
        if (be->usable(&e)) {
            eng_fail(err, e.kind ? e.kind : ERR_RUNTIME, "%s", e.msg);
            return NULL;
        }
    }
    return be;
}

const eng_backend *eng_current_backend(void)
{
    eng_ctx *c = eng_ctx_current();
    if (!c->device) {
        const char *env = getenv("KILN_DEVICE");
        const eng_backend *be = env && *env ? eng_backend_named(env, NULL) : NULL;
        c->device = be ? be : &cpu_backend;
    }
    return c->device;
}

void eng_set_current_backend(const eng_backend *be)
{
    eng_ctx_current()->device = be ? be : &cpu_backend;
}
