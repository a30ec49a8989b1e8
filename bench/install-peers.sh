#!/usr/bin/env bash
# Installs the Python peers the benchmark harness compares safepool with,
# from Debian's packages: billiard, pebble and joblib (with loky). They go
# into Debian's own interpreter, /usr/bin/python3.
#
# Quick when they are installed already. When they cannot be installed (no
# apt-get, not root, no mirror) it says why and exits 0: the harness then
# reports each missing peer in bench/RESULTS.md rather than leaving it out.
set -uo pipefail

packages=(python3-pebble python3-billiard python3-joblib)

if command -v dpkg-query >/dev/null 2>&1; then
	missing=()
	for p in "${packages[@]}"; do
		if [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" != "install ok installed" ]; then
			missing+=("$p")
		fi
	done
	if [ ${#missing[@]} -eq 0 ]; then
		echo "peers: ${packages[*]} installed"
		exit 0
	fi
else
	missing=("${packages[@]}")
fi

warn() {
	echo "peers: WARNING: $*; the harness will report the missing peers (${missing[*]})" >&2
	exit 0
}

command -v apt-get >/dev/null 2>&1 || warn "apt-get is not available"
sudo=
if [ "$(id -u)" -ne 0 ]; then
	command -v sudo >/dev/null 2>&1 || warn "not root and no sudo"
	sudo="sudo -n"
fi
echo "peers: apt-get install -y ${missing[*]}"
if ! $sudo apt-get install -y "${missing[@]}"; then
	echo "peers: apt-get update, then again"
	$sudo apt-get update || warn "apt-get update failed"
	$sudo apt-get install -y "${missing[@]}" || warn "apt-get install failed"
fi
