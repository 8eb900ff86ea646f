#!/usr/bin/env bash
# shellcheck disable=SC2317  # cleanup and procs_in_root run from the trap
# Runs `.ci/run` of a clean clone of a repository's committed HEAD inside a
# fresh Debian 12 (bookworm) minbase chroot, as CI runs it: root, CI=true, no
# stdin, a clean environment. A green CI on a development machine can hide a
# missing install step (packages installed there by hand); this cannot, since
# the root starts with nothing but debootstrap's minbase and .ci/run must
# install everything (make, then tests/deps.sh).
#
#   sudo bash tests/fresh-debian.sh [--reuse] [REPO]     (REPO: default this one)
#
# Files (override with ROOT=, PRISTINE=, LOG=):
#   /var/tmp/bookworm-root         the chroot (left in place, unmounted)
#   /var/tmp/bookworm-minbase.tar  pristine minbase, made once with debootstrap
#   /var/tmp/bookworm-ci.log       the full output of .ci/run
# Every run resets the root from the pristine tarball unless --reuse is given
# (keeps what a previous run installed: faster, for re-running test failures).
# RUN= replaces the command run in the clone, e.g. with --reuse:
#   RUN='make integration PYTEST_ARGS="-k truncate"' bash tests/fresh-debian.sh --reuse
#
# The chroot gets what every machine of this kind has and minbase lacks: the
# host's apt sources and apt settings (the only mirror reachable), its DNS
# config, /etc/hosts, /etc/mtab -> /proc/self/mounts, a root that is a mount
# point, /proc, /sys, /dev (with /dev/fuse), /dev/pts, a fresh /dev/shm and
# /run. All of it is unmounted on exit, and any process still running inside
# the root is killed first. The script's exit status is that of .ci/run.
set -euo pipefail
R=${ROOT:-/var/tmp/bookworm-root}
PRISTINE=${PRISTINE:-/var/tmp/bookworm-minbase.tar}
LOG=${LOG:-/var/tmp/bookworm-ci.log}
RUN=${RUN:-CI=true bash .ci/run}
reuse=0
if [ "${1:-}" = --reuse ]; then reuse=1; shift; fi
REPO=${1:-$(cd "$(dirname "$0")/.." && pwd)}
case "$R" in /|/work|/work/*) echo "error: refusing ROOT=$R" >&2; exit 1;; esac
[ "$(id -u)" = 0 ] || { echo "error: needs root (chroot, mount)" >&2; exit 1; }

# The Debian mirror the host's apt uses (first URIs:/deb line naming a suite).
host_mirror() {
	local f
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] && awk '/^URIs:/ { print $2; exit }' "$f"
	done | head -n1 | grep . && return 0
	cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
		awk '$1 == "deb" && $3 ~ /^bookworm$/ { print $2; exit }'
}

# PIDs of processes whose root directory is the chroot.
procs_in_root() {
	local p
	for p in /proc/[0-9]*; do
		[ "$(readlink "$p/root" 2>/dev/null)" = "$R" ] && echo "${p#/proc/}"
	done
	return 0
}

# Kills what still runs in the root, then unmounts everything under it.
cleanup() {
	set +e
	local pids m
	pids=$(procs_in_root)
	if [ -n "$pids" ]; then
		echo "cleanup: killing processes left in the root: $pids"
		# shellcheck disable=SC2086
		kill -TERM $pids 2>/dev/null; sleep 2
		pids=$(procs_in_root)
		# shellcheck disable=SC2086
		[ -n "$pids" ] && kill -KILL $pids 2>/dev/null && sleep 1
	fi
	# FUSE mounts the tests left behind (deepest first), then our own.
	findmnt -rn -o TARGET | grep -F "$R/" | sort -r | while read -r m; do
		case "$m" in "$R/proc"|"$R/sys"|"$R/sys/"*|"$R/dev"|"$R/dev/"*|"$R/run") continue;; esac
		echo "cleanup: unmounting leftover $m"
		umount -l "$m"
	done
	for m in run dev/shm dev/pts dev sys proc; do
		mountpoint -q "$R/$m" && umount -R "$R/$m"
	done
	mountpoint -q "$R" && umount -R "$R"
	if findmnt -rn -o TARGET | grep -qF "$R"; then
		echo "cleanup: WARNING: still mounted:"; findmnt -rn -o TARGET | grep -F "$R"
	fi
}

if findmnt -rn -o TARGET | grep -qF "$R"; then
	echo "error: something is mounted under $R (a run still going?)" >&2
	exit 1
fi
if [ ! -f "$PRISTINE" ]; then
	mirror=$(host_mirror)
	[ -n "$mirror" ] || { echo "error: no Debian mirror in the host's apt sources" >&2; exit 1; }
	command -v debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap; } </dev/null
	echo "debootstrap: minbase bookworm into $R"
	rm -rf --one-file-system "$R"
	debootstrap --variant=minbase bookworm "$R" "$mirror" >/var/tmp/debootstrap.log 2>&1 ||
		{ tail -20 /var/tmp/debootstrap.log; exit 1; }
	tar -C "$R" -cf "$PRISTINE.tmp" . && mv "$PRISTINE.tmp" "$PRISTINE"
elif [ $reuse = 0 ] || [ ! -d "$R/etc" ]; then
	echo "reset: $R from $PRISTINE"
	rm -rf --one-file-system "$R"
	mkdir -p "$R"
	tar -C "$R" -xf "$PRISTINE"
fi
trap cleanup EXIT INT TERM

# What a machine of this kind has beyond minbase: the host's apt sources and
# settings (the reachable mirror, its snapshot options), DNS, hosts, mtab.
rm -f "$R/etc/apt/sources.list"
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
	[ -f "$f" ] && cp "$f" "$R$f"
done
cp /etc/apt/apt.conf.d/* "$R/etc/apt/apt.conf.d/" 2>/dev/null || true
cp /etc/resolv.conf "$R/etc/resolv.conf"
ln -sfn /proc/self/mounts "$R/etc/mtab"
[ -e "$R/etc/hosts" ] || printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >"$R/etc/hosts"

rm -rf "$R/root/jottafs"
git clone -q "$REPO" "$R/root/jottafs"
echo "clone: $(git -C "$R/root/jottafs" log --oneline -1)"

# The root is a mount point of its own, as / is on a real machine (unshare
# --propagation, used by a test, fails with EINVAL on a plain directory).
mount --bind "$R" "$R"
mount --make-rprivate "$R"
mount -t proc proc "$R/proc"
mount --bind /sys "$R/sys"
mount --make-rslave "$R/sys"
mount --bind /dev "$R/dev"
mount --make-rslave "$R/dev"
mount --bind /dev/pts "$R/dev/pts"
mount -t tmpfs -o mode=1777 tmpfs "$R/dev/shm"
mount -t tmpfs -o mode=0755 tmpfs "$R/run"

echo "run: $RUN (in the chroot, full log: $LOG)"
start=$(date +%s)
set +e
# shellcheck disable=SC2016  # $RUN expands in the chroot's shell
env -i HOME=/root USER=root LOGNAME=root SHELL=/bin/bash TERM=dumb LANG=C.UTF-8 \
	PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
	CI=true RUN="$RUN" chroot "$R" /bin/bash -c 'cd /root/jottafs && eval "$RUN"' </dev/null >"$LOG" 2>&1
rc=$?
set -e
grep -E '^(FAILED|ERROR) |^=+ .*(passed|failed)|^ci: ' "$LOG" || tail -30 "$LOG"
echo "result: exit $rc after $(($(date +%s) - start)) s"
exit $rc
