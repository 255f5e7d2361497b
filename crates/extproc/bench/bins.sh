# Sourced by the bench scripts: sets `bin` to the directory of policy-kernel, policy-agent and
# examples/extproc_load. BIN_DIR runs other builds laid out the same way (a baseline kept from
# an earlier commit, to compare in the same session); otherwise the tree is built.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/policyhub-target-extproc}"
if [ -n "${BIN_DIR:-}" ]; then
  bin="$BIN_DIR"
else
  cargo build --release -p policyhub-extproc --bins --examples >/dev/null
  bin="$CARGO_TARGET_DIR/release"
fi
