# Shared fixture of the roundtrip tests: a private temporary tree with its own state directory,
# removed on every exit path together with any sandbox a test left running.
set -eu
SB="$SB_TEST_BUILD_DIR/sandbar"
T=$(mktemp -d /tmp/sb-roundtrip-XXXXXX)
chmod 755 "$T"
export SANDBAR_STATE_DIR="$T/state"
export GIT_CONFIG_NOSYSTEM=1 HOME="$T/home"
mkdir -p "$HOME"
git config --global user.email t@example.com
git config --global user.name tester
git config --global safe.directory '*'
git config --global init.defaultBranch main

# Identity for commits made inside the sandbox (its HOME is not ours).
GITID="-e GIT_AUTHOR_NAME=t -e GIT_AUTHOR_EMAIL=t@example.com -e GIT_COMMITTER_NAME=t -e GIT_COMMITTER_EMAIL=t@example.com"

# Processes that belong to this test's sandboxes: bwrap and sandbar-init write to a log in our
# state directory, and every process in a pid namespace of theirs is in a sandbox of ours (the
# bind sources on bwrap's command line are in a private mount namespace, so command lines do
# not name the state directory).
sandbox_pids() {
	self_ns=$(readlink /proc/self/ns/pid)
	find /proc -maxdepth 3 -path '/proc/[0-9]*/fd/2' -lname "$T/state/*" 2>/dev/null \
		| cut -d/ -f3 >"$T/.pids" || true
	find /proc -maxdepth 3 -path '/proc/[0-9]*/ns/pid' -printf '%p %l\n' 2>/dev/null \
		| awk -v self="$self_ns" -v pidfile="$T/.pids" '
			BEGIN { while ((getline p < pidfile) > 0) mine[p] = 1 }
			{ split($1, f, "/"); pid = f[3]; ns[pid] = $2 }
			END {
				for (p in mine) { print p; if (ns[p] != self) keep[ns[p]] = 1 }
				for (p in ns) if (ns[p] in keep) print p
			}' | sort -u
}

sandbox_procs() {
	sandbox_pids | sort -u | grep -c . || true
}

cleanup() {
	rc=$?
	for p in $(sandbox_pids); do
		kill -KILL "$p" 2>/dev/null || true
	done
	for m in $(awk -v t="$T" 'index($2, t) == 1 {print $2}' /proc/mounts | sort -r); do
		umount -l "$m" 2>/dev/null || true
	done
	rm -rf "$T"
	exit $rc
}
trap cleanup EXIT INT TERM

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

# Wait (60 s at most) until the background run PID has written "ready" to OUT; kill it and fail
# naming WHAT if it never does.
wait_ready() {
	_i=0
	while ! grep -q ready "$1" && [ $_i -lt 600 ]; do sleep 0.1; _i=$((_i + 1)); done
	grep -q ready "$1" || { kill -KILL "$2"; fail "$3: the command never started"; }
}

# A git repository with one commit, owned by nobody like a user's checkout.
make_repo() {
	mkdir -p "$1"
	(cd "$1" && git init -q . && echo hello >a.txt && git add a.txt && git commit -qm init)
}
