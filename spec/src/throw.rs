//! Errors: Go's fatal `throw`s as values, and inputs Go could never produce.
//!
//! Go dies on a `throw`. The spec returns the throw as a value, leaves its
//! state exactly as it was before the operation (for a post-mortem), and
//! dies too: every later operation is refused with [`Misuse::Dead`]. A
//! refusal ([`Throw::Misuse`], [`Throw::Invalid`]) changes nothing and the
//! runtime goes on.
//!
//! There are two kinds of error:
//! - [`Throw`] variants other than [`Throw::Invalid`] are Go's own throws; their
//!   `Display` is Go's message, byte for byte. (They arrive with the modules
//!   that can raise them.)
//! - [`Throw::Invalid`] is for input that cannot exist in a Go process at all:
//!   an unknown `GOOS`, a frame size the assembler cannot encode, a 64-bit
//!   value offered as a 32-bit pointer. Its messages are ours, and each one
//!   says what would have been accepted.

use std::fmt;

pub use crate::gothrow::{GoThrow, Misuse};

/// The outcome of a failed spec operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Throw {
    /// One of Go's own throws; its message is Go's, byte for byte.
    Go(GoThrow),
    /// Input a correct runtime never gives, where Go would carry on with
    /// corrupted memory instead of throwing; see [`Misuse`].
    Misuse(Misuse),
    /// Input that no Go process could produce; see [`Invalid`].
    Invalid(Invalid),
}

/// Input that cannot exist in Go, with what would have been accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Invalid {
    /// A `GOOS` the spec does not know.
    UnknownGoos(String),
    /// A `GOARCH` the spec does not know.
    UnknownGoarch(String),
    /// A Go release the spec does not model.
    UnknownRelease(String),
    /// A known `GOOS` and `GOARCH` that the release does not support as a
    /// pair (as `go tool dist list` of that release says).
    NoSuchPort {
        /// The requested `GOOS`.
        goos: &'static str,
        /// The requested `GOARCH`.
        goarch: &'static str,
        /// The release asked for.
        release: &'static str,
    },
    /// An architecture whose compiler prologue the spec does not model.
    PrologueNotModeled(&'static str),
    /// A frame size the assembler cannot represent (it holds frame sizes in
    /// an `int32`, see `stacksplit` in cmd/internal/obj/x86/obj6.go).
    FrameTooLarge(u64),
    /// A line of a `test/nosplit.go` stanza that the reader cannot take
    /// (see [`crate::nosplit::read_stanzas`]).
    Stanza {
        /// The 1-based line number in the file.
        line: usize,
        /// What is wrong, naming the offending text.
        problem: String,
        /// What would have been accepted there.
        accepted: &'static str,
    },
    /// An architecture whose assembler frame rules the nosplit analysis does
    /// not model (see [`crate::nosplit::NOSPLIT_ARCHES`]).
    NosplitNotModeled(&'static str),
    /// A register value wider than the profile's pointer size.
    NotAPointer {
        /// The value offered.
        value: u64,
        /// The pointer width in bits.
        bits: u32,
    },
}

impl fmt::Display for Throw {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Throw::Go(g) => g.fmt(f),
            Throw::Misuse(m) => m.fmt(f),
            Throw::Invalid(i) => i.fmt(f),
        }
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use crate::profile::{Goarch, Goos, Release};
        fn list<T: Copy>(all: &[T], name: fn(T) -> &'static str) -> String {
            all.iter().map(|x| name(*x)).collect::<Vec<_>>().join(", ")
        }
        match self {
            Invalid::UnknownGoos(s) => write!(
                f,
                "unknown goos {s:?}; accepted: {}",
                list(Goos::ALL, Goos::name)
            ),
            Invalid::UnknownGoarch(s) => write!(
                f,
                "unknown goarch {s:?}; accepted: {}",
                list(Goarch::ALL, Goarch::name)
            ),
            Invalid::UnknownRelease(s) => write!(
                f,
                "unknown release {s:?}; accepted: {}",
                list(Release::ALL, Release::name)
            ),
            Invalid::NoSuchPort {
                goos,
                goarch,
                release,
            } => {
                let release_v = Release::ALL
                    .iter()
                    .copied()
                    .find(|r| r.name() == *release)
                    .unwrap_or(Release::Go1_23);
                let archs: Vec<&str> = Goarch::ALL
                    .iter()
                    .filter(|a| release_v.has_port(goos, a.name()))
                    .map(|a| a.name())
                    .collect();
                if archs.is_empty() {
                    write!(f, "{goos}/{goarch} is not a Go {release} port; Go {release} has no {goos} port")
                } else {
                    write!(
                        f,
                        "{goos}/{goarch} is not a Go {release} port; {goos} accepts: {}",
                        archs.join(", ")
                    )
                }
            }
            Invalid::PrologueNotModeled(a) => write!(
                f,
                "the split-check prologue of {a} is not modeled; accepted: {}",
                list(crate::guard::MODELED_ARCHES, Goarch::name)
            ),
            Invalid::FrameTooLarge(n) => write!(
                f,
                "frame size {n} cannot exist; accepted: 0 to {} (the assembler's int32)",
                crate::guard::MAX_FRAMESIZE
            ),
            Invalid::Stanza {
                line,
                problem,
                accepted,
            } => write!(f, "line {line}: {problem}; accepted: {accepted}"),
            Invalid::NosplitNotModeled(a) => write!(
                f,
                "the assembler frame rules of {a} are not modeled; accepted: {}",
                list(crate::nosplit::NOSPLIT_ARCHES, Goarch::name)
            ),
            Invalid::NotAPointer { value, bits } => write!(
                f,
                "{value:#x} does not fit in a {bits}-bit pointer; accepted: 0 to {:#x}",
                if *bits >= 64 {
                    u64::MAX
                } else {
                    (1u64 << bits) - 1
                }
            ),
        }
    }
}

impl std::error::Error for Throw {}

impl From<Invalid> for Throw {
    fn from(i: Invalid) -> Self {
        Throw::Invalid(i)
    }
}
