# qnext - a terminal chat for Qwen3-Next-80B-A3B on the CPU.
# GNU make.  `make` builds ./qnext, `make check` runs every test, `make deps`
# installs the Debian packages, `make bench` prints speed figures.
VERSION = 0.1
PREFIX = /usr/local
MANPREFIX = $(PREFIX)/share/man
DATADIR = $(PREFIX)/share/qnext
PKG_CONFIG = pkg-config
# BUILD: release | debug | asan | tsan
BUILD = release
-include config.mk

O    = build/$(BUILD)
PKGS = ncursesw readline openblas sqlite3 libpcre2-8 libutf8proc jansson libcrypto libmicrohttpd \
	libcurl
DEB_PKGS = build-essential pkg-config clang clang-format groff-base tmux libncurses-dev libreadline-dev \
	libopenblas-dev libsqlite3-dev libpcre2-dev libutf8proc-dev libjansson-dev libssl-dev \
	libmicrohttpd-dev libcurl4-openssl-dev curl python3

ifeq ($(filter deps clean,$(MAKECMDGOALS)),)
MISSING := $(shell for p in $(PKGS); do $(PKG_CONFIG) --exists $$p || echo $$p; done)
ifneq ($(MISSING),)
$(error missing libraries: $(MISSING); run `make deps` (installs: $(DEB_PKGS)))
endif
PKG_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(PKGS))
PKG_LIBS   := $(shell $(PKG_CONFIG) --libs $(PKGS))
endif

WARN = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
       -Wpointer-arith -Wwrite-strings -Wvla -Wformat=2 -Wno-unused-parameter
OPT_release = -O2 -g -DNDEBUG
OPT_debug   = -O0 -g3
OPT_asan    = -O1 -g3 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
OPT_tsan    = -O1 -g3 -fsanitize=thread
ARCH       = -march=x86-64-v2 -mtune=generic
ISA_avx2   = -mavx2 -mfma -mf16c
ISA_avx512 = -mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni
CPPFLAGS = -D_GNU_SOURCE -DVERSION=\"$(VERSION)\" -DDATADIR=\"$(DATADIR)\" -Iinclude
CFLAGS   = -std=c11 -pthread $(WARN) $(OPT_$(BUILD)) $(ARCH)
LDFLAGS_ALL = $(filter -fsanitize=%,$(OPT_$(BUILD)))
LDLIBS   = $(PKG_LIBS) -lm -pthread

LIB_SRC := $(filter-out src/main.c,$(wildcard src/*.c tools/*.c ui/*.c \
	engine/*.c engine/kernels/*.c))
TESTS   = $(patsubst %.c,$(O)/%,$(wildcard tests/test-*.c))
FUZZERS = $(patsubst tests/%.c,build/fuzz/%,$(wildcard tests/fuzz-*.c))

all: qnext

qnext: $(O)/qnext
	cp -f $< $@

$(O)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(PKG_CFLAGS) $(CFLAGS) $(ISA_$(*F)) -MMD -MP -c -o $@ $<
$(O)/libqnext.a: $(LIB_SRC:%.c=$(O)/%.o)
	$(AR) rcs $@ $^
$(O)/qnext: $(O)/src/main.o $(O)/libqnext.a
	$(CC) $(CFLAGS) $(LDFLAGS_ALL) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(O)/tests/%: $(O)/tests/%.o $(O)/libqnext.a
	$(CC) $(CFLAGS) $(LDFLAGS_ALL) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Tests run from the repository root; OpenBLAS's own pool stays off (ours splits the work).
# Saved engine states (docs/resume.md) and settings: the run's own, never the user's.
TEST_ENV = OPENBLAS_NUM_THREADS=1 QNEXT_BIN=$(CURDIR)/$(O)/qnext XDG_CACHE_HOME=$(CURDIR)/$(O)/test-cache \
	XDG_CONFIG_HOME=$(CURDIR)/$(O)/test-config
test: $(TESTS) $(O)/qnext
	@rm -rf $(O)/test-cache; fail=0; for t in $(TESTS); do echo "== $$t"; $(TEST_ENV) $$t || fail=1; done; \
	for s in tests/cli-*.sh; do [ -f "$$s" ] || continue; echo "== $$s"; \
	    $(TEST_ENV) sh $$s || fail=1; done; exit $$fail

check: lint
	$(MAKE) test
	$(MAKE) BUILD=asan test
	$(MAKE) tsan-test
	$(MAKE) fuzz-run

# The threaded parts (queue, engine thread, worker pool) under ThreadSanitizer.
TSAN_TESTS = test-queue test-engine test-forward test-pool test-xcache test-log
tsan-test:
	$(MAKE) BUILD=tsan $(TSAN_TESTS:%=build/tsan/tests/%)
	@for t in $(TSAN_TESTS); do echo "== tsan $$t"; \
	    TSAN_OPTIONS=halt_on_error=1 OPENBLAS_NUM_THREADS=1 build/tsan/tests/$$t || exit 1; done

# Fuzz harnesses (libFuzzer, clang).  `make fuzz-run` does a fixed number of runs.
FUZZ_RUNS = 20000
# The parsers under fuzz only need these sources (no kernels, no threads).
FUZZ_SRC = src/util.c src/thread-role.c src/paths.c src/log.c engine/safetensors.c engine/config.c \
	engine/tokenizer.c src/store.c engine/think.c engine/remote.c tools/oai.c src/settings.c
build/fuzz/%: tests/%.c $(FUZZ_SRC)
	@mkdir -p $(@D)
	clang $(CPPFLAGS) $(PKG_CFLAGS) -DFUZZING -g -O1 -fsanitize=address,undefined,fuzzer \
	    -fno-sanitize-recover=all \
	    -o $@ $< $(FUZZ_SRC) $(LDLIBS)
# `make fuzz`: each harness for FUZZ_SECONDS, starting from the corpus kept in
# tests/fuzz/NAME and adding the inputs that reach new code there (commit the
# ones worth keeping; `git clean tests/fuzz` drops the rest).
FUZZ_SECONDS = 300
fuzz: $(FUZZERS)
	@for f in $(FUZZERS); do n=$$(basename $$f); echo "== $$n ($(FUZZ_SECONDS) s)"; \
	    mkdir -p tests/fuzz/$$n; \
	    $$f -max_total_time=$(FUZZ_SECONDS) -max_len=65536 tests/fuzz/$$n \
	        >build/fuzz/$$n-long.log 2>&1 || { tail -40 build/fuzz/$$n-long.log; exit 1; }; \
	    echo "$$n: $$(grep -o 'exec/s: [0-9]*' build/fuzz/$$n-long.log | tail -1)," \
	        "$$(ls tests/fuzz/$$n | wc -l) corpus files"; done
fuzz-run: $(FUZZERS)
	@for f in $(FUZZERS); do n=$$(basename $$f); echo "== $$n ($(FUZZ_RUNS) runs)"; \
	    mkdir -p build/fuzz/corpus-$$n; \
	    $$f -runs=$(FUZZ_RUNS) -max_len=65536 build/fuzz/corpus-$$n tests/fuzz/$$n \
	        >build/fuzz/$$n.log 2>&1 || { tail -40 build/fuzz/$$n.log; exit 1; }; \
	    echo "$$n: 1 passed, 0 failed"; done

# Start qnext on the model it finds, else on the bundled tiny test model.
run: qnext
	@if ./qnext which-model >/dev/null 2>&1; then ./qnext; else \
	    echo "qnext: no model found; using the tiny test model (random weights)"; \
	    ./qnext -m share/tiny; fi

# The small golden model, a synthetic one in the real layout (`mkmodel --tiny`), the tokenizer.
bench: $(O)/qnext $(O)/tests/bench-tokenizer
	OPENBLAS_NUM_THREADS=1 $(O)/qnext bench -m tests/data/small $(BENCH_ARGS)
	@[ -f build/bench-tiny/config.json ] || $(O)/qnext mkmodel -o build/bench-tiny --tiny
	OPENBLAS_NUM_THREADS=1 $(O)/qnext bench -m build/bench-tiny $(BENCH_ARGS)
	$(O)/tests/bench-tokenizer

# qnext beside llama.cpp on the same weights, interleaved, one table
# (docs/BENCHMARKS.md, "Side by side with llama.cpp"): scripts/bench-peer.sh
# says what to do and exits 0 when llama.cpp or the GGUFs are missing.
#   make bench-peer PEER_MODEL=DIR LLAMA_CPP=DIR PEER_GGUFS="A.gguf B.gguf" [ROUNDS=3]
#        [THREADS="1 2"] [REPS=3] [GEN=32] [BUSY=1] [PEER_OUT=DIR]
bench-peer: $(O)/qnext
	QNEXT_BIN=$(CURDIR)/$(O)/qnext PEER_MODEL="$(PEER_MODEL)" LLAMA_CPP="$(LLAMA_CPP)" \
	    PEER_GGUFS="$(PEER_GGUFS)" ROUNDS="$(ROUNDS)" THREADS="$(THREADS)" REPS="$(REPS)" \
	    GEN="$(GEN)" BUSY="$(BUSY)" PEER_OUT="$(PEER_OUT)" bash scripts/bench-peer.sh

deps:
	@if [ "$$(id -u)" = 0 ]; then \
	    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $(DEB_PKGS); \
	else \
	    echo "run as root:  sudo apt-get install -y $(DEB_PKGS)"; \
	fi

install: all
	mkdir -p $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(MANPREFIX)/man1 $(DESTDIR)$(DATADIR)
	cp -f $(O)/qnext $(DESTDIR)$(PREFIX)/bin/
	sed 's/@VERSION@/$(VERSION)/g' man/qnext.1 > $(DESTDIR)$(MANPREFIX)/man1/qnext.1
	cp -Rf share/. $(DESTDIR)$(DATADIR)/
uninstall:
	rm -rf $(DESTDIR)$(PREFIX)/bin/qnext $(DESTDIR)$(MANPREFIX)/man1/qnext.1 $(DESTDIR)$(DATADIR)
clean:
	rm -rf build qnext

lint:
	@for m in man/*.[1-9]; do out=$$(groff -mdoc -ww -z $$m 2>&1); \
	    [ -z "$$out" ] || { echo "$$m: $$out"; exit 1; }; done
	@dups=$$(find src tools ui engine -name '*.c' -printf '%f\n' | sort | uniq -d); \
	    test -z "$$dups" || { echo "lint: two files named $$dups (build objects would clash)"; \
	    exit 1; }
	@! grep -l '<curses.h>\|<readline/' $$(find src tools engine -name '*.c') /dev/null
	@for h in include/*.h; do echo "#include \"$${h#include/}\"" | \
	    $(CC) $(CPPFLAGS) $(PKG_CFLAGS) -std=c11 -fsyntax-only -x c - || exit 1; done
	@sh scripts/check-doc-refs.sh
	@sh scripts/check-layers.sh >/dev/null || sh scripts/check-layers.sh
	@bad=$$(for f in $(FORMAT_FILES); do clang-format $$f | cmp -s - $$f || echo $$f; done); \
	    test -z "$$bad" || { echo "lint: not formatted (make format): $$bad"; exit 1; }
	@echo "lint: 1 passed, 0 failed"
FORMAT_FILES = $(shell find src tools ui engine include tests -name '*.[ch]')
format:
	clang-format -i $(FORMAT_FILES)

.PHONY: all qnext run test check tsan-test bench bench-peer deps install uninstall clean lint format fuzz fuzz-run
.SECONDARY:
-include $(shell find build -name '*.d' 2>/dev/null)
