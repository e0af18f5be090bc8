#!/bin/sh
# meta.lean_start: the sandbar binary links none of the libraries whose dependency trees would
# cost every sandbar process milliseconds of start: libmicrohttpd and SQLite (the daemon is the
# sandbar-serve program, src/cli/CMakeLists.txt), libcurl (src/runner/curl_loader.c), libarchive
# and libgit2 (src/base/archive_loader.c, git_loader.c load them on first use). sandbar-serve
# loads libarchive and libgit2 the same way.
# usage: lean_start.sh <sandbar> <sandbar-serve>
set -u
sandbar=$1
serve=$2
fail=0

readelf -d "$sandbar" >/dev/null || exit 1
if readelf -d "$sandbar" | grep -Ei 'NEEDED.*(libcurl|libmicrohttpd|libsqlite|libarchive|libgit2)'; then
	echo "sandbar links a library only the daemon, --bridge, archives or git need"
	fail=1
fi
# The whole tree the dynamic linker loads, not only the direct needs: libarchive's (libxml2,
# ICU, libstdc++) and libgit2's (mbedtls, libssh2, PCRE2, http-parser) must not come back
# through another library either.
if ldd "$sandbar" | grep -Ei 'libarchive|libgit2|libxml2|libicu|libstdc\+\+|libmbed|libssh2|libpcre2|libhttp_parser'; then
	echo "sandbar loads part of libarchive's or libgit2's dependency tree at start"
	fail=1
fi
if readelf -d "$serve" | grep -Ei 'NEEDED.*(libarchive|libgit2)'; then
	echo "sandbar-serve links libarchive or libgit2 (the base layer loads them on first use)"
	fail=1
fi
readelf -d "$serve" | grep -q 'NEEDED.*libmicrohttpd' || {
	echo 'sandbar-serve does not link libmicrohttpd?'
	fail=1
}
[ "$fail" -eq 0 ] && echo 'sandbar needs none of libcurl, libmicrohttpd, SQLite, libarchive, libgit2'
exit "$fail"
