#!/bin/sh
# Installs the Debian packages that building and testing jottafs need.
# As root: installs what is missing (apt-get update first). Otherwise: prints
# the exact command and fails, so nothing half-works silently.
set -eu
PKGS="build-essential pkg-config libfuse3-dev fuse3 libcurl4-openssl-dev libcjson-dev
libssl-dev libexpat1-dev libsqlite3-dev libcmocka-dev python3 python3-pytest rclone fio git curl
openssl sqlite3 attr rsync tar groff-base groff cppcheck ca-certificates procps psmisc restic strace
unicode-data"
missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then
	echo "deps: installing:$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq </dev/null
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $missing </dev/null
else
	echo "deps: missing Debian packages; run as root:" >&2
	echo "  apt-get install -y$missing" >&2
	exit 1
fi
