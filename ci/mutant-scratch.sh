# Sourced by ci/mutants.sh and ci/fuzz-mutants.sh: the scratch copy of the
# working tree in which a mutant is built, so that the checkout is never
# patched, and the build script that gives the `gostack` crate alone the
# mutant's cfg (RUSTFLAGS would reach every crate and rebuild them all).
#
# mutant_scratch ROOT PREFIX EXCLUDE...: copies ROOT (minus .git, target
# and each EXCLUDE, relative paths like ./fuzz/target) into a new
# directory, sets $scratch to it (removed on exit), cds into it and adds
# the build script `impl/mutant-cfg.rs` to impl/Cargo.toml.
mutant_scratch() {
    local root=$1 prefix=$2
    shift 2
    local excludes=(--exclude=./.git --exclude=./target)
    for e in "$@"; do excludes+=("--exclude=$e"); done
    scratch=$(mktemp -d "${TMPDIR:-/tmp}/$prefix.XXXXXX")
    trap 'rm -rf "$scratch"' EXIT
    tar -C "$root" "${excludes[@]}" -cf - . | tar -C "$scratch" -xf -
    cd "$scratch"
    sed -i 's/^name = "gostack"$/name = "gostack"\nbuild = "mutant-cfg.rs"/' impl/Cargo.toml
    grep -q '^build = "mutant-cfg.rs"$' impl/Cargo.toml || {
        echo "$prefix: cannot add the build script to impl/Cargo.toml" >&2
        exit 2
    }
}

# mutant_cfg NAME|none: the cfg the next build gives the gostack crate.
mutant_cfg() {
    if [[ $1 == none ]]; then
        echo 'fn main() {}' >impl/mutant-cfg.rs
    else
        printf 'fn main() {\n    println!("cargo:rustc-cfg=gostack_mutant=\\"%s\\"");\n}\n' "$1" \
            >impl/mutant-cfg.rs
    fi
}
