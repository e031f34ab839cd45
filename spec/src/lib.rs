//! # gostack-spec: the Go goroutine stack system, written to be read
//!
//! This crate is the executable specification of how the Go runtime sizes,
//! checks, pools, grows, shrinks and copies goroutine stacks. It follows the
//! Go 1.23 runtime and toolchain and also answers for Go 1.19 wherever the
//! rules differ. Where this crate and Go disagree, Go is right and this crate
//! has a bug.
//!
//! House rules (see `docs/ARCHITECTURE.md` section 3):
//! - no `unsafe`, plain data structures, no cleverness;
//! - one Rust function per Go function that matters, citing it by name and
//!   file;
//! - every operation returns `Result<_, Throw>`; Go's `throw`s are values
//!   with Go's exact message ([`GoThrow`]), misuse that Go would not catch
//!   is refused with our own message ([`Misuse`]), input no Go process can
//!   produce is [`Invalid`]; a refused operation changes nothing (each public
//!   operation runs on a copy of the state and keeps it only on success),
//!   and a Go throw is fatal, as in Go: the state stays as it was before it,
//!   [`State::dead`] records it, and every later operation is refused.
//! - operations are atomic and sequential: transient states inside one
//!   operation (`_Gcopystack`, the scan bit, a lock held across a copy) are
//!   not observable here; the loom models of the implementation explore
//!   the interleavings.
//!
//! Modules:
//! - [`profile`]: a platform (`goos`, `goarch`, race, release) and every
//!   stack constant derived from it;
//! - [`guard`]: the prologue stack-split check the compiler emits;
//! - [`nosplit`]: the linker's proof that no chain of NOSPLIT functions
//!   outgrows the nosplit budget, and a reader for Go's test/nosplit.go;
//! - [`heap`]: the page heap as the stack system sees Go's mheap;
//! - [`stack`]: the stack allocator (stackpool, per-P stackcache,
//!   stackLarge) and GC-deferred span freeing, over [`State`];
//! - [`goroutine`]: goroutines whose frames live in stack memory (amd64,
//!   386 and arm64 layouts), newstack, shrinkstack, copystack with pointer
//!   adjustment, and the sudog/channel parking protocol;
//! - [`invariants`]: every invariant of the state, checked in one place;
//! - [`coverage`]: which branches and throws a run reached;
//! - [`snapshot`]: the observable state and Go's statistics;
//! - [`throw`] and [`gothrow`]: the error values.
//!
//! # Example
//! A Go 1.23 linux/amd64 stack system: a goroutine whose frame does not
//! fit its first 2 KiB stack grows to 4 KiB, a GC scan of it when shallow
//! again halves it, and its exit keeps the stack for reuse.
//! ```
//! use gostack_spec::goroutine::Func;
//! use gostack_spec::{check_invariants, Config, Ctx, Profile, State};
//!
//! let profile = Profile::parse("linux", "amd64", false, "1.23").unwrap();
//! assert_eq!(profile.consts().stack_guard, 928);
//! let mut s = State::new(Config::new(profile)).unwrap();
//! let p = s.create_p().unwrap();
//! let main = s.add_func(Func::new("main", 64)).unwrap();
//! let big = s.add_func(Func::new("big", 1504)).unwrap();
//! let g = s.spawn(Ctx::on(p), main).unwrap();
//! let size = |s: &State| s.gor.gs[&g].stack.hi - s.gor.gs[&g].stack.lo;
//! assert_eq!(size(&s), 2048);
//! s.call(Ctx::on(p), g, 0, big).unwrap(); // the prologue fails: newstack
//! assert_eq!(size(&s), 4096);
//! s.ret(Ctx::on(p), g).unwrap();
//! s.gc_start().unwrap();
//! s.gc_scan(p, g).unwrap(); // scanstack shrinks it
//! assert_eq!(size(&s), 2048);
//! s.gc_end().unwrap();
//! check_invariants(&s).unwrap();
//! // A Go throw is a value with Go's exact text. It is fatal, as in Go:
//! // the runtime refuses everything after it.
//! let err = s.stackalloc(Ctx::on(p), 3000).unwrap_err();
//! assert_eq!(err.to_string(), "stack size not a power of 2");
//! assert!(s.dead.is_some());
//! assert!(s.create_p().is_err());
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod coverage;
pub mod goroutine;
pub mod gothrow;
pub mod guard;
pub mod heap;
pub mod invariants;
pub mod nosplit;
pub mod profile;
pub mod snapshot;
pub mod stack;
pub mod throw;

pub use gothrow::{GoThrow, Misuse, GOMAXPROCS_WAITS, WORLD_STOPPED};
pub use guard::{needs_morestack, prologue, Calls, Prologue, SplitForm};
pub use invariants::{check_invariants, Violation};
pub use profile::{Consts, Goarch, Goos, Profile, Release};
pub use snapshot::{Snapshot, Stats};
pub use stack::{Config, Ctx, GcPhase, Godebug, Stack, State};
pub use throw::{Invalid, Throw};
