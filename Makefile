# brokerd: `make` builds build/brokerd; see README.md for `make demo` and `make test`.
PREFIX	?= /usr/local
SYSCONFDIR ?= /etc
UNITDIR	?= /lib/systemd/system
DESTDIR	?=
CC	?= cc
CFLAGS	?= -O2 -g
WARN	 = -std=c17 -Wall -Wextra -Wshadow -Wformat=2 -Werror
CPPFLAGS += -D_GNU_SOURCE -Ibrokerd
LIBS	 = -lyaml -lev -lhttp_parser -ljansson -lwslay -lmbedtls -lmbedx509 -lmbedcrypto
SAN	 = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

SRCS	:= $(wildcard brokerd/*.c)
LIBSRCS	:= $(filter-out brokerd/main.c,$(SRCS))
OBJS	:= $(SRCS:brokerd/%.c=build/obj/%.o)
LIBOBJS	:= $(LIBSRCS:brokerd/%.c=build/obj/%.o)
AOBJS	:= $(LIBSRCS:brokerd/%.c=build/asan/%.o)
UNITS	:= $(wildcard tests/unit/test_*.c)
INTEG	:= $(wildcard tests/integration/test_*.c)
FUZZ	:= $(wildcard tests/fuzz/fuzz_*.c)

.PHONY: all test demo bench install uninstall clean deps deps-fuzz fuzz lint soak unit asan integration deb
all: build/brokerd

HDRS	:= $(wildcard brokerd/*.h)

build/obj/%.o: brokerd/%.c $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(WARN) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

build/asan/%.o: brokerd/%.c $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(WARN) $(CPPFLAGS) -O1 -g $(SAN) -c -o $@ $<

build/libbrokerd.a: $(LIBOBJS)
	rm -f $@ && ar rcs $@ $^

build/libbrokerd-asan.a: $(AOBJS)
	rm -f $@ && ar rcs $@ $^

build/brokerd: build/obj/main.o build/libbrokerd.a
	$(CC) $(CFLAGS) -o $@ $^ $(LIBS)

build/brokerd-asan: brokerd/main.c $(HDRS) build/libbrokerd-asan.a
	$(CC) $(WARN) $(CPPFLAGS) -O1 -g $(SAN) -o $@ brokerd/main.c build/libbrokerd-asan.a $(LIBS)

build/unit/%: tests/unit/%.c build/libbrokerd.a
	@mkdir -p $(@D)
	$(CC) $(WARN) $(CPPFLAGS) $(CFLAGS) -o $@ $< build/libbrokerd.a $(LIBS) -lcriterion

build/unit-asan/%: tests/unit/%.c build/libbrokerd-asan.a
	@mkdir -p $(@D)
	$(CC) $(WARN) $(CPPFLAGS) -O1 -g $(SAN) -o $@ $< build/libbrokerd-asan.a $(LIBS) -lcriterion

build/integration/%: tests/integration/%.c tests/integration/harness.c tests/integration/harness.h build/libbrokerd.a
	@mkdir -p $(@D)
	$(CC) $(WARN) $(CPPFLAGS) -Itests/integration $(CFLAGS) -o $@ $< tests/integration/harness.c build/libbrokerd.a $(LIBS) -lcriterion -lcurl

# The daemon's objects are built once for all targets (fuzzer-no-link:
# coverage hooks, no main); each target links its own.
FOBJS	:= $(LIBSRCS:brokerd/%.c=build/fuzzobj/%.o)
FSAN	 = -g -O1 -fsanitize=address,undefined
.SECONDARY: $(FOBJS)

build/fuzzobj/%.o: brokerd/%.c $(HDRS)
	@mkdir -p $(@D)
	clang $(CPPFLAGS) $(FSAN) -fsanitize=fuzzer-no-link -c -o $@ $<

build/fuzz/%: tests/fuzz/%.c $(FOBJS)
	@mkdir -p $(@D)
	clang $(CPPFLAGS) $(FSAN) -fsanitize=fuzzer -o $@ $< $(FOBJS) $(LIBS)

unit: $(UNITS:tests/unit/%.c=build/unit/%)
asan: build/brokerd-asan $(UNITS:tests/unit/%.c=build/unit-asan/%)
integration: build/brokerd $(INTEG:tests/integration/%.c=build/integration/%)

# Every suite runs even when one fails; the last line sums them all.
test: deps
	@$(MAKE) --no-print-directory all unit asan integration
	@sh tests/run-suites.sh

demo: deps all
	@sh scripts/demo.sh

bench: deps all build/bench/unixload
	@sh bench/run.sh

# bench/speed.sh's load generator (Unix socket or TCP, fixed count or time).
build/bench/unixload: bench/unixload.c
	@mkdir -p $(@D)
	$(CC) $(WARN) -D_GNU_SOURCE $(CFLAGS) -o $@ bench/unixload.c

# Long runs under load (tests/soak/*.sh, one part each); last line sums them.
soak: deps
	@$(MAKE) --no-print-directory all integration
	@sh tests/soak/run.sh

fuzz: deps-fuzz $(FUZZ:tests/fuzz/%.c=build/fuzz/%)
	@for f in $(FUZZ:tests/fuzz/%.c=build/fuzz/%); do n=$${f##*/}; echo "== $$f"; \
	    mkdir -p build/corpus/$$n; rc=0; \
	    $$f -max_total_time=$${FUZZ_SECONDS:-20} -artifact_prefix=build/fuzz/$$n- build/corpus/$$n tests/fuzz/corpus/$$n \
	    >build/fuzz/$$n.log 2>&1 || rc=$$?; tail -2 build/fuzz/$$n.log; \
	    if [ $$rc -ne 0 ]; then echo "$$f failed ($$rc): build/fuzz/$$n.log"; exit 1; fi; done

deps:
	@sh scripts/deps.sh

deps-fuzz:
	@sh scripts/deps.sh clang libclang-rt-14-dev

lint:
	shellcheck -s sh clients/shell/* scripts/*.sh tests/run-suites.sh bench/run.sh bench/speed.sh bench/lib.sh \
	    tests/vtc/run.sh tests/soak/*.sh tests/deploy/run.sh pkg/debian/post* pkg/debian/prerm
	mandoc -T lint -W warning man/*.[158]
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability -D_GNU_SOURCE brokerd bench/unixload.c

install: all
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/bin \
	    $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/man/man5 \
	    $(DESTDIR)$(PREFIX)/share/man/man8 $(DESTDIR)$(SYSCONFDIR)/brokerd \
	    $(DESTDIR)$(UNITDIR) $(DESTDIR)$(PREFIX)/share/doc/brokerd
	install -m 0755 build/brokerd $(DESTDIR)$(PREFIX)/sbin/brokerd
	install -m 0755 clients/shell/ibkr-status clients/shell/ibkr-wait clients/shell/ibkr-call \
	    clients/shell/ibkr-stream $(DESTDIR)$(PREFIX)/bin/
	install -m 0644 man/*.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 0644 man/*.5 $(DESTDIR)$(PREFIX)/share/man/man5/
	install -m 0644 man/*.8 $(DESTDIR)$(PREFIX)/share/man/man8/
	test -e $(DESTDIR)$(SYSCONFDIR)/brokerd/brokerd.yaml || \
	    install -m 0644 config/brokerd.yaml $(DESTDIR)$(SYSCONFDIR)/brokerd/brokerd.yaml
	test -e $(DESTDIR)$(SYSCONFDIR)/brokerd/brokerd.env || \
	    install -m 0600 config/brokerd.env.example $(DESTDIR)$(SYSCONFDIR)/brokerd/brokerd.env
	# the units name the binary and the configuration where they went
	for u in brokerd.service brokerd.socket; do \
	    sed -e 's|/usr/local/sbin/|$(PREFIX)/sbin/|g' \
	    -e 's|/etc/brokerd/|$(SYSCONFDIR)/brokerd/|g' config/$$u \
	    >$(DESTDIR)$(UNITDIR)/$$u && chmod 0644 $(DESTDIR)$(UNITDIR)/$$u || exit 1; done
	install -m 0644 config/brokerd-tcp.conf $(DESTDIR)$(PREFIX)/share/doc/brokerd/

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/sbin/brokerd
	rm -f $(DESTDIR)$(PREFIX)/bin/ibkr-status $(DESTDIR)$(PREFIX)/bin/ibkr-wait $(DESTDIR)$(PREFIX)/bin/ibkr-call \
	    $(DESTDIR)$(PREFIX)/bin/ibkr-stream
	rm -f $(DESTDIR)$(PREFIX)/share/man/man1/ibkr-status.1 $(DESTDIR)$(PREFIX)/share/man/man1/ibkr-wait.1 \
	    $(DESTDIR)$(PREFIX)/share/man/man1/ibkr-call.1 $(DESTDIR)$(PREFIX)/share/man/man1/ibkr-stream.1 \
	    $(DESTDIR)$(PREFIX)/share/man/man5/brokerd.yaml.5 \
	    $(DESTDIR)$(PREFIX)/share/man/man5/brokerd-status.5 $(DESTDIR)$(PREFIX)/share/man/man8/brokerd.8
	rm -f $(DESTDIR)$(UNITDIR)/brokerd.service $(DESTDIR)$(UNITDIR)/brokerd.socket
	rm -f $(DESTDIR)$(PREFIX)/share/doc/brokerd/brokerd-tcp.conf

# build/brokerd_<version>_<arch>.deb: its own binary with dpkg-buildflags,
# staged by `make install` into /usr (scripts/deb.sh).
deb: deps all
	@CC="$(CC)" WARN="$(WARN)" CPPFLAGS="$(CPPFLAGS)" LIBS="$(LIBS)" \
	    sh scripts/deb.sh

clean:
	rm -rf build
