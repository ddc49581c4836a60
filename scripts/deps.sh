#!/bin/sh
# Install what brokerd needs to build and test, from Debian packages and the
# npm registry only.  Quiet when everything is there.  Arguments name more
# Debian packages (make fuzz: clang and its libFuzzer runtime).
set -eu
pkgs="gcc make libc6-dev libyaml-dev libmbedtls-dev libev-dev libhttp-parser-dev
libjansson-dev libwslay-dev libcriterion-dev libcurl4-openssl-dev pkg-config curl mandoc
shellcheck openssl ca-certificates cppcheck varnish dpkg-dev lintian systemd
$*"

# The varnish package was installed for varnishtest alone: leave no varnishd
# running (stopped by the pid its service left) and none started at boot.
varnish_quiet() {
	if command -v systemctl >/dev/null 2>&1; then
		# without a running systemd, disable still removes the links
		systemctl disable varnish.service varnishncsa.service \
		    >/dev/null 2>&1 || true
	fi
	if [ -d /run/systemd/system ]; then
		systemctl stop varnish.service varnishncsa.service \
		    >/dev/null 2>&1 || true
	elif [ -x /etc/init.d/varnish ]; then
		/etc/init.d/varnish stop >/dev/null 2>&1 || true
	fi
	for pidfile in /run/varnishd.pid /run/varnish.pid; do
		[ -s "$pidfile" ] || continue
		kill "$(cat "$pidfile")" 2>/dev/null || true
		rm -f "$pidfile"
	done
}

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
	# Debian's varnish starts a varnishd on install; only its varnishtest
	# is wanted.  A policy-rc.d exiting 101 stops invoke-rc.d (and
	# deb-systemd-invoke) from starting any service for the install's
	# duration; one already there (a container's) is left as it is.
	policy=/usr/sbin/policy-rc.d
	ours=""
	if [ ! -e "$policy" ]; then
		ours=$policy
		trap 'rm -f "$ours"' EXIT
		trap 'rm -f "$ours"; exit 1' INT TERM
		printf '#!/bin/sh\n# deps.sh: no service starts during the install\nexit 101\n' \
		    >"$policy"
		chmod 755 "$policy"
	fi
	# shellcheck disable=SC2086
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing
	if [ -n "$ours" ]; then
		rm -f "$ours"
		trap - EXIT INT TERM
	fi
	case " $missing " in
	*" varnish "*) varnish_quiet ;;
	esac
fi
# The Node client's dev tools (TypeScript, for the type check), from its lock file.
if [ -f clients/node/package-lock.json ] && [ ! -d clients/node/node_modules ]; then
	echo "deps: npm ci in clients/node"
	(cd clients/node && npm ci --no-audit --no-fund --loglevel=error)
fi
# The tests' dev dependency (ws: the Gateway simulator's WebSocket and the Node
# suites' WebSocket clients), from tests/package-lock.json.
if [ -f tests/package-lock.json ] && [ ! -d tests/node_modules/ws ]; then
	echo "deps: npm ci in tests"
	(cd tests && npm ci --no-audit --no-fund --loglevel=error)
fi
exit 0
