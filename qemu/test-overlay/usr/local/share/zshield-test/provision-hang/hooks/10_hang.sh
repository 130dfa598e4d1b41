#!/bin/sh
# TEST ONLY: a hook that never ends, with a child that holds its output; both
# must be killed at the hook's time limit.
echo "waiting forever"
sleep 100000 &
sleep 100000
