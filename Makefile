# Kiln build. `make` builds build/kiln; `make test` runs every test; `make asan` builds
# with AddressSanitizer and UBSan (into build-asan/) and runs the suite under it;
# `make bench` runs the benchmarks; `make install` installs the kernelspec `kiln`.
#
# CUDA: when the CUDA toolkit is found (nvcc on PATH or CUDA_HOME), the CUDA parts are
# compiled in and KILN_HAVE_CUDA is defined; without it the build is CPU-only and says so.
# Force either way with `make CUDA=0` or `make CUDA=1`.

BUILD   ?= build
CC      ?= cc
PYTHON  ?= $(if $(wildcard .venv/bin/python),$(CURDIR)/.venv/bin/python,python3)
OPT     ?= -O2
WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
# WERROR=1 (CI) turns every warning into an error
WERROR  ?= 0
ifeq ($(WERROR),1)
  WARN += -Werror
endif
CFLAGS  += -std=gnu11 $(OPT) -g $(WARN) -fopenmp -I. -MMD -MP
LDLIBS  += -lzmq -ljansson -lsodium -lopenblas -lz -lm -lpthread -fopenmp

# parts of cuda/ that need no CUDA and are built always: the caching allocator's logic
CUDA_ALWAYS := cuda/cu_alloc.c
# the CUDA simulator and the kernel disk cache: in every build, CPU-only too
SIM_SRC := $(wildcard cuda/sim/*.c) cuda/kcache.c
CUDA_ALWAYS += $(SIM_SRC)
# the built-in CUDA kernels' host side, device choice and the simulator backend (the
# kernels compiled by the host C++ compiler against the simulator): in every build
CUDA_ALWAYS += cuda/kernels/kk_dispatch.c cuda/kernels/kk_order.c cuda/sim_backend.c cuda/kernels/kk_source.c
KK_SIM_OBJ := $(BUILD)/cuda/sim_backend_kernels.o
LDLIBS  += -lstdc++
CXX     ?= g++
KK_CXXFLAGS = -std=c++17 $(OPT) -g -Wall -Wextra -Wshadow -Wno-unused-parameter $(filter -Werror,$(WARN)) -fopenmp -I. -MMD -MP
LDLIBS  += -ldl

CUDA_HOME ?= $(or $(patsubst %/bin/nvcc,%,$(shell command -v nvcc 2>/dev/null)),/usr/local/cuda)
CUDA    ?= $(if $(wildcard $(CUDA_HOME)/include/cuda_runtime.h),1,0)
ifeq ($(CUDA),1)
  CFLAGS += -DKILN_HAVE_CUDA -I$(CUDA_HOME)/include
  LDLIBS += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcudart
  CUDA_SRC := $(filter-out $(CUDA_ALWAYS),$(wildcard cuda/*.c))
  # the built-in kernels for the GPU: sm_90 code plus compute_90 PTX for newer devices
  NVCC    ?= $(CUDA_HOME)/bin/nvcc
  KK_CUDA_OBJ := $(BUILD)/cuda/kernels/cuda_kernels.o
  CUDA_MSG := CUDA toolkit found at $(CUDA_HOME): building with the CUDA backend
else
  CUDA_SRC :=
  CUDA_MSG := CUDA toolkit not found: CPU-only build
endif

# OpenBLAS's cblas.h lives in /usr/include/<triplet>/ on Debian
CFLAGS += $(shell pkg-config --cflags openblas 2>/dev/null || echo -I/usr/include/x86_64-linux-gnu/openblas-pthread)

LIB_SRC  := $(wildcard engine/*/*.c) $(wildcard cpu/*.c) $(wildcard protocol/*.c) \
            $(filter-out kernel/main.c,$(wildcard kernel/*.c)) $(CUDA_ALWAYS) $(CUDA_SRC)
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o) $(KK_SIM_OBJ) $(KK_CUDA_OBJ)
MAIN_OBJ := $(BUILD)/kernel/main.o
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

.PHONY: test-gpu bench-gpu
.PHONY: test-conformance
.PHONY: test-abuse test-layers asan-ci
.PHONY: all test test-unit test-lang test-numpy test-kernel test-fuzz test-browser asan bench \
        install uninstall clean fuzz cuda-info test-train
all: cuda-info $(BUILD)/kiln

cuda-info:
	@echo "kiln: $(CUDA_MSG)"

$(BUILD)/kiln: $(MAIN_OBJ) $(BUILD)/libkiln.a
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(LDLIBS)

# the simulator's driver embeds its headers (.incbin), which -MMD does not see
$(BUILD)/cuda/sim/sim_driver.o: cuda/sim/kiln_sim.h cuda/sim/sim_runtime.h
$(BUILD)/cuda/sim/sim_check.o: cuda/sim/sim_runtime.c cuda/sim/sim_runtime.h
# %source's embedded texts (.incbin, likewise): the built-in kernels and the op table
$(BUILD)/cuda/kernels/kk_source.o: cuda/kernels/kk_elementwise.cuh cuda/kernels/kk_reduce.cuh
$(BUILD)/engine/lang/magic_source.o: engine/tensor/ops.def

$(BUILD)/libkiln.a: $(LIB_OBJ)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(KK_SIM_OBJ): cuda/sim_backend_kernels.cc
	@mkdir -p $(dir $@)
	$(CXX) $(KK_CXXFLAGS) -c -o $@ $<

$(BUILD)/cuda/kernels/cuda_kernels.o: cuda/kernels/cuda_kernels.cu $(wildcard cuda/kernels/*.cuh cuda/kernels/*.h) $(wildcard numeric/*.h) engine/tensor/ops.def
	@mkdir -p $(dir $@)
	$(NVCC) -std=c++17 -O3 -gencode arch=compute_90,code=[sm_90,compute_90] -I. -Xcompiler -Wall,-Wextra,-Wno-unused-parameter -c -o $@ $<

$(BUILD)/tests/test_conformance: tests/conformance/test_conformance.c $(BUILD)/libkiln.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libkiln.a $(LDFLAGS) $(LDLIBS)

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libkiln.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libkiln.a $(LDFLAGS) $(LDLIBS)

# ---- tests ---------------------------------------------------------------------------
test: all test-layers test-unit test-conformance test-lang test-numpy test-kernel test-abuse test-fuzz test-browser test-train
	@echo "make test: all passed ($(BUILD))"

# the engine's layers from the includes: ranks and no folder-level cycle (issue 12)
test-layers:
	$(PYTHON) tests/layers/check_includes.py .

test-unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done

# every op on the CPU backend and on the simulator backend (the CUDA kernels' logic),
# compared within tolerances (tests/conformance; KILN_DEVICE=cuda on a GPU: make test-gpu)
test-conformance: $(BUILD)/tests/test_conformance
	KILN_DEVICE=sim $(BUILD)/tests/test_conformance

test-lang: $(BUILD)/kiln
	$(PYTHON) tests/lang/run_golden.py $(BUILD)/kiln

test-numpy: $(BUILD)/kiln
	$(PYTHON) tests/numpy/run.py $(BUILD)/kiln

# optimisers, schedules, lr_find and fit against NumPy; fit on Fashion-MNIST (issue 6)
test-train: $(BUILD)/kiln
	KILN=$(CURDIR)/$(BUILD)/kiln $(PYTHON) -m pytest -q tests/train

test-kernel: $(BUILD)/kiln
	KILN=$(abspath $(BUILD))/kiln PYTHON=$(PYTHON) tests/kernel/run.sh

# hostile input through real clients: the kernel answers and the session survives (issue 13)
test-abuse: $(BUILD)/kiln
	KILN=$(abspath $(BUILD))/kiln PYTHON=$(PYTHON) tests/abuse/run.sh

# notebooks/02-inspect.ipynb in JupyterLab + headless Chromium (Playwright), and the
# debugger over notebooks/05-debugging.ipynb; skips only when /usr/bin/chromium is
# missing; screenshots in $(BUILD)/browser/ (02-inspect.png, 05-debugger.png)
test-browser: $(BUILD)/kiln
	KILN=$(abspath $(BUILD))/kiln PYTHON=$(PYTHON) tests/browser/run.sh

# libFuzzer over lexer, parser and checker, for a bounded time (FUZZ_SECONDS)
FUZZ_SECONDS ?= 60
# (the engine reaches the device choice and the sim backend, whose kernels are the C++
# object g++ built for kiln; it is linked as it is, not instrumented)
FUZZ_SRC := $(filter-out engine/io/npy.c engine/io/idx.c,$(wildcard engine/*/*.c)) $(wildcard cpu/*.c) $(CUDA_ALWAYS)
$(BUILD)/fuzz_parse: tests/fuzz/fuzz_parse.c $(FUZZ_SRC) $(KK_SIM_OBJ)
	@mkdir -p $(dir $@)
	clang -std=gnu11 -g -O1 -fsanitize=fuzzer,address,undefined -fopenmp -Wno-pass-failed -I. \
	  $(shell pkg-config --cflags openblas 2>/dev/null || echo -I/usr/include/x86_64-linux-gnu/openblas-pthread) \
	  -o $@ $^ engine/io/npy.c engine/io/idx.c -lopenblas -lz -lm -lpthread -ldl -lstdc++
test-fuzz: $(BUILD)/fuzz_parse
	@mkdir -p $(BUILD)/fuzz-corpus
	@echo "== libFuzzer over lexer, parser and checker for $(FUZZ_SECONDS)s"
	@$(BUILD)/fuzz_parse -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -timeout=10 \
	  -dict=tests/fuzz/kiln.dict $(BUILD)/fuzz-corpus tests/fuzz/corpus >$(BUILD)/fuzz.log 2>&1 \
	  || { tail -n 60 $(BUILD)/fuzz.log; echo "test-fuzz: the fuzzer found a crash (input saved by libFuzzer above)"; exit 1; }
	@tail -n 1 $(BUILD)/fuzz.log

# the GPU twins (tests/gpu/run.sh): test_nvrtc's GPU part, the kernel golden files and
# the backend conformance suite on the CUDA device; "no CUDA device: skipped" (exit 0)
# where there is none
$(BUILD)/tests/gpu_probe: tests/gpu/probe.c $(BUILD)/libkiln.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libkiln.a $(LDFLAGS) $(LDLIBS)
test-gpu: $(BUILD)/kiln $(BUILD)/tests/test_nvrtc $(BUILD)/tests/gpu_probe $(BUILD)/tests/test_conformance
	BUILD=$(abspath $(BUILD)) CUDA=$(CUDA) PYTHON=$(PYTHON) tests/gpu/run.sh

# ---- sanitizers ------------------------------------------------------------------------
# allocations past the machine's size must fail with MemoryError, not abort in ASan;
# LSan does not scan TLS as a root (use_tls=0): GCC 12's LeakSanitizer misreads the dynamic
# TLS of the simulator's dlopen'ed kernels (their __shared__ arrays are thread_local) on
# the OpenMP workers and crashes at exit ("Tracer caught signal 11"); what only TLS holds
# (libgomp's and glibc's per-thread data) is suppressed in tests/lsan.supp
ASAN_ENV  = ASAN_OPTIONS=allocator_may_return_null=1 LSAN_OPTIONS=use_tls=0:print_suppressions=0:suppressions=$(CURDIR)/tests/lsan.supp
ASAN_MAKE = $(MAKE) BUILD=build-asan OPT="-O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
	  LDFLAGS="-fsanitize=address,undefined" FUZZ_SECONDS=10
asan:
	$(ASAN_ENV) $(ASAN_MAKE) test
# the CI-sized part of `make asan` (.ci/run): the C unit tests, the conformance suite,
# the golden files and the hostile-input suite, under AddressSanitizer and UBSan
asan-ci:
	$(ASAN_ENV) $(ASAN_MAKE) all test-unit test-conformance test-lang test-abuse

# ---- benchmarks ----------------------------------------------------------------------
# NVRTC compile, caches and launch overhead on the GPU against CuPy and a raw
# cuLaunchKernel loop (bench/launch.c: dlopens libcuda, never linked); skips without a GPU
$(BUILD)/bench/launch: bench/launch.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -O2 $(WARN) -o $@ $< -ldl
$(BUILD)/bench/nvrtc_bench: bench/nvrtc_bench.c $(BUILD)/libkiln.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libkiln.a $(LDFLAGS) $(LDLIBS)
# the raw cuBLAS peer of gpu_ops.py's matmul metrics, and the host cost of a launch by API
# path (bench-only programs: they link cuBLAS / are built by nvcc)
$(BUILD)/bench/cublas_raw: bench/cublas_raw.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -O2 $(WARN) -I$(CUDA_HOME)/include -o $@ $< -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublas -lcudart
$(BUILD)/bench/launch_paths: bench/launch_paths.cu
	@mkdir -p $(dir $@)
	$(NVCC) -O2 -gencode arch=compute_90,code=[sm_90,compute_90] -o $@ $<
bench-gpu: $(BUILD)/kiln $(BUILD)/bench/launch $(BUILD)/bench/nvrtc_bench $(BUILD)/tests/gpu_probe \
           $(BUILD)/bench/cublas_raw $(BUILD)/bench/launch_paths
	$(PYTHON) bench/kernels_gpu.py $(BUILD)/kiln
	$(PYTHON) bench/gpu_ops.py $(BUILD)/kiln

bench: $(BUILD)/kiln
	$(PYTHON) bench/run.py $(BUILD)/kiln
	$(PYTHON) bench/kernel.py $(BUILD)/kiln

# ---- kernelspec ----------------------------------------------------------------------
install: $(BUILD)/kiln
	$(PYTHON) kernel/kernelspec/install.py $(CURDIR)/$(BUILD)/kiln

uninstall:
	jupyter kernelspec uninstall -y kiln || $(PYTHON) -m jupyter kernelspec uninstall -y kiln

clean:
	rm -rf build build-asan

-include $(LIB_OBJ:.o=.d) $(MAIN_OBJ:.o=.d)
