#!/usr/bin/env bash
# One STUN server at the limit of one core: natcheck serve, coturn and
# stuntman's stunserver, each in its RFC 5780 configuration (two addresses,
# two ports), loaded by the same third-party generator (pion's stun-bench),
# server on one CPU and generator on the other. Prints requests/s, both
# CPU shares and the server's memory (VmRSS idle, VmHWM peak), per round
# and as medians. Rounds alternate the servers, so that drift in the
# machine's load hits all of them.
#
# It builds and downloads nothing: give it the binaries.
#
#   bench/serve-scale.sh NATCHECK TURNSERVER STUNSERVER STUN-BENCH [STUNLOAD]
#
# stun-bench keeps one request in flight per worker and makes a system
# call per datagram, so on one core it runs out of CPU before the servers
# do. With STUNLOAD (go build ./bench/stunload), a second table loads the
# same servers with natcheck's batching generator, which gets nearer to
# the servers' own limit (not third-party: a cross-check only).
#
# Everything runs in a network namespace of its own (unshare), on two
# addresses from the benchmarking range (198.18.0.1, 198.18.0.2) on a veth
# that nothing else uses: stuntman's full mode wants two non-loopback
# interface addresses, and the host's other loopback traffic and firewall
# rules stay out of the figures. Needs root, or unprivileged user
# namespaces.
#
# Rows: coturn (--stun-only), stuntman, stuntman-ddp (its --ddp flood
# protection on), natcheck (--rate-limit 0, since every request comes from
# one source address), natcheck-limits (the default limits: what one
# abusive source gets).
#
# Environment: ROUNDS (3), DURATION in seconds per run (6), WORKERS
# (stun-bench -w, 64), SERVER_CPU (1), LOAD_CPU (0), PORT (3478; PORT+1 is
# the alternate), SERVERS (rows loaded by stun-bench, default all five),
# BATCH_SERVERS (rows loaded by stunload, default "coturn stuntman
# natcheck").
set -euo pipefail

usage() {
	echo "usage: bench/serve-scale.sh NATCHECK TURNSERVER STUNSERVER STUN-BENCH [STUNLOAD]" >&2
	exit 2
}
[ $# -eq 4 ] || [ $# -eq 5 ] || usage
for b in "$@"; do
	[ -x "$b" ] || { echo "bench/serve-scale.sh: $b is not an executable" >&2; exit 2; }
done
for tool in taskset unshare ip ss awk; do
	command -v "$tool" >/dev/null || { echo "bench/serve-scale.sh: $tool not found" >&2; exit 1; }
done

# Re-enter in a network namespace of our own; when the script ends, the
# namespace and its addresses go with it.
if [ -z "${SERVE_SCALE_NETNS:-}" ]; then
	args=()
	for b in "$@"; do args+=("$(realpath "$b")"); done
	flags=--net
	[ "$(id -u)" -eq 0 ] || flags="--net --map-root-user"
	# shellcheck disable=SC2086 # two flags or one
	exec env SERVE_SCALE_NETNS=1 unshare $flags "$0" "${args[@]}"
fi

NATCHECK=$1 TURNSERVER=$2 STUNSERVER=$3 STUNBENCH=$4 STUNLOAD=${5:-}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-6}
WORKERS=${WORKERS:-64}
SERVER_CPU=${SERVER_CPU:-1}
LOAD_CPU=${LOAD_CPU:-0}
PORT=${PORT:-3478}
SERVERS=${SERVERS:-coturn stuntman stuntman-ddp natcheck natcheck-limits}
BATCH_SERVERS=${BATCH_SERVERS:-coturn stuntman natcheck}
runs=()
for s in $SERVERS; do runs+=("$s/stun-bench"); done
if [ -n "$STUNLOAD" ]; then
	for s in $BATCH_SERVERS; do runs+=("$s/stunload"); done
fi
A1=198.18.0.1
A2=198.18.0.2
HZ=$(getconf CLK_TCK)

ip link set lo up
ip link add bench0 type veth peer name bench1
ip addr add "$A1/32" dev bench0
ip addr add "$A2/32" dev bench0
ip link set bench0 up
ip link set bench1 up

tmp=$(mktemp -d)
server_pid=""
cleanup() {
	if [ -n "$server_pid" ]; then
		kill "$server_pid" 2>/dev/null || true
		wait "$server_pid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
: >"$tmp/empty.conf" # coturn: never a packaged config (Debian's disables RFC 5780)

# start launches one server on SERVER_CPU in the foreground of a background
# job (so that $! is the server itself, not a subshell).
start() {
	case "$1" in
	coturn)
		taskset -c "$SERVER_CPU" "$TURNSERVER" -c "$tmp/empty.conf" --stun-only --no-cli \
			--listening-ip "$A1" --listening-ip "$A2" --listening-port "$PORT" \
			--alt-listening-port $((PORT + 1)) --no-tls --no-dtls \
			--log-file "$tmp/coturn.log" --simple-log --no-stdout-log >/dev/null 2>&1 &
		;;
	stuntman | stuntman-ddp)
		local ddp=()
		[ "$1" = stuntman-ddp ] && ddp=(--ddp)
		taskset -c "$SERVER_CPU" "$STUNSERVER" --mode full --protocol udp \
			--primaryinterface "$A1" --altinterface "$A2" \
			--primaryport "$PORT" --altport $((PORT + 1)) "${ddp[@]}" >>"$tmp/stuntman.log" 2>&1 &
		;;
	natcheck | natcheck-limits)
		local limit=()
		[ "$1" = natcheck ] && limit=(--rate-limit 0)
		taskset -c "$SERVER_CPU" "$NATCHECK" serve --listen "$A1" --listen "$A2" \
			--port "$PORT" --alt-port $((PORT + 1)) "${limit[@]}" 2>>"$tmp/natcheck.log" &
		;;
	*)
		echo "bench/serve-scale.sh: unknown server $1" >&2
		exit 2
		;;
	esac
	server_pid=$!
	# Ready when all four UDP endpoints are bound (at most 5 s). Not probed
	# with requests: they would count against natcheck's rate limit.
	for _ in $(seq 50); do
		if [ "$(ss -Hlun | grep -cE "($A1|$A2):($PORT|$((PORT + 1))) ")" -ge 4 ]; then
			return 0
		fi
		kill -0 "$server_pid" 2>/dev/null || break
		sleep 0.1
	done
	echo "bench/serve-scale.sh: $1 did not start" >&2
	tail -5 "$tmp"/*.log >&2 || true
	exit 1
}

stop() {
	kill "$server_pid"
	wait "$server_pid" 2>/dev/null || true
	server_pid=""
}

# cputicks: user+system time of a process, all its threads, in clock ticks.
cputicks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# kib FIELD PID: a VmXXX line of /proc/PID/status, in KiB.
kib() { awk -v f="$1:" '$1 == f {print $2}' "/proc/$2/status"; }

# cpustat: the cpuN lines of /proc/stat for both CPUs in use.
cpustat() { grep -E "^cpu($SERVER_CPU|$LOAD_CPU) " /proc/stat; }
# busy N BEFORE AFTER: how busy cpuN was between two cpustat snapshots, in
# percent: everything but idle and iowait, so also the softirq time of
# loopback delivery (accounted to no process) and other work on the core.
busy() {
	awk -v cpu="cpu$1" '$1 == cpu { t = 0; for (i = 2; i <= 9; i++) t += $i; idle = $5 + $6
		if (NR == FNR) { t0 = t; i0 = idle } else { printf "%.0f", 100 * (1 - (idle - i0) / (t - t0)) } }' "$2" "$3"
}

# measure runs generator $1 (stun-bench or stunload) against the running
# server and sets rps, lost, server_cpu (the server process), server_core
# and gen_core (how busy each CPU was), rss_idle, rss_peak. CPU shares are
# of the wall time the generator ran.
measure() {
	rss_idle=$(kib VmRSS "$server_pid")
	local t0 t1 w0 w1
	cpustat >"$tmp/stat0"
	t0=$(cputicks "$server_pid")
	w0=$(date +%s.%N)
	case "$1" in
	stun-bench)
		taskset -c "$LOAD_CPU" "$STUNBENCH" -uri "stun:$A1:$PORT" -w "$WORKERS" \
			-d "${DURATION}s" >"$tmp/gen.out" 2>&1
		rps=$(awk '/RPS:/ {print $NF}' "$tmp/gen.out")
		lost=$(awk '/Errors:/ {print $NF}' "$tmp/gen.out")
		;;
	stunload)
		taskset -c "$LOAD_CPU" "$STUNLOAD" -target "$A1:$PORT" -sockets 16 -window 16 \
			-warmup 0 -duration "${DURATION}s" >"$tmp/gen.out" 2>&1
		rps=$(awk '/requests\/s answered/ {print $1}' "$tmp/gen.out")
		lost=$(sed -n 's/.* \([0-9]*\) timeouts)$/\1/p' "$tmp/gen.out")
		;;
	esac
	w1=$(date +%s.%N)
	t1=$(cputicks "$server_pid")
	cpustat >"$tmp/stat1"
	rss_peak=$(kib VmHWM "$server_pid")
	lost=${lost:-0}
	[ -n "$rps" ] || { echo "bench/serve-scale.sh: no rate from $1:" >&2; cat "$tmp/gen.out" >&2; exit 1; }
	server_cpu=$(awk -v d=$((t1 - t0)) -v hz="$HZ" -v w0="$w0" -v w1="$w1" 'BEGIN {printf "%.0f", 100 * d / hz / (w1 - w0)}')
	server_core=$(busy "$SERVER_CPU" "$tmp/stat0" "$tmp/stat1")
	gen_core=$(busy "$LOAD_CPU" "$tmp/stat0" "$tmp/stat1")
}

median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
maxof() { tr ' ' '\n' | grep -v '^$' | sort -n | tail -1; }
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }

# per_cpu_s: requests per second of server CPU time, i.e. about what one
# core would answer if the generator could keep it busy.
# Below 10% the share is too coarse (clock ticks) to divide by.
per_cpu_s() { awk -v r="$1" -v c="$2" 'BEGIN { if (c >= 10) printf "%.0f", 100 * r / c; else print "-" }'; }

declare -A r_rps r_cpu r_score r_gcore r_per r_idle r_peak
printf '%s, %d rounds of %d s, stun-bench -w %d, stunload 16 sockets x 16 in flight, server CPU %s, generator CPU %s\n' \
	"$(date -u +%Y-%m-%dT%H:%MZ)" "$ROUNDS" "$DURATION" "$WORKERS" "$SERVER_CPU" "$LOAD_CPU"
for round in $(seq "$ROUNDS"); do
	echo "round $round, load average$(uptime | sed 's/.*load average//')"
	for run in "${runs[@]}"; do
		start "${run%/*}"
		measure "${run#*/}"
		stop
		r_rps[$run]+="$rps " r_cpu[$run]+="$server_cpu "
		r_score[$run]+="$server_core " r_gcore[$run]+="$gen_core "
		r_idle[$run]+="$rss_idle " r_peak[$run]+="$rss_peak "
		r_per[$run]+="$(per_cpu_s "$rps" "$server_cpu") "
		printf '  %-27s %7s requests/s  server %3s%% (its CPU %3s%% busy)  generator CPU %3s%% busy  RSS idle %5s MiB, peak %5s MiB  lost %s\n' \
			"$run" "$rps" "$server_cpu" "$server_core" "$gen_core" "$(mib "$rss_idle")" "$(mib "$rss_peak")" "$lost"
	done
done

echo
echo "median of $ROUNDS rounds"
echo "  server: the server process's CPU time (user+system) / wall time; per CPU-s: requests/s / that share"
echo "  CPU busy: the whole CPU (softirq of loopback delivery and any other work on it too)"
echo "  peak: the highest VmHWM of any round"
printf '%-27s %10s %7s %10s %11s %11s %9s %9s\n' "server/generator" requests/s server "per CPU-s" "server CPU" "gen. CPU" "idle MiB" "peak MiB"
for run in "${runs[@]}"; do
	printf '%-27s %10s %6s%% %10s %10s%% %10s%% %9s %9s\n' "$run" \
		"$(echo "${r_rps[$run]}" | median)" "$(echo "${r_cpu[$run]}" | median)" \
		"$(echo "${r_per[$run]}" | median)" "$(echo "${r_score[$run]}" | median)" \
		"$(echo "${r_gcore[$run]}" | median)" \
		"$(mib "$(echo "${r_idle[$run]}" | median)")" "$(mib "$(echo "${r_peak[$run]}" | maxof)")"
done
echo
echo "load average at the end$(uptime | sed 's/.*load average//')"
echo "natcheck: $("$NATCHECK" version 2>/dev/null | head -1)"
echo "coturn: $("$TURNSERVER" --version 2>/dev/null | head -1)"
if command -v go >/dev/null; then
	echo "stun-bench: $(go version -m "$STUNBENCH" 2>/dev/null | awk '$1 == "mod" {print $2, $3}')"
fi
