#!/usr/bin/env bash
# Requests per second on loopback: natcheck serve against coturn (turnserver
# -S), with the same load generator (bench/stunload), on the same cores, in
# one run. Rounds alternate the servers so that drift in the machine's load
# hits both; the median of each is reported, then the ratio.
#
# Environment: ROUNDS (3), DURATION (5s), SERVER_CPU (1), LOAD_CPU (0),
# SOCKETS (16), WINDOW (16), PORT (23478).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5s}
SERVER_CPU=${SERVER_CPU:-1}
LOAD_CPU=${LOAD_CPU:-0}
SOCKETS=${SOCKETS:-16}
WINDOW=${WINDOW:-16}
PORT=${PORT:-23478}

for tool in taskset turnserver go; do
	command -v "$tool" >/dev/null || { echo "bench/serve.sh: $tool not found" >&2; exit 1; }
done

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

go build -o "$tmp/natcheck" .
go build -o "$tmp/stunload" ./bench/stunload
: >"$tmp/empty.conf" # coturn: never the packaged config (it disables RFC 5780)

start() {
	case "$1" in
	coturn)
		taskset -c "$SERVER_CPU" turnserver -c "$tmp/empty.conf" -S -n --no-cli \
			--listening-ip 127.0.0.1 --listening-port "$PORT" --no-tls --no-dtls \
			--log-file "$tmp/coturn.log" --simple-log --pidfile "$tmp/coturn.pid" >/dev/null 2>&1 &
		;;
	natcheck)
		taskset -c "$SERVER_CPU" "$tmp/natcheck" serve --listen 127.0.0.1 --port "$PORT" \
			--alt-port $((PORT + 1)) --rate-limit 0 2>>"$tmp/natcheck.log" &
		;;
	natcheck-batch1)
		taskset -c "$SERVER_CPU" "$tmp/natcheck" serve --listen 127.0.0.1 --port "$PORT" \
			--alt-port $((PORT + 1)) --rate-limit 0 --batch 1 2>>"$tmp/natcheck.log" &
		;;
	esac
	server_pid=$!
	# Wait until it answers (at most 5 s).
	for _ in $(seq 50); do
		if taskset -c "$LOAD_CPU" "$tmp/stunload" -target "127.0.0.1:$PORT" -sockets 1 -window 1 \
			-warmup 0 -duration 50ms >/dev/null 2>&1; then
			return 0
		fi
		sleep 0.1
	done
	echo "bench/serve.sh: $1 did not start" >&2
	exit 1
}

stop() {
	kill "$server_pid"
	wait "$server_pid" 2>/dev/null || true
	server_pid=""
}

declare -A results
ratios=""
ratios1=""
for round in $(seq "$ROUNDS"); do
	for server in coturn natcheck natcheck-batch1; do
		start "$server"
		line=$(taskset -c "$LOAD_CPU" "$tmp/stunload" -target "127.0.0.1:$PORT" \
			-sockets "$SOCKETS" -window "$WINDOW" -duration "$DURATION")
		stop
		rps=${line%% *}
		results[$server]+="$rps "
		printf 'round %d %-16s %s\n' "$round" "$server" "$line"
		eval "rps_${server//-/_}=$rps"
	done
	# The ratio of each round compares runs a few seconds apart: on a
	# shared machine it is steadier than a ratio of medians.
	ratios+="$(awk -v n="$rps_natcheck" -v c="$rps_coturn" 'BEGIN { printf "%.2f", n / c }') "
	ratios1+="$(awk -v n="$rps_natcheck_batch1" -v c="$rps_coturn" 'BEGIN { printf "%.2f", n / c }') "
done

median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
c=$(echo "${results[coturn]}" | median)
n=$(echo "${results[natcheck]}" | median)
n1=$(echo "${results[natcheck-batch1]}" | median)
echo
echo "server CPU $SERVER_CPU, load generator CPU $LOAD_CPU, $SOCKETS sockets x $WINDOW in flight, $ROUNDS rounds of $DURATION (median)"
printf '%-28s %10s requests/s\n' "coturn $(turnserver --version 2>/dev/null | head -1)" "$c"
printf '%-28s %10s requests/s\n' "natcheck serve" "$n"
printf '%-28s %10s requests/s\n' "natcheck serve --batch 1" "$n1"
median_f() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
awk -v n="$n" -v c="$c" -v n1="$n1" 'BEGIN { printf "ratio of medians natcheck/coturn: %.2f (batch 1: %.2f)\n", n / c, n1 / c }'
echo "per-round ratios natcheck/coturn: $ratios(median $(echo "$ratios" | median_f)); with --batch 1: $ratios1(median $(echo "$ratios1" | median_f))"
