#!/usr/bin/env bash
# Fault point source.transfer.cut: the source drops the connection in the middle of the transfer.
# The migration must be rolled back: the container keeps running on edge-a
# as the same process and nothing is left on edge-b.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

fault_case source.transfer.cut a
