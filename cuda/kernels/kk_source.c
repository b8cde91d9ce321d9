/* kk_source.c — the built-in CUDA kernels' source text, embedded at build time, for
 * %source (engine/lang/magic_source.c, which names kk_source_text by symbol as the
 * engine names backends: never by include). The files are the very ones nvcc compiles
 * for the GPU and g++ compiles against the simulator (cuda/kernels/cuda_kernels.cu,
 * cuda/sim_backend_kernels.cc), so what %source shows is what runs. */
#include <string.h>

const char *kk_source_text(const char *file);

__asm__(".section .rodata\n"
        ".balign 16\n"
        "kk_src_elementwise:\n"
        ".incbin \"cuda/kernels/kk_elementwise.cuh\"\n"
        ".byte 0\n"
        ".balign 16\n"
        "kk_src_reduce:\n"
        ".incbin \"cuda/kernels/kk_reduce.cuh\"\n"
        ".byte 0\n"
        ".previous\n");
extern const char kk_src_elementwise[] __asm__("kk_src_elementwise");
extern const char kk_src_reduce[] __asm__("kk_src_reduce");

/* the text of cuda/kernels/<file> ("kk_elementwise.cuh", "kk_reduce.cuh"), or NULL */
const char *kk_source_text(const char *file)
{
    if (!strcmp(file, "kk_elementwise.cuh"))
        return kk_src_elementwise;
    if (!strcmp(file, "kk_reduce.cuh"))
        return kk_src_reduce;
    return NULL;
}
