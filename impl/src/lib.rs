//! # gostack: the Go goroutine stack system over real memory
//!
//! The optimized implementation of what `gostack-spec` specifies (see
//! `docs/ARCHITECTURE.md` sections 4 and 5): one arena reserved with memmap2, a page
//! heap with a bitmap and per-chunk summaries, span metadata in a table
//! indexed by page, Go's stackpool / per-P stackcache / stackLarge with
//! intrusive free lists stored in the free stacks themselves, Go's lock
//! structure, and GC-deferred span freeing. Its [`Stacks::snapshot`] equals
//! the spec's `State::snapshot` after the same operations.
//!
//! On top of it, [`Runtime`] runs goroutines whose frames live in their
//! stacks in the arena: growth, shrinking at stack scans, forced moves, a
//! real word copy with a bitmap walk that adjusts every pointer slot,
//! defers, panics, dead-goroutine reuse and the sudog/channel protocol,
//! with the spec's results, throws, `snapshot()` and `world()`. It works
//! in the spec's address space (`config.arena_base`), so stack contents
//! are bit-identical to the spec's.
//!
//! Modules:
//! - [`os`]: the OS layer (`sysReserve`, `sysMap`, `sysUsed`, `sysUnused`,
//!   `sysFault`, `sysFree`) and word access, the only `unsafe` code;
//! - [`heap`]: the free-page bitmap with per-chunk summaries (first fit);
//! - [`stack`]: the allocator, [`Stacks`] and [`P`];
//! - [`sysalloc`]: stacks from the OS (`stackFromSystem`,
//!   `GODEBUG=efence=1`), in a region above the arena, placed as the spec
//!   places them;
//! - [`runtime`]: [`Runtime`], the spec's API (Ps by id, [`gostack_spec::Ctx`]),
//!   allocator and goroutines; the goroutine layer, the copy/adjust loops
//!   and the allocation planner are private modules behind it.
//!
//! ```
//! use gostack::{Runtime, Stacks};
//! use gostack_spec::{Config, Ctx, Profile};
//!
//! let mut config = Config::new(Profile::parse("linux", "amd64", false, "1.23").unwrap());
//! config.arena_bytes = 4 << 20;
//!
//! // The concurrent API: a shared allocator and an owned P.
//! let stacks = Stacks::new(&config).unwrap();
//! let mut p = stacks.new_p();
//! let stk = stacks.stackalloc(Some(&mut p), false, 2048).unwrap();
//! assert_eq!(stk.hi - stk.lo, 2048);
//! stacks.stackfree(Some(&mut p), false, stk).unwrap();
//! // A double free is refused and changes nothing.
//! assert!(stacks.stackfree(Some(&mut p), false, stk).is_err());
//!
//! // The spec's API.
//! let mut rt = Runtime::new(config).unwrap();
//! let p = rt.create_p().unwrap();
//! let stk = rt.stackalloc(Ctx::on(p), 8192).unwrap();
//! assert_eq!(rt.snapshot().in_use, vec![(stk.lo - rt.base(), 8192)]);
//! ```
//!
//! Goroutines: a recursion deep enough to outgrow the first stack is
//! copied to larger stacks (its in-stack pointers adjusted), and a GC scan
//! after it returns shrinks the stack again; the spec agrees on every step.
//!
//! ```
//! use gostack::Runtime;
//! use gostack_spec::goroutine::Func;
//! use gostack_spec::{Config, Ctx, Profile, State};
//!
//! let mut config = Config::new(Profile::parse("linux", "amd64", false, "1.23").unwrap());
//! config.arena_bytes = 4 << 20;
//! let mut rt = Runtime::new(config.clone()).unwrap();
//! let mut spec = State::new(config).unwrap();
//! let p = rt.create_p().unwrap();
//! assert_eq!(spec.create_p().unwrap(), p);
//! let f = rt.add_func(Func::new("f", 256)).unwrap();
//! assert_eq!(spec.add_func(Func::new("f", 256)).unwrap(), f);
//!
//! let g = rt.spawn(Ctx::on(p), f).unwrap();
//! assert_eq!(spec.spawn(Ctx::on(p), f).unwrap(), g);
//! for _ in 0..40 {
//!     // 40 frames of 256 bytes outgrow the 2 KiB starting stack.
//!     rt.call(Ctx::on(p), g, 0, f).unwrap();
//!     spec.call(Ctx::on(p), g, 0, f).unwrap();
//! }
//! assert!(rt.world().gstats.growths >= 2);
//! for _ in 0..40 {
//!     rt.ret(Ctx::on(p), g).unwrap();
//!     spec.ret(Ctx::on(p), g).unwrap();
//! }
//! rt.gc_start().unwrap();
//! spec.gc_start().unwrap();
//! rt.gc_scan(p, g).unwrap();
//! spec.gc_scan(p, g).unwrap();
//! assert_eq!(rt.world().gstats.shrinks, 1);
//! assert_eq!(rt.snapshot(), spec.snapshot());
//! assert_eq!(rt.world(), spec.world());
//! ```
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

mod adjust;
pub mod conc;
mod goroutine;
pub mod heap;
mod mstacks;
pub mod os;
pub mod runtime;
pub mod stack;
mod sync;
pub mod sysalloc;

pub use adjust::{adjust_words, WordAdjust};
pub use conc::Sched;
pub use runtime::Runtime;
pub use stack::{Stacks, P};
