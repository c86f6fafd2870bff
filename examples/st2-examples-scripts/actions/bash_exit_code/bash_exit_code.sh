#!/usr/bin/env bash
# Exits with a random code between 0 and 2 and says which.
code=$((RANDOM % 3))
echo "exiting with ${code}"
exit "${code}"
