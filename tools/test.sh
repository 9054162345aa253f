#!/usr/bin/env bash
# The whole test suite: set-up, the tests on the normal (-O3) build, then the
# C tables' tests again on an AddressSanitizer + UBSan build of the extension.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PY=${PYTHON:-python3}
bash tools/bootstrap.sh

echo "== tests (normal build)"
"$PY" -m pytest -q tests "$@"

echo "== tests (ASan + UBSan build)"
SAN=$(mktemp -d /tmp/vrouter-san.XXXXXX)
trap 'rm -rf "$SAN"' EXIT
tar --exclude=./build --exclude='*.so' --exclude=./.git --exclude='*.egg-info' -cf - . | tar -C "$SAN" -xf -
(cd "$SAN" && VROUTER_SANITIZE=1 "$PY" setup.py -q build_ext --inplace >/dev/null &&
    VROUTER_SANITIZE=1 "$PY" setup.py -q build_testext --inplace >/dev/null)
LIBASAN=$(gcc -print-file-name=libasan.so)
# Python itself is not instrumented and keeps memory until exit: leak
# detection is off; any other ASan/UBSan report aborts the run.
(cd "$SAN" && LD_PRELOAD="$LIBASAN" \
    ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:halt_on_error=1 \
    UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    HYPOTHESIS_PROFILE=sanitize \
    "$PY" -m pytest -q -p no:cacheprovider tests -m "not nosan" "$@")
