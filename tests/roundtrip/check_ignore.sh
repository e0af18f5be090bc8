# .sandbarignore, --exclude and --gitignore select exactly what git's own `git check-ignore`
# says is not ignored, on a corpus of patterns.
. "$SB_RT_LIB"
W="$T/ws"
mkdir -p "$W" && cd "$W" && git init -q .
for f in a.txt b.log keep.log top.txt sub/top.txt doc/x.md doc/deep/y.md src/deep/m.c \
	src/deep/n.h deep/z.c abc a1c build/o.o sub/build/p.o tmp/t "sp ace.txt" x.bak \
	y.bak/inner notes/keep.md notes/drop.md; do
	mkdir -p "$(dirname "$f")" && echo "$f" >"$f"
done
cat >"$T/patterns" <<'P'
*.log
!keep.log
/top.txt
doc/*.md
**/deep/*.c
a?c
build/
tmp
*.bak
notes/*
!notes/keep.md
sp\ ace.txt
P
corpus() { find . -path ./.git -prune -o -type f -print | sed 's|^\./||' | grep -v -e '^\.sandbarignore$' -e '^\.gitignore$' -e '^\.git/' | sort; }
expected() {
	corpus >"$T/all"
	git -c core.excludesFile=/dev/null check-ignore --stdin <"$T/all" | sort >"$T/ign" || true
	comm -23 "$T/all" "$T/ign"
}
staged() { grep '^stage ' | sed 's/^stage //; s/^"\(.*\)"$/\1/' | grep -v '/$' | grep -v -e '^\.sandbarignore$' -e '^\.gitignore$' -e '^\.git/' | sort; }

# 1. .sandbarignore (git sees the same rules as .gitignore)
cp "$T/patterns" .sandbarignore
cp "$T/patterns" .gitignore
expected >"$T/exp"
[ "$(wc -l <"$T/exp")" -ge 5 ] || fail "corpus too small"
"$SB" run --dry-run | staged >"$T/got"
diff "$T/exp" "$T/got" || fail ".sandbarignore differs from git check-ignore"
# 2. --exclude flags
rm .sandbarignore
set --
while IFS= read -r p; do set -- "$@" --exclude "$p"; done <"$T/patterns"
"$SB" run --dry-run "$@" | staged >"$T/got"
diff "$T/exp" "$T/got" || fail "--exclude differs from git check-ignore"
# 3. --gitignore, with a nested .gitignore and info/exclude
printf '*.h\n' >src/.gitignore
printf 'abc\n' >.git/info/exclude
expected >"$T/exp2"
"$SB" run --dry-run --gitignore | staged >"$T/got"
diff "$T/exp2" "$T/got" || fail "--gitignore differs from git check-ignore"
grep -qx 'abc' "$T/exp2" && fail "info/exclude not honoured by git?"
# 4. without --gitignore the .gitignore files do not apply
"$SB" run --dry-run | staged | grep -qx 'b.log' || fail ".gitignore applied without --gitignore"
echo ok
