# bench/lib.sh: what bench/run.sh and bench/speed.sh share, sourced by
# both after they define say() and die().

# bench_deps PKG:CMD...: install, from Debian, each package whose command
# is missing (any nginx flavour will do: nginx-core and -full conflict
# with -light, so an installed command is enough); as root only, else
# print the apt-get command and stop.
bench_deps() {
	missing=""
	for p in "$@"; do
		pkg=${p%%:*}
		cmd=${p#*:}
		if ! dpkg -s "$pkg" >/dev/null 2>&1 &&
		    ! command -v "$cmd" >/dev/null 2>&1 &&
		    ! [ -x "/usr/sbin/$cmd" ]; then
			missing="$missing $pkg"
		fi
	done
	[ -z "$missing" ] && return 0
	cmd="apt-get update && apt-get install -y --no-install-recommends$missing"
	if [ "$(id -u)" -ne 0 ]; then
		say "missing Debian packages:$missing"
		die "run as root: $cmd"
	fi
	say "$cmd"
	apt-get update
	# shellcheck disable=SC2086
	DEBIAN_FRONTEND=noninteractive apt-get install -y \
	    --no-install-recommends $missing
}

# bench_stop PID TENTHS: TERM, up to TENTHS tenths of a second to go,
# then KILL; reaped either way.
bench_stop() {
	[ -n "$1" ] || return 0
	if kill -TERM "$1" 2>/dev/null; then
		n=$2
		while [ "$n" -gt 0 ] && kill -0 "$1" 2>/dev/null; do
			sleep 0.1
			n=$((n - 1))
		done
		kill -KILL "$1" 2>/dev/null || true
	fi
	wait "$1" 2>/dev/null || true
}

# wait_until SECONDS COMMAND...: every 0.1 s until it succeeds.
wait_until() {
	n=$(($1 * 10))
	shift
	while [ "$n" -gt 0 ]; do
		"$@" && return 0
		sleep 0.1
		n=$((n - 1))
	done
	return 1
}
# has_line FILE PATTERN: FILE is not empty and has a line matching it.
has_line() { [ -s "$1" ] && grep -q "$2" "$1"; }
# free_port: a loopback TCP port free right now.
free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
