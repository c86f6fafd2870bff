#!/usr/bin/env bash
# Prints the environment StackStorm gives an action, one VAR=value per line, sorted.
env | grep '^ST2_' | sort
