/* probe.c — says whether this machine has a CUDA device, through cuda/cu_device.h:
 * prints the device ("NVIDIA H100 80GB HBM3 (sm_90, 132 SMs, 79.1 GiB)") and exits 0;
 * prints "no CUDA device" and exits 3; a CPU-only build prints so and exits 4.
 * tests/gpu/run.sh runs it first. */
#include <stdio.h>
#ifdef KILN_HAVE_CUDA
#include "cuda/cu_device.h"
#endif

int main(void)
{
#ifdef KILN_HAVE_CUDA
    char buf[320];
    cu_device_describe(buf, sizeof buf);
    puts(buf);
    return cu_device_available() ? 0 : 3;
#else
    puts("CPU-only build (no CUDA toolkit)");
    return 4;
#endif
}
