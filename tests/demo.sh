#!/bin/sh
# make demo: start the bundled Jottacloud emulator with a sample tree, log in
# to it with `jottafs login`, and mount it at ./demo-mnt.
#   sh tests/demo.sh        start (idempotent: stops a previous demo first)
#   sh tests/demo.sh stop   unmount and stop the emulator
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
bin=${JOTTAFS_BIN:-$top/build/jottafs}
data=$top/demo-data
mnt=$top/demo-mnt
emu=$top/tests/emulator/jottaemu
export XDG_CONFIG_HOME="$data/config" XDG_CACHE_HOME="$data/cache"

stop() {
	if mountpoint -q "$mnt" 2>/dev/null; then
		fusermount3 -u "$mnt" && echo "demo: unmounted $mnt"
	fi
	if [ -f "$data/emulator.pid" ]; then
		kill "$(cat "$data/emulator.pid")" 2>/dev/null || true
		rm -f "$data/emulator.pid"
		echo "demo: emulator stopped"
	fi
}

if [ "${1:-}" = stop ]; then
	stop
	exit 0
fi
stop
# A fresh demo each time: the emulator's tree, and the cache and login of
# the previous demo (its pending uploads would land in the new tree).
rm -rf "$data/emu" "$data/cache" "$data/config"
mkdir -p "$data/emu" "$data/config" "$data/cache" "$mnt"

"$emu" serve --data "$data/emu" --port 0 >"$data/emulator.out" 2>"$data/emulator.log" &
echo $! >"$data/emulator.pid"
i=0
until grep -q '^ready ' "$data/emulator.out" 2>/dev/null; do
	i=$((i + 1))
	if [ $i -gt 100 ] || ! kill -0 "$(cat "$data/emulator.pid")" 2>/dev/null; then
		echo "demo: the emulator did not start; see $data/emulator.log" >&2
		exit 1
	fi
	sleep 0.1
done
url=$(sed -n 's/^ready //p' "$data/emulator.out")
echo "demo: emulator at $url (data in $data/emu)"

"$emu" seed --data "$data/emu" --user demo "$top/tests/demo-tree.json" >/dev/null
"$emu" login-token --data "$data/emu" --user demo |
	"$bin" login --account demo -o "api_url=$url,jfs_url=$url/jfs"

"$bin" -o account=demo "$mnt"
echo "demo: mounted Jotta/Archive of the demo account at $mnt"
echo "demo: try: ls -la $mnt; find $mnt; cat \"$mnt/README.txt\""
echo "demo: the demo account lives in $XDG_CONFIG_HOME: XDG_CONFIG_HOME=$XDG_CONFIG_HOME $bin about --account demo"
echo "demo: stop with: sh tests/demo.sh stop   (or: make demo-stop)"
ls -la "$mnt"
