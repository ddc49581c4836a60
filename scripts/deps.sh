#!/bin/sh
# Install what brokerd needs to build and test, from Debian packages and the
# npm registry only.  Quiet when everything is there.  Arguments name more
# Debian packages (make fuzz: clang and its libFuzzer runtime).
set -eu
pkgs="gcc make libc6-dev libyaml-dev libmbedtls-dev libev-dev libhttp-parser-dev
libjansson-dev libcriterion-dev libcurl4-openssl-dev pkg-config curl mandoc
shellcheck openssl ca-certificates cppcheck
$*"
missing=""
for p in $pkgs; do
	dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
command -v node >/dev/null 2>&1 || missing="$missing nodejs"
command -v npm >/dev/null 2>&1 || missing="$missing npm"
if [ -n "$missing" ]; then
	cmd="apt-get update && apt-get install -y --no-install-recommends$missing"
	if [ "$(id -u)" -ne 0 ]; then
		echo "deps: missing Debian packages:$missing" >&2
		echo "deps: run as root: $cmd" >&2
		exit 1
	fi
	echo "deps: $cmd"
	apt-get update
	# shellcheck disable=SC2086
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing
fi
# The Node client's dev tools (TypeScript, for the type check), from its lock file.
if [ -f clients/node/package-lock.json ] && [ ! -d clients/node/node_modules ]; then
	echo "deps: npm ci in clients/node"
	(cd clients/node && npm ci --no-audit --no-fund --loglevel=error)
fi
exit 0
