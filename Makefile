# credit-auth gateway.  `make help` lists the targets.
SHELL      := /bin/bash
ROOT       := $(CURDIR)
BUILD      := $(ROOT)/build
NGX_SRC    := /usr/share/nginx/src
CC         ?= cc

# Debian's hardening flags (dpkg-buildflags(1), hardening=+all: stack
# protector, fortify, relro, bindnow) unless the caller sets its own, as a
# distribution build does.  -Werror only when asked: `make WERROR=1` (CI);
# a newer compiler's new warning must not break a distribution build.
BUILDFLAGS := DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get
ifeq ($(origin CPPFLAGS),undefined)
CPPFLAGS := $(shell $(BUILDFLAGS) CPPFLAGS 2>/dev/null)
endif
ifeq ($(origin CFLAGS),undefined)
CFLAGS := $(shell $(BUILDFLAGS) CFLAGS 2>/dev/null || echo -g -O2)
endif
ifeq ($(origin LDFLAGS),undefined)
LDFLAGS := $(shell $(BUILDFLAGS) LDFLAGS 2>/dev/null)
endif
WERROR     ?=
CA_CFLAGS  := $(CPPFLAGS) $(CFLAGS) -std=gnu11 -fPIC -Wall -Wextra \
              $(if $(filter 1,$(WERROR)),-Werror) \
              -Wno-unused-parameter -Ilib $(EXTRA_CFLAGS)
# nginx's configure adds -Werror itself; -Wno-error after it undoes that.
NGX_CC_OPT := $(CFLAGS) $(CPPFLAGS) -fPIC \
              $(if $(filter 1,$(WERROR)),,-Wno-error) $(MODULE_CFLAGS)
NGX_LD_OPT := $(LDFLAGS) -fPIC $(MODULE_LDFLAGS)
# Nothing at run time uses libjwt (docs/keys.md, "Why not libjwt"): only
# test_token links it, to show why.
LDLIBS     := -lhiredis -ljansson -lssl -lcrypto
PYTHON     := /usr/bin/python3

DEB_PKGS := nginx nginx-dev libjwt-dev libhiredis-dev libjansson-dev \
            libssl-dev redis-server libcmocka-dev python3-pytest python3-jwt \
            python3-redis python3-cryptography python3-requests wrk \
            openssl curl valgrind tzdata clang-14 libclang-rt-14-dev \
            chromium fonts-wqy-microhei prometheus libcurl4-openssl-dev \
            postgresql-15 python3-psycopg2 golang-go golang-golang-x-mod-dev
# `make build` alone needs these (dpkg-dev: dpkg-buildflags); `make deps
# DEPS=build` installs only them (the container's builder stage).
BUILD_PKGS := make gcc libc6-dev dpkg-dev nginx-dev libhiredis-dev \
              libjansson-dev libssl-dev libcurl4-openssl-dev libpq-dev \
              pkg-config
# `make deb` and its checks (hardening-check is in devscripts)
DEB_PKGS += $(BUILD_PKGS) debhelper devscripts lintian
DEPS     ?= all
DEPS_PKGS = $(if $(filter build,$(DEPS)),$(BUILD_PKGS),$(DEB_PKGS))

LIB_SRCS  := $(wildcard lib/*/*.c)
LIB_HDRS  := $(wildcard lib/*.h lib/*/*.h)
LIB_OBJS  := $(LIB_SRCS:lib/%.c=$(BUILD)/lib/%.o)
LIB       := $(BUILD)/libcreditauth.a
TOOLS     := $(patsubst tools/%.c,%,$(wildcard tools/credit-*.c))
TOOL_BINS := $(TOOLS:%=$(BUILD)/bin/%)
# shared by every tool: Redis and options (common.c), the CSV writer
TOOL_COMMON := $(wildcard tools/common.c tools/csvout.c)
# credit-NAME also links tools/NAME_*.c (its commands split by job)
TOOL_PARTS  = $(wildcard tools/$(1)_*.c)
# credit-consent withdraw speaks HTTPS (libcurl: proxies, TLS checks)
TOOL_LIBS_consent := -lcurl
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
MODULE    := $(BUILD)/ngx_http_credit_auth_module.so
GLUE_SRCS := $(wildcard ngx_credit_auth_module/*.c ngx_credit_auth_module/*.h)

# Everything is built again when a flag changes, and nginx configured again
# when a source file appears or goes (configure takes the list).
SRC_LIST := $(BUILD)/sources.list
CONF_KEY := $(LIB_SRCS) $(GLUE_SRCS) | $(CA_CFLAGS) | $(LDFLAGS) \
            | $(NGX_CC_OPT) | $(NGX_LD_OPT)
$(shell mkdir -p $(BUILD); echo "$(CONF_KEY)" \
    | cmp -s - $(SRC_LIST) 2>/dev/null \
    || echo "$(CONF_KEY)" > $(SRC_LIST))

.PHONY: all help deps build module lib tools test unit integration run \
        bench bench-filter bench-archive bench-transparency asan-test memcheck install clean \
        container-test deb package-test fresh-test

all: build

help:
	@echo "make deps         install the Debian packages (idempotent)"
	@echo "make build        module, engine library and tools under build/"
	@echo "make test         unit and integration tests"
	@echo "make run          the demo: Redis, demo platform, gateway (Ctrl-C);"
	@echo "                  POLICY=FILE tries another policy"
	@echo "make bench        wrk: gateway vs plain proxy, ratio"
	@echo "make bench-filter the response filter alone, MB/s"
	@echo "make bench-archive  credit-audit ship into PostgreSQL, entries/s"
	@echo "make bench-transparency  the Merkle log, proofs, statements"
	@echo "make asan-test    integration tests with an AddressSanitizer module"
	@echo "make memcheck     valgrind: no leak or invalid access in the module"
	@echo "make fuzz         libFuzzer, every harness FUZZ_SECONDS (60) each"
	@echo "make install      install module and tools (DESTDIR, PREFIX)"
	@echo "make container-test  podman-compose stack: one allowed, one refused query"
	@echo "make fresh-test   make test (and make run --check) from a clean clone"
	@echo "                  of HEAD in a fresh Debian 12 container (~10 min)"
	@echo "make deb         Debian packages in build/deb (lintian clean)"
	@echo "make package-test  install the .debs, nginx -t the README example, purge"

# Installs only what is missing, so a second run costs one dpkg query.
deps:
	@missing=$$(for p in $(DEPS_PKGS); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
	        | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	    echo "deps: installing$$(echo $$missing | sed 's/^/ /')"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get update -qq && apt-get install -y -qq $$missing >/dev/null; \
	fi
	@# Packages only: an operator's running nginx and Redis are theirs.
	@# The tests start their own on free loopback ports.

build: lib tools module

lib: $(LIB)

$(BUILD)/lib/%.o: lib/%.c $(LIB_HDRS) $(SRC_LIST)
	@mkdir -p $(dir $@)
	$(CC) $(CA_CFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

tools: $(TOOL_BINS)

.SECONDEXPANSION:
$(BUILD)/bin/credit-%: tools/credit-%.c $$(call TOOL_PARTS,$$*) $(TOOL_COMMON) \
        $(wildcard tools/*.h) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CA_CFLAGS) -Itools $(TOOL_CFLAGS_$*) $< $(call TOOL_PARTS,$*) \
	    $(TOOL_COMMON) $(LIB) $(LDFLAGS) $(LDLIBS) $(TOOL_LIBS_$*) -o $@

# credit-audit alone speaks to the PostgreSQL archive (libpq)
TOOL_CFLAGS_audit := $(shell pkg-config --cflags libpq 2>/dev/null \
                       || echo -I/usr/include/postgresql)
TOOL_LIBS_audit   := -lpq

# nginx's own build with Debian's flags (ENGINEERING §2), configured once.
$(BUILD)/nginx-src/objs/Makefile: config $(SRC_LIST)
	@rm -rf $(BUILD)/nginx-src && mkdir -p $(BUILD)
	cp -r $(NGX_SRC) $(BUILD)/nginx-src
	cd $(BUILD)/nginx-src && . ./conf_flags && \
	    ./configure --with-cc-opt="$(NGX_CC_OPT)" \
	        --with-ld-opt="$(NGX_LD_OPT)" \
	        "$${NGX_CONF_FLAGS[@]}" --add-dynamic-module=$(ROOT) >configure.log

module: $(MODULE)

$(MODULE): $(BUILD)/nginx-src/objs/Makefile $(LIB_SRCS) $(LIB_HDRS) $(GLUE_SRCS)
	$(MAKE) -s -C $(BUILD)/nginx-src -f objs/Makefile modules
	@# a new inode: nginx processes that have the old .so mapped must not
	@# see its code change under them (cp would rewrite it in place)
	cp $(BUILD)/nginx-src/objs/ngx_http_credit_auth_module.so $@.new
	mv -f $@.new $@

$(BUILD)/tests/%: tests/unit/%.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CA_CFLAGS) $< $(LIB) $(LDFLAGS) $(LDLIBS) $(TEST_LDLIBS) \
	    -lcmocka -o $@

# libjwt only to document why it cannot verify a consent token.
$(BUILD)/tests/test_token: TEST_LDLIBS := -ljwt

unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do \
	    (cd tests/unit && $$t); done

integration: build
	cd tests/integration && CREDIT_AUTH_ROOT=$(ROOT) \
	    $(PYTHON) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

test: deps
	$(MAKE) build
	$(MAKE) unit
	$(MAKE) fuzz-smoke
	$(MAKE) integration

# The same suite against a module built with AddressSanitizer, in its own
# build directory (nginx preloads libasan: see scripts/stack/proc.py).
ASAN_BUILD := $(ROOT)/build-asan
asan-test: deps
	$(MAKE) build
	$(MAKE) BUILD=$(ASAN_BUILD) module \
	    MODULE_CFLAGS="-fsanitize=address -fno-omit-frame-pointer" \
	    MODULE_LDFLAGS="-fsanitize=address"
	cd tests/integration && CREDIT_AUTH_ROOT=$(ROOT) CREDIT_AUTH_ASAN=1 \
	    CREDIT_AUTH_MODULE=$(ASAN_BUILD)/ngx_http_credit_auth_module.so \
	    $(PYTHON) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

# The module's per-request memory under valgrind memcheck (minutes).
memcheck: deps build
	$(PYTHON) tests/memcheck.py

# POLICY=FILE tries another policy (relative to this directory)
run: deps build
	$(PYTHON) scripts/demo.py $(if $(POLICY),--policy "$(POLICY)")

# Gateway ÷ plain proxy for 1/16/256 KB (cached token) and 1 KB uncached,
# Redis commands per request; then uncached verification per algorithm
# against `openssl speed`.  Several minutes: not part of `make test`.
bench: deps build bench-filter
	$(PYTHON) bench/bench.py $(BENCH_ARGS)
	$(PYTHON) bench/bench.py --durability none --scenario 1k-es256-cached \
	    $(BENCH_ARGS)
	$(PYTHON) bench/verify_speed.py --build $(BUILD)
	$(PYTHON) bench/keyreg.py --keys 100000 --tokens 5000 --duration 5

# The compose stack (docker/) built and queried for real with podman;
# needs ../shared/tools/containers setup once.  A few minutes: not part of
# `make test`.
container-test:
	$(PYTHON) scripts/container_test.py

# The README's two commands from a clean clone of HEAD in a fresh Debian 12
# container (podman; nothing but make and git installed; root without
# CAP_SYS_PTRACE; --network host): what a machine that already has the
# packages hides.  About ten minutes: not part of `make test`; needs
# ../shared/tools/containers setup once.  Log: build/fresh-test.log.
fresh-test:
	$(PYTHON) scripts/fresh_test.py

# The Debian packages (debian/), built from a copy of the tree under
# build/deb/src so the repository gets no debris; the .debs land in
# build/deb/.  lintian must have nothing to say.
DEB_DIR := $(BUILD)/deb
deb:
	rm -rf $(DEB_DIR) && mkdir -p $(DEB_DIR)/src
	tar -c --exclude-vcs --exclude=./build --exclude='./build-*' \
	    --exclude=__pycache__ . | tar -x -C $(DEB_DIR)/src
	cd $(DEB_DIR)/src && dpkg-buildpackage -us -uc -b
	lintian --fail-on error,warning $(DEB_DIR)/*.changes

# The .debs installed on this machine (apt), the README example checked
# with the packaged nginx (`nginx -t -c` on a private configuration: the
# system's nginx is never started or reloaded), then purged.
package-test: deb
	$(PYTHON) -m pytest -q -p no:cacheprovider tests/package

# credit-audit ship into a PostgreSQL of its own: entries/s, CPU per entry,
# the archive's size, a regulator's question, then Redis's memory under a
# steady load with the shipper running (docs/archive.md, "Measured").
# ARCHIVE_BENCH_ARGS="--entries 200000 --steady 60" for a shorter run.
bench-archive: build
	$(PYTHON) bench/archive_bench.py $(ARCHIVE_BENCH_ARGS)

# The Merkle log's cost in shipping, the log alone, an inclusion proof, a
# month's statement of 1,000 decisions and its verification
# (docs/transparency.md, "Measured").  TRANSPARENCY_BENCH_ARGS="--entries
# 100000" for a shorter run.
bench-transparency: build
	$(PYTHON) bench/transparency_bench.py $(TRANSPARENCY_BENCH_ARGS)

# The response filter alone (ca_filter_text), MB/s on sparse and dense
# records, masked and raw: about ten seconds.
FILTER_SPEED := $(BUILD)/bench/filter_speed
$(FILTER_SPEED): bench/filter_speed.c bench/user_time.h $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CA_CFLAGS) $< $(LIB) $(LDFLAGS) $(LDLIBS) -o $@

bench-filter: $(FILTER_SPEED)
	$(FILTER_SPEED) $(FILTER_SPEED_ARGS)

# ---- fuzzing (tests/fuzz, docs/fuzzing.md) --------------------------------
# libFuzzer harnesses, one per parser, built with clang and ASan + UBSan
# (UB aborts), linked with the engine compiled the same way under
# build/fuzz/.  `make fuzz` runs each FUZZ_SECONDS on its corpus (kept in
# build/fuzz/corpus) and seeds; `make fuzz-smoke` (part of `make test`) runs
# each a few seconds from the seeds and the committed regression inputs.
FUZZ_CC      := clang-14
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined \
                -fno-omit-frame-pointer
FUZZ_CFLAGS  := -O1 -g -std=gnu11 -Wall -Wextra \
                $(if $(filter 1,$(WERROR)),-Werror) \
                -Wno-unused-parameter $(FUZZ_SAN) -Ilib \
                -DCA_FUZZ_ROOT='"$(ROOT)"' $(EXTRA_CFLAGS)
FUZZ_BUILD   := $(BUILD)/fuzz
FUZZ_SRCS    := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_NAMES   := $(FUZZ_SRCS:tests/fuzz/fuzz_%.c=%)
FUZZ_BINS    := $(FUZZ_NAMES:%=$(FUZZ_BUILD)/bin/fuzz_%)
FUZZ_LIB_OBJS := $(LIB_SRCS:lib/%.c=$(FUZZ_BUILD)/lib/%.o)
FUZZ_SEEDS   := $(FUZZ_BUILD)/seeds/.stamp
FUZZ_SECONDS ?= 60
FUZZ_SMOKE_SECONDS ?= 3

.PHONY: fuzz fuzz-build fuzz-smoke
# built by pattern rules only: not intermediate files to delete
.SECONDARY: $(FUZZ_LIB_OBJS)

$(FUZZ_BUILD)/lib/%.o: lib/%.c $(LIB_HDRS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link \
	    -c $< -o $@

$(FUZZ_BUILD)/bin/fuzz_%: tests/fuzz/fuzz_%.c $(wildcard tests/fuzz/*.h) \
                          $(FUZZ_LIB_OBJS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer $< \
	    $(FUZZ_LIB_OBJS) $(LDFLAGS) $(LDLIBS) -o $@

$(FUZZ_SEEDS): tests/fuzz/seeds.py $(wildcard tests/unit/fixtures/*/*) \
               $(wildcard policies/*.json)
	$(PYTHON) tests/fuzz/seeds.py $(FUZZ_BUILD)/seeds
	@touch $@

fuzz-build: $(FUZZ_BINS) $(FUZZ_SEEDS)

# One harness at a time (the machine is shared; -jobs=1 is libFuzzer's
# default).  A finding stops the run; its input is in build/fuzz/artifacts.
fuzz: deps fuzz-build
	tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS) corpus $(FUZZ_NAMES)

fuzz-smoke: fuzz-build
	tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SMOKE_SECONDS) smoke $(FUZZ_NAMES)
# ---- end of fuzzing --------------------------------------------------------

PREFIX ?= /usr/local
install: build
	install -D -m 0644 $(MODULE) \
	    $(DESTDIR)/usr/lib/nginx/modules/ngx_http_credit_auth_module.so
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(TOOL_BINS) $(DESTDIR)$(PREFIX)/bin/
	install -d $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 0644 $(wildcard man/*.1) $(DESTDIR)$(PREFIX)/share/man/man1/

clean:
	rm -rf $(BUILD)
