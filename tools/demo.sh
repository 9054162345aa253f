#!/usr/bin/env bash
# The main job: set-up, then `vrouter demo`: a two-node cluster in network namespaces, driven by the
# agent from CN2-style intent, its reachability matrix probed with real traffic (expected vs observed).
# Options go to `vrouter demo` (--keep, --json, --encap mplsoudp, --intent FILE); see vrouter demo --help.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/bootstrap.sh >&2   # one line a step on stderr (--json stays clean); a fresh machine: a minute or two
exec "${PYTHON:-python3}" -m vrouter demo "$@"
