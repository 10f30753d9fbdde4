#!/bin/sh
# Called by Rewind's exec platform with REWIND_APP, REWIND_VERSION,
# REWIND_COMMIT, REWIND_TREE and REWIND_APP_DIR in the environment.
set -eu
echo "deploying $REWIND_APP $REWIND_VERSION from $REWIND_APP_DIR"
