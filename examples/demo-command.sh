#!/bin/sh
# The command `make run` runs inside the sandbox, from the staged copy of examples/demo:
# prints a few lines over a couple of seconds, edits one file, creates one and deletes one.
set -eu
echo "running as uid $(id -u) in $(pwd)"
sleep 0.5
echo "step 1/3: editing notes.txt"
echo "line added inside the sandbox at $(date -u +%H:%M:%S)" >> notes.txt
sleep 0.5
echo "step 2/3: creating src/generated.txt"
echo "generated inside the sandbox" > src/generated.txt
sleep 0.5
echo "step 3/3: deleting obsolete.txt"
rm obsolete.txt
sleep 0.5
echo "done" >&2
