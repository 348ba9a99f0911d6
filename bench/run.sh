#!/usr/bin/env bash
# Runs the benchmark suite side by side with the tools people use today and
# writes docs/benchmarks.md. Run it as root from the repository (make bench).
#
#   BENCH_COUNT=N   runs of each Go benchmark (default: 5 for the container
#                   benchmark, 3 for the idle one, 1 for the scale one)
#   SCALE_COUNT=N   runs of the scale benchmark alone: one run takes about
#                   16 minutes on 2 cores while every host watch costs the
#                   server a decode of every instance event
#   CONSOLE_COUNT=N runs of the console benchmark (default 1): the scale
#                   benchmark's cloud, then the map in headless Chromium
#   LXC_RUNS=N      runs of the lxc peer (default 20)
#   VM_RUNS=N       VM boots of each side in the VM benchmark (default 5)
#   GROUP_COUNT=N   runs of the group host-loss benchmark (default 3)
#   FP_COUNT=N      runs of the false host-lost benchmark (default 1), each
#                   watching 1,000 loaded hollow hosts for BENCH_FP_DURATION
#                   (default 10m)
#   STACK_COUNT=N   runs of the stack benchmarks (default 3)
#   FAILOVER_COUNT=N runs of the control-plane leader failover benchmark,
#                   each on a fresh 3-node control plane (default 3)
#   VIP_COUNT=N     runs of the API VIP failover benchmark, each on a fresh
#                   3-server control plane whose VIP holder is killed
#                   OURO_VIP_KILLS times (default 1 run of 7 kills)
#   LB_FAILOVER_RUNS=N power cuts of the active LB host (default 5)
#   LB_RUNS=N       sick members and load balancer creates (default 5)
#   EC2_COUNT=N     runs of each EC2 API benchmark (default 3)
#   BENCH_OUT=FILE  the report (default docs/benchmarks.md)
#
# The whole run takes about 20 minutes on 2 cores. Nothing here asserts
# a figure; a benchmark that cannot run says why in the report.
set -euo pipefail

cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
GO=${GO:-go}
OUT=${BENCH_OUT:-docs/benchmarks.md}
LXC_RUNS=${LXC_RUNS:-20}
E2E_COUNT=${BENCH_COUNT:-5}
SCALE_COUNT=${SCALE_COUNT:-${BENCH_COUNT:-1}}
IDLE_COUNT=${BENCH_COUNT:-3}

work=$(mktemp -d /tmp/ouro-bench.XXXXXX)
lxcpath="$work/lxc"
bench_txt="$work/bench.txt"
peers="$work/peers.tsv"
: >"$bench_txt"
: >"$peers"

# cleanup stops and destroys every lxc container of this run (they all live
# in our own lxcpath) and removes the scratch directory, whatever happened.
cleanup() {
	if [ -d "$lxcpath" ]; then
		for d in "$lxcpath"/*/; do
			[ -d "$d" ] || continue
			n=$(basename "$d")
			lxc-stop -P "$lxcpath" -n "$n" -k >/dev/null 2>&1 || true
			lxc-destroy -P "$lxcpath" -n "$n" -f >/dev/null 2>&1 || true
		done
	fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf 'bench: %s\n' "$*" >&2; }

# record KIND KEY VALUE appends one line to the peers TSV (tabs and new
# lines in VALUE become spaces).
record() {
	local v=${3//$'\t'/ }
	v=${v//$'\n'/ }
	printf '%s\t%s\t%s\n' "$1" "$2" "$v" >>"$peers"
}

# why FILE: what a failed or skipped run said: the first message after its
# --- FAIL or --- SKIP line, else its last error lines.
why() {
	local msg
	msg=$(grep -A1 -E -- '--- (FAIL|SKIP)' "$1" | grep -v -E -- '^(--- |--$)' | head -n 2 | sed 's/^[[:space:]]*//' | tr '\n' ' ')
	if [ -z "$msg" ]; then
		msg=$(grep -E 'panic|FAIL|[Ee]rror' "$1" | tail -n 3 | tr '\n' ' ')
	fi
	printf '%s' "$msg" | cut -c1-300
}

# --- peers and the binary -------------------------------------------------

if [ "$(id -u)" -ne 0 ]; then
	log "needs root: the benchmarks run containers and install the peers (run with sudo)"
	exit 1
fi
install_missing() {
	local missing=()
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
	done
	if [ "${#missing[@]}" -gt 0 ]; then
		log "installing ${missing[*]}"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq
		apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	fi
}
# lxc (with its busybox template) is the container peer; libvirt the VM
# peer (BenchmarkVMCreateToKernel starts libvirtd itself where no init
# system runs it).
if ! install_missing lxc busybox-static; then
	record note lxc-create-start-ms "the lxc package could not be installed"
fi
if [ -d driver/vm ]; then
	install_missing libvirt-daemon-system libvirt-clients || record note BenchmarkVMCreateToKernel "libvirt-daemon-system could not be installed"
fi

log "building bin/ouro"
CGO_ENABLED=0 "$GO" build -trimpath -o bin/ouro ./cmd/ouro

# --- the machine ------------------------------------------------------------

record machine cpu "$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
record machine cores "$(nproc)"
record machine memory "$(awk '/^MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
record machine kernel "$(uname -sr)"
record machine date "$(date -u '+%Y-%m-%d %H:%M UTC')"

# --- Go benchmarks ------------------------------------------------------------

# gobench NAME PKG COUNT BENCHTIME [ENV...]: runs one benchmark COUNT times
# and appends its results; a failure or skip becomes a note in the report.
gobench() {
	local name=$1 pkg=$2 count=$3 benchtime=$4
	shift 4
	local out="$work/$name.log"
	log "running $name ($count runs, $benchtime) in $pkg"
	if env "$@" "$GO" test "$pkg" -run '^$' -bench "^$name\$" -benchtime "$benchtime" -count "$count" \
		-timeout 60m >"$out" 2>&1; then
		grep -E "^$name(-[0-9]+)?[[:space:]]" "$out" >>"$bench_txt" || true
		if grep -q -- '--- SKIP' "$out"; then
			record note "$name" "skipped: $(why "$out")"
		fi
	else
		grep -E "^$name(-[0-9]+)?[[:space:]]" "$out" >>"$bench_txt" || true
		record note "$name" "failed: $(why "$out")"
		log "$name failed; its output:"
		tail -n 40 "$out" >&2
	fi
}

gobench BenchmarkContainerCreateToRunning ./test/e2e "$E2E_COUNT" 20x
gobench BenchmarkScale ./bench "$SCALE_COUNT" 1x
gobench BenchmarkScheduleBacklog ./bench "$SCALE_COUNT" 1x
gobench BenchmarkConsoleMap ./bench "${CONSOLE_COUNT:-1}" 1x
gobench BenchmarkIdleUp ./bench "$IDLE_COUNT" 1x OURO_BIN="$PWD/bin/ouro"
gobench BenchmarkEC2 ./bench "${EC2_COUNT:-3}" 1x
gobench BenchmarkEC2Calls ./bench "${EC2_COUNT:-3}" 300x
gobench BenchmarkEC2RunToRunning ./test/e2e "${EC2_COUNT:-3}" 14x
gobench BenchmarkVMCreateToKernel ./test/e2e 1 "${VM_RUNS:-5}x"
gobench BenchmarkStackPlan ./test/e2e "${STACK_COUNT:-3}" 10x
gobench BenchmarkStackApply ./test/e2e "${STACK_COUNT:-3}" 1x
gobench BenchmarkGroupHostLoss ./test/e2e "${GROUP_COUNT:-3}" 1x
gobench BenchmarkHostLostFalse ./bench "${FP_COUNT:-1}" 1x
gobench BenchmarkLeaderFailover ./test/e2e "${FAILOVER_COUNT:-3}" 1x
gobench BenchmarkAPIVIPFailover ./test/e2e "${VIP_COUNT:-1}" 1x OURO_VIP_KILLS="${OURO_VIP_KILLS:-7}"
gobench BenchmarkBootstrap ./test/e2e 1 "${BOOTSTRAP_RUNS:-3}x"
gobench BenchmarkLBFailover ./test/e2e 1 "${LB_FAILOVER_RUNS:-5}x"
gobench BenchmarkLBMemberDown ./test/e2e 1 "${LB_RUNS:-5}x"
gobench BenchmarkLBCreateToServing ./test/e2e 1 "${LB_RUNS:-5}x"
gobench BenchmarkLBThroughput ./test/e2e 1 1x

# --- peer: lxc-create -t busybox + lxc-start ----------------------------------

# now_ns prints the monotonic-enough wall clock in nanoseconds.
now_ns() { date +%s%N; }

lxc_peer() {
	local key=lxc-create-start-ms
	for tool in lxc-create lxc-start lxc-wait lxc-stop lxc-destroy; do
		if ! command -v "$tool" >/dev/null 2>&1; then
			record note "$key" "$tool is not installed"
			return
		fi
	done
	mkdir -p "$lxcpath"
	# No network: Ouroboros' containers in BenchmarkContainerCreateToRunning
	# get none either.
	printf 'lxc.net.0.type = empty\n' >"$work/lxc.conf"
	local i name t0 t1 out="$work/lxc.log"
	log "running the lxc peer ($LXC_RUNS runs)"
	for ((i = 1; i <= LXC_RUNS; i++)); do
		name="ourobench-$$-$i"
		t0=$(now_ns)
		if ! lxc-create -P "$lxcpath" -n "$name" -t busybox -f "$work/lxc.conf" >"$out" 2>&1 ||
			! lxc-start -P "$lxcpath" -n "$name" >>"$out" 2>&1 ||
			! lxc-wait -P "$lxcpath" -n "$name" -s RUNNING -t 30 >>"$out" 2>&1; then
			record note "$key" "lxc could not create and start a busybox container here: $(tail -n 3 "$out" | tr '\n' ' ' | cut -c1-400)"
			lxc-stop -P "$lxcpath" -n "$name" -k >/dev/null 2>&1 || true
			lxc-destroy -P "$lxcpath" -n "$name" -f >/dev/null 2>&1 || true
			return
		fi
		t1=$(now_ns)
		record peer "$key" "$(awk -v d=$((t1 - t0)) 'BEGIN {printf "%.1f", d / 1e6}')"
		lxc-stop -P "$lxcpath" -n "$name" -k >/dev/null 2>&1 || true
		lxc-destroy -P "$lxcpath" -n "$name" -f >/dev/null 2>&1 || true
	done
}
lxc_peer

# --- the report ---------------------------------------------------------------

log "writing $OUT"
"$GO" run ./bench/report -bench "$bench_txt" -peers "$peers" -o "$OUT"
cat "$bench_txt" >&2
log "done: $OUT"
