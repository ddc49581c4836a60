#!/bin/sh
# make deb: build/brokerd_<version>_<arch>.deb without debhelper.  The
# binary is compiled once more with dpkg-buildflags (hardening=+all) and
# stripped as dh_strip does; everything else is staged by `make install
# PREFIX=/usr`, so the package and `make install` hold the same files.
# The Makefile passes CC, WARN, CPPFLAGS and LIBS.
set -eu
cd "$(dirname "$0")/.."
umask 022
: "${CC:=cc}" "${WARN:=}" "${CPPFLAGS:=}" "${LIBS:=}"

version=$(sed -n 's/^#define BROKERD_VERSION[^"]*"\(.*\)"$/\1/p' brokerd/brokerd.h)
logver=$(dpkg-parsechangelog -l pkg/debian/changelog -S Version)
if [ "$version" != "$logver" ]; then
	echo "deb: brokerd.h says $version, pkg/debian/changelog $logver" >&2
	exit 1
fi
arch=$(dpkg --print-architecture)
out=build/brokerd_${version}_${arch}.deb
work=build/deb
root=$work/root
rm -rf "$work" "$out"
mkdir -p "$work/debian"

export DEB_BUILD_MAINT_OPTIONS=hardening=+all
dcflags=$(dpkg-buildflags --get CFLAGS)
dcppflags=$(dpkg-buildflags --get CPPFLAGS)
dldflags=$(dpkg-buildflags --get LDFLAGS)
# shellcheck disable=SC2086
$CC $WARN $CPPFLAGS $dcppflags $dcflags -o "$work/brokerd" brokerd/*.c \
    $dldflags $LIBS

make --no-print-directory -s install DESTDIR="$(pwd)/$root" PREFIX=/usr \
    SYSCONFDIR=/etc UNITDIR=/lib/systemd/system >/dev/null
install -m 0755 "$work/brokerd" "$root/usr/sbin/brokerd"
# 0600 by postinst: a conffile's mode in the package stays policy's 0644
chmod 0644 "$root/etc/brokerd/brokerd.env"
strip --remove-section=.comment --remove-section=.note --strip-unneeded \
    "$root/usr/sbin/brokerd"
gzip -9n "$root"/usr/share/man/man*/*
doc=$root/usr/share/doc/brokerd
install -m 0644 pkg/debian/copyright "$doc/copyright"
gzip -9nc pkg/debian/changelog >"$doc/changelog.gz"
chmod 0644 "$doc/changelog.gz"
install -d "$root/usr/share/lintian/overrides"
install -m 0644 pkg/debian/lintian-overrides \
    "$root/usr/share/lintian/overrides/brokerd"

install -d "$root/DEBIAN"
for s in postinst prerm postrm; do
	install -m 0755 "pkg/debian/$s" "$root/DEBIAN/$s"
done
(cd "$root" && find etc -type f | sed 's|^|/|' | sort) >"$root/DEBIAN/conffiles"
chmod 0644 "$root/DEBIAN/conffiles"
cp pkg/debian/control "$work/debian/control"
(cd "$work" && dpkg-shlibdeps -Tdebian/substvars root/usr/sbin/brokerd)
dpkg-gencontrol -c"$work/debian/control" -lpkg/debian/changelog \
    -T"$work/debian/substvars" -P"$root" -pbrokerd -f"$work/files"
(cd "$root" && find usr lib -type f -print0 | sort -z |
    xargs -0 md5sum) >"$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/md5sums"
dpkg-deb --root-owner-group -Zxz --build "$root" "$out" >/dev/null
echo "deb: $out"
