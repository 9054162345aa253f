#!/usr/bin/env bash
# The main job: set-up, then the demo (for now: the real routing table in the C tables).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/bootstrap.sh >/dev/null
exec "${PYTHON:-python3}" -m vrouter table-demo "$@"
