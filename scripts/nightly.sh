# Sourced by the scripts that need the nightly toolchain (miri.sh, sanitize.sh; fuzz.sh, which
# needs it only for a sanitizer asked for by name, and fails when it cannot have it):
# `ensure_nightly WHO [COMPONENT...]` makes sure nightly and the components are
# installed, installing what is missing (rustup fetches them), and returns 0 when they are.
# When they cannot be installed it fails the run under CI (CI=true: a check CI cannot run must
# not pass as run), and otherwise says plainly that WHO skipped and why, and returns 1.
#
# The toolchain list is read into a variable before it is searched: `rustup toolchain list |
# grep -q` under `pipefail` can fail when grep stops at its first match before rustup has
# written its last line (rustup then dies of SIGPIPE), which read as "no nightly" and skipped
# the check (a review of the scripts at stop 50).
ensure_nightly() {
    local who=$1
    shift
    local toolchains installed
    toolchains=$(rustup toolchain list 2>&1) || toolchains=""
    if ! grep -q '^nightly' <<<"$toolchains"; then
        echo "== installing the nightly toolchain for $who (with ${*:-no extra component})"
        local args=(--profile minimal)
        if [ $# -gt 0 ]; then
            args+=(--component "$@")
        fi
        if ! rustup toolchain install nightly "${args[@]}"; then
            nightly_unavailable "$who" "could not install the nightly toolchain"
            return 1
        fi
    fi
    installed=$(rustup component list --toolchain nightly --installed 2>&1) || installed=""
    local component
    for component in "$@"; do
        if ! grep -q "^$component" <<<"$installed"; then
            echo "== installing $component for nightly ($who)"
            if ! rustup component add "$component" --toolchain nightly; then
                nightly_unavailable "$who" "could not install $component for nightly"
                return 1
            fi
        fi
    done
}

nightly_unavailable() {
    # Any value but empty, `false` or `0` means CI (`.ci/run` runs with CI=true).
    case ${CI:-} in "" | false | 0) ;; *)
        echo "$1: FAILED: $2 (CI must run this check)" >&2
        exit 1
        ;;
    esac
    echo "$1: SKIPPED: $2; this check did not run"
}
