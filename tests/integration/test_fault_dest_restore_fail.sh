#!/usr/bin/env bash
# Fault point dest.restore.fail: the destination's restore fails inside CRIU.
# The migration must be rolled back: the container keeps running on edge-a
# as the same process and nothing is left on edge-b.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

fault_case dest.restore.fail b
