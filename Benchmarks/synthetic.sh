# Sourced by run.sh and core.sh (with $here set): the data directories, the
# environment the benchmarks run in, and the synthetic deployment repository
# (100,000 commits, 50 apps; built once by generate.py, git-ignored).
data="$here/data"
repo="$data/synthetic"
results="$data/results"
mkdir -p "$results" "$data/artifacts/shared"
touch "$data/artifacts/shared/runtime.tar.gz"
export REWIND_ARTIFACT_ROOT="$data/artifacts"
export GIT_AUTHOR_NAME=Bench GIT_AUTHOR_EMAIL=bench@example.com GIT_COMMITTER_NAME=Bench GIT_COMMITTER_EMAIL=bench@example.com
if [ ! -f "$repo/.generated" ]; then
  echo "generating the synthetic repository (once; a few minutes)..."
  rm -rf "$repo"
  python3 "$here/generate.py" "$repo"
  touch "$repo/.generated"
fi
