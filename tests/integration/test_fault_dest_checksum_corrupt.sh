#!/usr/bin/env bash
# Fault point dest.checksum.corrupt: the destination finds a received image file corrupted.
# The migration must be rolled back: the container keeps running on edge-a
# as the same process and nothing is left on edge-b.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

fault_case dest.checksum.corrupt b
