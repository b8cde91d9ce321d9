/* kk_devices.c — which backend the session's new tensors are made on.
 *
 * Each session starts on the device named by $KILN_DEVICE ("cpu", "sim" or "cuda"; the
 * CPU when unset, unknown or unavailable — a missing GPU never stops a kernel from
 * starting), and eng_set_current_backend changes it (%device). The choice is the
 * running session's (its eng_ctx, engine/context.h): %device in one session leaves
 * another where it was. "sim" is the simulator
 * backend (cuda/sim_backend.c): the CUDA backend's kernels on host memory, for tests.
 */
#include "engine/backend.h"
#include "engine/context.h"
#include "cuda/sim_backend.h"
#ifdef KILN_HAVE_CUDA
#include "cuda/cu_backend.h"
#include "cuda/cu_device.h"
#endif

#include <stdlib.h>
#include <string.h>

const eng_backend *eng_backend_named(const char *name, eng_error *err)
{
    if (!strcmp(name, "cpu"))
        return &cpu_backend;
    if (!strcmp(name, "sim"))
        return &sim_backend;
    if (!strcmp(name, "cuda")) {
#ifdef KILN_HAVE_CUDA
        if (cu_device_available())
            return &cuda_backend;
        eng_fail(err, ERR_RUNTIME, "no CUDA device on this machine");
#else
        eng_fail(err, ERR_RUNTIME, "this build has no CUDA backend (built without the CUDA toolkit)");
#endif
        return NULL;
    }
    eng_fail(err, ERR_VALUE, "unknown device '%s' (cpu, cuda or sim)", name);
    return NULL;
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
