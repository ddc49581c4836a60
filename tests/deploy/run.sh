#!/bin/sh
# The Debian package and the units (make test runs this; it prints TAP and
# "# pass N" / "# fail N").  The package is built from a clean clone of the
# committed tree, so a file left out of git fails here.  Needs build/brokerd.
set -u
cd "$(dirname "$0")/../.." || exit 2
root=$(pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
pass=0
fail=0
n=0

ok() {	# description
	n=$((n + 1))
	pass=$((pass + 1))
	echo "ok $n - $1"
}

notok() {	# description, log files (not a pipe: the counts must stay)
	n=$((n + 1))
	fail=$((fail + 1))
	echo "not ok $n - $1"
	shift
	cat "$@" 2>/dev/null | sed 's/^/# /' | head -40
}

# 1. make deb from a clean clone (node_modules linked: no npm in a test)
git clone -q "$root" "$tmp/clone" 2>"$tmp/clone.log"
if [ -d clients/node/node_modules ] && [ -d "$tmp/clone/clients/node" ]; then
	ln -s "$root/clients/node/node_modules" "$tmp/clone/clients/node/"
fi
if make -C "$tmp/clone" deb >"$tmp/deb.log" 2>&1; then
	ok "make deb builds from a clean clone"
else
	notok "make deb" "$tmp/clone.log" "$tmp/deb.log"
fi
deb=""
for f in "$tmp"/clone/build/brokerd_*_*.deb; do
	[ -f "$f" ] && deb=$f
done

# 2. its file list is the README's (Deploying)
sed -n '/^<!-- package files -->$/,/^<!-- end -->$/p' README.md |
    grep '^/' | sort >"$tmp/readme.list"
if [ -n "$deb" ]; then
	dpkg-deb -c "$deb" | awk '$1 !~ /^d/ { print $6 }' |
	    sed 's|^\./|/|' | sort >"$tmp/deb.list"
else
	: >"$tmp/deb.list"
fi
if [ -s "$tmp/readme.list" ] && cmp -s "$tmp/readme.list" "$tmp/deb.list"; then
	ok "the package holds the files README.md lists ($(wc -l <"$tmp/deb.list"))"
else
	diff "$tmp/readme.list" "$tmp/deb.list" >"$tmp/d1"
	notok "package files vs README.md" "$tmp/d1"
fi

# 3. lintian: no error, no warning
if [ -n "$deb" ] && lintian --fail-on error,warning "$deb" >"$tmp/lintian.log" 2>&1; then
	ok "lintian: no error, no warning"
else
	notok "lintian" "$tmp/lintian.log"
fi

# 4. make install DESTDIR installs the same set (/usr/local, man pages
# uncompressed, no Debian copyright, changelog or lintian overrides)
make -s install DESTDIR="$tmp/inst" >"$tmp/inst.log" 2>&1
(cd "$tmp/inst" && find . -type f | sed 's|^\.||' | sort) >"$tmp/inst.list"
grep -v -e '^/usr/share/doc/brokerd/copyright$' \
    -e '^/usr/share/doc/brokerd/changelog.gz$' -e '^/usr/share/lintian/' \
    "$tmp/deb.list" | sed -e 's|^/usr/|/usr/local/|' -e 's|\.gz$||' |
    sort >"$tmp/deb-as-inst.list"
if [ -s "$tmp/inst.list" ] && cmp -s "$tmp/inst.list" "$tmp/deb-as-inst.list"; then
	ok "make install DESTDIR= installs the package's set"
else
	diff "$tmp/deb-as-inst.list" "$tmp/inst.list" >"$tmp/d2"
	notok "make install vs the package" "$tmp/d2" "$tmp/inst.log"
fi

# 5. both units, generated for this build's paths, verify
b=$tmp/here
make -s install PREFIX="$b" SYSCONFDIR="$b/etc" UNITDIR="$b/units" \
    >"$tmp/here.log" 2>&1
if grep -q "^ExecStart=$b/sbin/brokerd " "$b/units/brokerd.service" 2>/dev/null &&
    systemd-analyze verify --man=no "$b/units/brokerd.service" \
    "$b/units/brokerd.socket" >"$tmp/verify.log" 2>&1; then
	ok "systemd-analyze verify: brokerd.service and brokerd.socket"
else
	notok "systemd-analyze verify" "$tmp/here.log" "$tmp/verify.log"
fi

# 6. the service's exposure
score=$(systemd-analyze security --offline=yes "$b/units/brokerd.service" \
    2>/dev/null | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
if [ -n "$score" ] && awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }'; then
	ok "systemd-analyze security: exposure $score"
else
	echo "exposure '$score'" >"$tmp/d3"
	notok "systemd-analyze security (want <= 2.0)" "$tmp/d3"
fi

# 7. enable shows (and makes) the ibkr-bridge alias
if systemctl --root="$tmp/inst" enable brokerd.service >"$tmp/enable.log" 2>&1 &&
    grep -q 'ibkr-bridge.service → /lib/systemd/system/brokerd.service' \
    "$tmp/enable.log" &&
    [ "$(readlink "$tmp/inst/etc/systemd/system/ibkr-bridge.service")" = \
    /lib/systemd/system/brokerd.service ]; then
	ok "systemctl --root enable brokerd.service: alias ibkr-bridge.service"
else
	notok "systemctl enable: the alias" "$tmp/enable.log"
fi

# 8. with the socket unit, a stop keeps /run/brokerd (socket, status)
if grep -q '^RuntimeDirectoryPreserve=yes$' "$b/units/brokerd.service" &&
    grep -q '^SocketGroup=brokerd$' "$b/units/brokerd.socket" &&
    grep -q '^SocketMode=0660$' "$b/units/brokerd.socket"; then
	ok "units: RuntimeDirectoryPreserve=yes, socket 0660 group brokerd"
else
	notok "units: runtime directory and socket settings" \
	    "$b/units/brokerd.service"
fi

echo "1..$n"
echo "# pass $pass"
echo "# fail $fail"
[ "$fail" -eq 0 ]
