# jottafs — GNU Makefile.
#
#   make                  build $(BUILD)/jottafs
#   make check            install missing Debian packages (as root), build, run the
#                         unit tests (plain, then under ASan/UBSan in $(SANBUILD)),
#                         then the integration tests
#   make unit | unit-san | integration | bench | lint | demo | install | clean | deps
#
# Variables: BUILD (object directory, default build), PREFIX, DESTDIR,
# SANITIZE=address,undefined (sanitizer build), CI=true (warnings are errors),
# PYTEST_ARGS (extra pytest arguments, e.g. -k name), BENCH_ARGS (e.g. --quick).
# Objects, dependency files and test binaries live under $(BUILD), so several
# builds (plain, sanitized) can sit side by side.

VERSION  := 0.1.0
PREFIX   ?= /usr/local
BUILD    ?= build
PYTHON   ?= /usr/bin/python3
PKGS     := fuse3 libcurl libcjson libcrypto expat sqlite3

CC       ?= cc
CFLAGS   ?= -O2 -g
WARN     := -Wall -Wextra -Wshadow -Wformat=2 -Wformat-security -Wstrict-prototypes \
            -Wmissing-prototypes -Wpointer-arith -Wwrite-strings -Wvla \
            -Wnull-dereference -Wdouble-promotion -Wno-unused-parameter
ifeq ($(CI),true)
WARN     += -Werror
endif
ifneq ($(SANITIZE),)
SANFLAGS := -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
endif

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

ALL_CPPFLAGS := -I. -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -DFUSE_USE_VERSION=314 \
                -DJOTTAFS_VERSION='"$(VERSION)"' -DJOTTAFS_DATADIR='"$(PREFIX)/share/jottafs"' \
                $(PKG_CFLAGS) $(CPPFLAGS)
ALL_CFLAGS   := -std=gnu11 $(WARN) -pthread -fstack-protector-strong $(SANFLAGS) $(CFLAGS)
ALL_LDFLAGS  := -pthread $(SANFLAGS) $(LDFLAGS)
LIBS         := $(PKG_LIBS) -lm

# Every .c file in the module directories is part of the library; fs/main.c holds main().
LIBSRC   := $(sort $(wildcard lib/*.c net/*.c auth/*.c cache/*.c) $(filter-out fs/main.c,$(wildcard fs/*.c)))
LIBOBJ   := $(LIBSRC:%.c=$(BUILD)/%.o)
LIBA     := $(BUILD)/libjottafs.a
BIN      := $(BUILD)/jottafs

UNITSRC  := $(sort $(wildcard tests/unit/test_*.c))
UNITBIN  := $(UNITSRC:tests/unit/%.c=$(BUILD)/tests/%)
FUZZSRC  := $(sort $(wildcard tests/fuzz/fuzz_*.c))

.PHONY: tsan all check unit unit-san integration bench lint demo demo-stop install uninstall clean deps fuzz fuzz-targets
.DELETE_ON_ERROR:

all: $(BIN)

$(BUILD)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

$(LIBA): $(LIBOBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(BIN): $(BUILD)/fs/main.o $(LIBA)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/tests/%: tests/unit/%.c $(LIBA)
	@mkdir -p $(@D)
	$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -MMD -MP -o $@ $< $(LIBA) $(ALL_LDFLAGS) $(LIBS) -lcmocka

# Installs the Debian packages the build and the tests need when run as root;
# otherwise prints the exact command and fails.
deps:
	@sh tests/deps.sh

# Unit tests first (fast, pure modules; then again sanitized, unless this
# build already is), then the integration tests that mount, then the static
# checks (man page, cppcheck).
check: deps
	@$(MAKE) --no-print-directory all unit
	$(if $(SANITIZE),,@$(MAKE) --no-print-directory unit-san)
	@$(MAKE) --no-print-directory integration
	@$(MAKE) --no-print-directory lint

unit: $(UNITBIN)
	@set -e; n=0; for t in $(UNITBIN); do echo "== $$t"; $$t; n=$$((n+1)); done; \
	 [ $$n -gt 0 ] || { echo "unit: no unit test programs found" >&2; exit 1; }

# The unit tests again under AddressSanitizer (with LeakSanitizer) and
# UBSan, in their own object directory: leaks and undefined behaviour fail.
SANBUILD ?= build-san
unit-san:
	@$(MAKE) --no-print-directory BUILD=$(SANBUILD) SANITIZE=address,undefined unit

# ThreadSanitizer: the unit tests, then a mount workload (write promises,
# reads, namespace operations) with the daemon built the same way. A report
# from a unit program fails it at once; the daemon's reports are written to
# $(TSANBUILD)/reports and fail the run after pytest. Not part of check (it
# takes about 10 minutes on 2 cores).
TSANBUILD ?= build-tsan
TSAN_TESTS ?= tests/integration/test_write_promises.py tests/integration/test_mount_read.py \
	      tests/integration/test_write_namespace.py
tsan:
	@$(MAKE) --no-print-directory BUILD=$(TSANBUILD) SANITIZE=thread unit $(TSANBUILD)/jottafs
	rm -rf $(TSANBUILD)/reports && mkdir -p $(TSANBUILD)/reports
	TSAN_OPTIONS="log_path=$(abspath $(TSANBUILD))/reports/tsan exitcode=0" \
	  JOTTAFS_BIN=$(abspath $(TSANBUILD))/jottafs $(PYTHON) -m pytest -p no:cacheprovider -q $(TSAN_TESTS)
	@if ls $(TSANBUILD)/reports/tsan.* >/dev/null 2>&1; then \
	  cat $(TSANBUILD)/reports/tsan.*; echo "tsan: the daemon reported races" >&2; exit 1; fi

# pytest exits 5 when it collected no test: that is a failure here too. The
# 25 slowest tests are listed at the end, to see where make check spends its time.
integration: $(BIN)
	JOTTAFS_BIN=$(abspath $(BIN)) $(PYTHON) -m pytest -p no:cacheprovider -ra --durations=25 tests/integration $(PYTEST_ARGS)

bench: $(BIN)
	JOTTAFS_BIN=$(abspath $(BIN)) $(PYTHON) tests/bench/run.py $(BENCH_ARGS)

lint:
	groff -man -Tutf8 -ww -z man/jottafs.1
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability,performance \
	  --inline-suppr --std=c11 -I. -D_GNU_SOURCE --suppress=missingIncludeSystem \
	  lib net auth cache fs

# libFuzzer targets: the library is built with coverage instrumentation in its
# own object directory, then each tests/fuzz/fuzz_*.c is linked against it and
# run for FUZZTIME seconds (0: build only), with tests/fuzz/<name>.dict and the
# seeds in tests/fuzz/<name>_seeds when they exist. The corpus grows in
# $(FUZZBUILD)/fuzz/corpus-<name> from one run to the next; a crash, a leak or
# a sanitizer report fails the run and leaves its input in $(FUZZBUILD)/fuzz/.
# FUZZ_ARGS adds libFuzzer options (e.g. -jobs=2). A long run of one target:
#   make fuzz FUZZTIME=600 FUZZSRC=tests/fuzz/fuzz_auth.c
FUZZBUILD ?= build-fuzz
FUZZTIME  ?= 10
FUZZ_ARGS ?=
fuzz:
	$(MAKE) --no-print-directory BUILD=$(FUZZBUILD) CC=clang \
	  SANITIZE=fuzzer-no-link,address,undefined fuzz-targets
	@set -e; [ "$(FUZZTIME)" -gt 0 ] || exit 0; \
	 for f in $(FUZZSRC); do n=$$(basename $$f .c); s=$${n#fuzz_}; \
	  d=tests/fuzz/$$s.dict; c=$(FUZZBUILD)/fuzz/corpus-$$s; mkdir -p $$c; \
	  echo "== $$n: $(FUZZTIME) s"; \
	  $(FUZZBUILD)/fuzz/$$n -max_total_time=$(FUZZTIME) -print_final_stats=1 \
	    -artifact_prefix=$(FUZZBUILD)/fuzz/$$n- $$( [ -f $$d ] && echo -dict=$$d ) \
	    $(FUZZ_ARGS) $$c $$( [ -d tests/fuzz/$${s}_seeds ] && echo tests/fuzz/$${s}_seeds ) \
	    > $(FUZZBUILD)/fuzz/$$n.log 2>&1 || { tail -n 60 $(FUZZBUILD)/fuzz/$$n.log; \
	    echo "fuzz: $$n failed (log: $(FUZZBUILD)/fuzz/$$n.log)" >&2; exit 1; }; \
	  grep -E '^#[0-9]+.*DONE|^stat::number_of_executed_units' $(FUZZBUILD)/fuzz/$$n.log; \
	 done

fuzz-targets: $(LIBA)
	@mkdir -p $(BUILD)/fuzz
	@for f in $(FUZZSRC); do n=$$(basename $$f .c); \
	  echo "$(CC) $$f -> $(BUILD)/fuzz/$$n"; \
	  $(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -fsanitize=fuzzer -o $(BUILD)/fuzz/$$n $$f \
	    $(LIBA) $(ALL_LDFLAGS) $(LIBS) || exit 1; done

# The main job: the bundled emulator with sample files, a login, and a mount at ./demo-mnt.
demo: $(BIN)
	JOTTAFS_BIN=$(abspath $(BIN)) sh tests/demo.sh

demo-stop:
	sh tests/demo.sh stop

install: $(BIN)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/jottafs
	install -m 0644 man/jottafs.1 $(DESTDIR)$(PREFIX)/share/man/man1/jottafs.1
	install -d $(DESTDIR)$(PREFIX)/share/jottafs
	install -m 0644 share/services.json $(DESTDIR)$(PREFIX)/share/jottafs/services.json

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/jottafs $(DESTDIR)$(PREFIX)/share/man/man1/jottafs.1 \
	  $(DESTDIR)$(PREFIX)/share/jottafs/services.json

clean:
	rm -rf $(BUILD)

-include $(LIBOBJ:.o=.d) $(BUILD)/fs/main.d $(UNITBIN:=.d)
