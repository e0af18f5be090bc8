# Fault soak (#18): `sandbar run`, then `sandbar pull`, SIGKILLed at random points of their
# restore, on a workspace of a few thousand files changed on both sides while the command runs
# (edits, creations, deletions, renames; a few files edited on both sides: conflicts). After
# each kill: every local file is exactly its content before the restore or its content after an
# uninterrupted one (hashes), nothing else exists but the restore's documented staging
# (.sandbar-restore) and temp names (.NAME.sbtmp-*), the killed run's sandbox stops by itself
# (no sandbox left without an owner); a final `sandbar pull` converges on the uninterrupted
# result exactly, with no staging or temp name left, and `sandbar lease prune` then leaves no
# lease. Prints one row for scripts/soak (scenario, trials, failures, figures); exits 1 when a
# trial failed. Trials alternate the sync modes (SANDBAR_SYNC full, then incremental: the
# restore fetches only what differs from the far side's manifest), both held to the same
# uninterrupted result. SANDBAR_SOAK_TRIALS sets the count (default 100), SANDBAR_SOAK_FILES the
# files (default 2500); SB_TEST_BUILD_DIR names the build.
SB_RT_LIB=${SB_RT_LIB:-$(dirname "$0")/../tests/roundtrip/lib.sh}
. "$SB_RT_LIB"
set +e

TRIALS=${SANDBAR_SOAK_TRIALS:-100}
NFILES=${SANDBAR_SOAK_FILES:-2500}
BASE="$T/base" REF="$T/ref" W="$T/ws"
failures=0 killed_run=0 killed_pull=0 trial_fail=0

note() { echo "# cli-kill: $*" >&2; }
bad() {
	note "trial $trial (sync ${SANDBAR_SYNC:-full}): $*"
	trial_fail=1
}

# The shared starting tree: NFILES small files in 25 directories and a 2 MiB binary.
make_base() {
	mkdir -p "$BASE"
	(cd "$BASE" && for d in $(seq 0 24); do mkdir d$d; done &&
		awk -v n="$NFILES" 'BEGIN { for (i = 0; i < n; i++) { f = "d" i % 25 "/f" i ".txt";
			printf "base %d %0*d\n", i, 40 + i % 200, i > f; close(f) } }' &&
		head -c 2097152 /dev/urandom >big.bin)
}

# A shell script making one side's changes; by file index i, with c = i % 20: remote edits c 1,
# deletes c 2, renames c 3 into r/, creates n/; local edits c 4, deletes c 5, renames c 6 into
# l/, creates m/; both edit c 7 (differently: a conflict). Remote also replaces big.bin.
edits() {
	awk -v n="$NFILES" -v side="$1" 'BEGIN {
		e = side == "remote" ? 1 : 4; x = e + 1; r = e + 2
		dir = side == "remote" ? "r" : "l"; nw = side == "remote" ? "n" : "m"
		printf "set -e; mkdir -p %s %s\n", dir, nw
		for (i = 0; i < n; i++) {
			c = i % 20; f = "d" i % 25 "/f" i ".txt"
			if (c == e || c == 7) printf "echo %s edit %d >>%s\n", side, i, f
			else if (c == x) printf "rm %s\n", f
			else if (c == r) printf "mv %s %s/f%d.txt\n", f, dir, i
		}
		for (i = 0; i < n / 20; i++) printf "echo %s new %d >%s/%d.txt\n", side, i, nw, i
		if (side == "remote") print "cat big.bin big.bin >big.2; mv big.2 big.bin"
	}'
}

# "hash  ./path" for every file and link under $1, the restore's staging left out.
manifest() {
	(cd "$1" && find . -path ./.sandbar-restore -prune -o \( -type f -o -type l \) -print0 |
		xargs -0 -r md5sum | sort -k2)
}

# Every entry of $1 (a manifest) is its version in $2 or in $3, or a temp name; prints offenders.
old_or_new() {
	awk 'FILENAME == ARGV[1] { old[$2] = $1; next }
		FILENAME == ARGV[2] { neu[$2] = $1; next }
		$1 != old[$2] && $1 != neu[$2] && $2 !~ /\/\.[^\/]*\.sbtmp-[^\/]*$/ { print $2 }' \
		"$2" "$3" "$1"
}

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# Reset $W to the base, start `sandbar run` making the remote changes; once the command has made
# them, make the local ones, record the pre-restore manifest in $1 and let the command end.
# Leaves the run's pid in $run_pid and the release time in $released.
start_run() {
	rm -rf "$W" && cp -a "$BASE" "$W" || return 1
	# The last trial's run.out says "ready": gone before this run starts, or a check made
	# before this run's shell truncates it passes, the next one fails at once, and a run
	# that just started looked hung before its command (the "hang" of issue 18's first bug).
	rm -f "$T/fifo" "$T/run.out" "$T/run.err" && mkfifo "$T/fifo"
	ls "$SANDBAR_STATE_DIR/leases" 2>/dev/null >"$T/leases.before"
	_t0=$(now_ms)
	(cd "$W" && exec "$SB" run -q -i -- sh -c "$REMOTE
echo ready; read go" <"$T/fifo" >"$T/run.out" 2>"$T/run.err") &
	run_pid=$!
	exec 3>"$T/fifo"
	# staging a few thousand files takes seconds, more under ASan on a loaded host
	while ! grep -q ready "$T/run.out" 2>/dev/null && [ $(($(now_ms) - _t0)) -lt 120000 ]; do
		sleep 0.05
	done
	if ! grep -q ready "$T/run.out" 2>/dev/null; then
		exec 3>&-
		kill -0 $run_pid 2>/dev/null && _st=running || _st=ended
		kill -KILL $run_pid 2>/dev/null
		wait $run_pid 2>/dev/null
		bad "the command never got ready in $(($(now_ms) - _t0)) ms (run $_st, status $?): out: $(tail -c 200 "$T/run.out" | tr '\n' ' ') err: $(tail -c 300 "$T/run.err" | tr '\n' ' ')"
		return 1
	fi
	(cd "$W" && sh -c "$LOCAL") || bad "local edits failed"
	manifest "$W" >"$1"
	released=$(now_ms)
	echo go >&3
	exec 3>&-
}

# Wait until no process of a sandbox of ours runs (10 s at most; its init's grace is 2 s).
sandbox_gone() {
	_i=0
	while [ "$(sandbox_procs)" != 0 ] && [ $_i -lt 100 ]; do
		sleep 0.1
		_i=$((_i + 1))
	done
	[ "$(sandbox_procs)" = 0 ]
}

# A random delay in [0, $1) ms, as seconds for sleep.
random_delay() {
	awk -v span="$1" -v seed="$2" 'BEGIN { srand(seed); printf "%.3f", rand() * span / 1000 }'
}

make_base
REMOTE=$(edits remote)
LOCAL=$(edits local)

# The uninterrupted result, and how long a restore takes (release to exit).
trial=ref
start_run "$T/ref.old" || exit 1
wait $run_pid
rc=$?
span=$(($(now_ms) - released))
[ $rc = 0 ] || { note "the uninterrupted run exited $rc: $(cat "$T/run.err")"; exit 1; }
manifest "$W" >"$T/ref.new"
grep -q 'sandbar-remote' "$T/ref.new" || note "the uninterrupted run made no conflict copy"
rm -rf "$REF" && mv "$W" "$REF"
note "$NFILES files; an uninterrupted restore takes $span ms"

# SIGKILL process $1 after a random part of the restore span (seed $2); succeeds when the kill
# landed (the process had not finished). Then every file must be old or new ($3 names when).
kill_and_check() {
	sleep "$(random_delay "$span" "$2")"
	kill -KILL "$1" 2>/dev/null
	wait "$1" 2>/dev/null
	_rc=$?
	manifest "$W" >"$T/cur"
	_off=$(old_or_new "$T/cur" "$T/old" "$T/ref.new" | head -5)
	[ -z "$_off" ] || bad "after the $3's kill, neither old nor new: $_off"
	[ $_rc = 137 ]
}

trial=0
while [ $trial -lt "$TRIALS" ]; do
	trial_fail=0
	[ $((trial % 2)) = 0 ] && SANDBAR_SYNC=full || SANDBAR_SYNC=incremental
	export SANDBAR_SYNC
	if start_run "$T/old"; then
		kill_and_check $run_pid "$trial$$" run && killed_run=$((killed_run + 1))
		sandbox_gone || bad "$(sandbox_procs) sandbox processes still run 10 s after the kill"
		# this run's lease: not one an earlier trial left
		lease=$(ls "$SANDBAR_STATE_DIR/leases" 2>/dev/null | grep '^run-' |
			grep -vxF -f "$T/leases.before" | head -1)
		rm -f "$T/pull1.err" "$T/pull2.err" "$T/prune.out"
		if [ -n "$lease" ]; then
			# the pull killed at a random point of its own restore
			(cd "$W" && exec "$SB" pull "$lease" -q >/dev/null 2>"$T/pull1.err") &
			kill_and_check $! "$trial$$-pull" pull && killed_pull=$((killed_pull + 1))
			# a pull that got as far as dropping the lease's runtime state has brought
			# the work home; otherwise the next pull finishes the job
			if [ -e "$SANDBAR_STATE_DIR/runtime/$lease.json" ]; then
				(cd "$W" && "$SB" pull "$lease" -q >/dev/null 2>"$T/pull2.err") ||
					bad "the final pull failed: $(cat "$T/pull2.err")"
			fi
			"$SB" lease prune >"$T/prune.out" 2>&1 || bad "lease prune failed: $(cat "$T/prune.out")"
		fi
		manifest "$W" >"$T/cur"
		if ! cmp -s "$T/cur" "$T/ref.new"; then
			bad "no convergence: $(diff "$T/ref.new" "$T/cur" | head -5 | tr '\n' ' ')"
		fi
		[ ! -e "$W/.sandbar-restore" ] || bad ".sandbar-restore left after the final pull"
		left=$(ls "$SANDBAR_STATE_DIR/leases" 2>/dev/null)
		if [ -n "$left" ]; then
			bad "leases left: $(cd "$SANDBAR_STATE_DIR/leases" && find . -maxdepth 2 | sort | tr '\n' ' '); listed: $("$SB" lease list 2>&1 | tail -n +2 | tr '\n' ' '); killed pull said: $(cat "$T/pull1.err" 2>/dev/null | tr '\n' ' '); final pull said: $(cat "$T/pull2.err" 2>/dev/null | tr '\n' ' '); prune said: $(cat "$T/prune.out" 2>/dev/null | tr '\n' ' ')"
			# the next trial starts clean all the same
			for l in $left; do "$SB" lease destroy "$l" >/dev/null 2>&1; done
		fi
		[ "$(sandbox_procs)" = 0 ] || bad "$(sandbox_procs) sandbox processes left"
	fi
	failures=$((failures + trial_fail))
	trial=$((trial + 1))
done

printf 'sandbar run, then sandbar pull, SIGKILLed mid-restore (%s files, both sides changed)\t%s\t%s\t%s\n' \
	"$NFILES" "$TRIALS" "$failures" \
	"sync modes full and incremental alternately; runs killed $killed_run, pulls killed $killed_pull; restore span $span ms; every file old or new, pull converges"
[ $failures = 0 ]
