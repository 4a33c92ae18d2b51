#!/usr/bin/env bash
# Debian packages the checks use: chromium (tests/site, the browser suite) and a
# one-node SLURM (slurm-wlm, munge) that tests/test_slurm.py starts and stops.
# Installs what is missing when run as root on a Debian/Ubuntu machine;
# elsewhere it says what to install (those suites then skip, naming the reason).
set -euo pipefail
need=()
# HW2_CHROMIUM names another Chromium/Chrome binary for the site suite.
[ -x "${HW2_CHROMIUM:-}" ] || command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v slurmctld >/dev/null 2>&1 || need+=(slurm-wlm)
command -v munged >/dev/null 2>&1 || need+=(munge)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "system_deps: installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
else
    echo "system_deps: not installed: ${need[*]} (sudo apt-get install ${need[*]});" \
         "the browser and SLURM suites skip without them" >&2
fi
