#!/bin/sh
# build.layers: no layer's library refers to a symbol that only a layer above it (or beside it)
# defines. Arguments: the nm program, then one "layer=library[:lower,lower...]" per layer.
# Every sandbar symbol a layer leaves undefined must be defined by the layer itself or by one of
# the layers it is allowed to use; symbols no layer defines (libc, jansson, ...) are the
# linker's business (the sb_layercheck_* programs link each layer with only its lower layers).
set -eu
NM=$1
shift
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for spec in "$@"; do
	layer=${spec%%=*}
	rest=${spec#*=}
	lib=${rest%%:*}
	[ -f "$lib" ] || { echo "build.layers: no library for layer $layer at $lib (build first)"; exit 1; }
	"$NM" -g --defined-only "$lib" 2>/dev/null | awk 'NF==3 {print $3}' | sort -u >"$tmp/def.$layer"
	"$NM" -u "$lib" 2>/dev/null | awk '{print $NF}' | sort -u >"$tmp/und.$layer"
	[ -s "$tmp/def.$layer" ] || { echo "build.layers: $lib defines nothing"; exit 1; }
done
fail=0
checked=0
for spec in "$@"; do
	layer=${spec%%=*}
	rest=${spec#*=}
	lower=""
	case $rest in *:*) lower=$(echo "${rest#*:}" | tr ',' ' ') ;; esac
	cp "$tmp/def.$layer" "$tmp/allowed"
	for l in $lower; do cat "$tmp/def.$l" >>"$tmp/allowed"; done
	sort -u -o "$tmp/allowed" "$tmp/allowed"
	for other in "$@"; do
		o=${other%%=*}
		[ "$o" = "$layer" ] && continue
		case " $lower " in *" $o "*) continue ;; esac
		comm -12 "$tmp/und.$layer" "$tmp/def.$o" | comm -23 - "$tmp/allowed" >"$tmp/bad"
		if [ -s "$tmp/bad" ]; then
			echo "build.layers: layer '$layer' uses symbols of layer '$o', which is not below it:"
			sed 's/^/  /' "$tmp/bad"
			fail=1
		fi
	done
	checked=$((checked + 1))
	echo "layer $layer: $(wc -l <"$tmp/und.$layer") undefined symbols, none above it (uses: ${lower:-nothing})"
done
[ "$checked" -ge 6 ] || { echo "build.layers: only $checked layers checked"; exit 1; }
exit $fail
