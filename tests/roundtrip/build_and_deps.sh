# A cmake-like job's build/ comes back, and an npm-like tree's node_modules is staged: nothing
# is excluded by default. With the paperclip preset both stay on their side.
. "$SB_RT_LIB"
W="$T/ws"
make_repo "$W"
mkdir -p "$W/node_modules/dep" && echo 'module.exports = 1' >"$W/node_modules/dep/index.js"
cd "$W"
"$SB" run -q -- sh -c 'test -f node_modules/dep/index.js || exit 9
  git status --porcelain >/dev/null || exit 8
  mkdir -p build && echo obj >build/main.o && mkdir -p sub/out && echo o >sub/out/x' \
	|| fail "run failed: $?"
[ "$(cat build/main.o)" = obj ] || fail "build/ did not come back"
[ -f sub/out/x ] || fail "sub/out did not come back"
rm -rf build sub
"$SB" run --json --exclude-preset paperclip -- sh -c 'test ! -e node_modules || exit 9
  test ! -e .git || exit 8; mkdir build && echo x >build/y' >"$T/out.json" \
	|| fail "preset run failed: $?"
[ ! -e build ] || fail "the paperclip preset restored build/"
grep -q '"preset": *{[^}]*"entries": *2' "$T/out.json" || fail "json does not count the preset's exclusions: $(cat "$T/out.json")"
echo ok
