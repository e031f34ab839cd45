//! The closed sets of values the flags take, as clap `ValueEnum`s, so that
//! `--help` lists them and a bad value gets clap's error listing them.
//! They are spelled as Go spells them (`linux`, `386`, `1.23`), and the
//! lists come from the spec's own tables, so they cannot drift from it.

use clap::builder::PossibleValue;
use clap::ValueEnum;
use gostack_spec::guard::Calls;
use gostack_spec::{Goarch, Goos, Release};
use std::sync::LazyLock;

/// A `GOOS` on the command line.
#[derive(Clone, Copy, Debug)]
pub struct GoosArg(pub Goos);

/// A `GOARCH` on the command line.
#[derive(Clone, Copy, Debug)]
pub struct GoarchArg(pub Goarch);

/// A Go release on the command line (`1.23`; `go1.23` is accepted too).
#[derive(Clone, Copy, Debug)]
pub struct ReleaseArg(pub Release);

/// `ValueEnum` for a wrapper of a spec enum whose `ALL` lists its values
/// and whose `name` is Go's spelling.
macro_rules! spec_value_enum {
    ($arg:ident, $spec:ident) => {
        impl ValueEnum for $arg {
            fn value_variants<'a>() -> &'a [Self] {
                static ALL: LazyLock<Vec<$arg>> =
                    LazyLock::new(|| $spec::ALL.iter().map(|&v| $arg(v)).collect());
                &ALL
            }

            fn to_possible_value(&self) -> Option<PossibleValue> {
                Some(PossibleValue::new(self.0.name()))
            }
        }
    };
}

spec_value_enum!(GoosArg, Goos);
spec_value_enum!(GoarchArg, Goarch);

impl ValueEnum for ReleaseArg {
    fn value_variants<'a>() -> &'a [Self] {
        static ALL: LazyLock<Vec<ReleaseArg>> =
            LazyLock::new(|| Release::ALL.iter().map(|&r| ReleaseArg(r)).collect());
        &ALL
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        let value = PossibleValue::new(self.0.name());
        Some(match self.0 {
            Release::Go1_19 => value.alias("go1.19"),
            Release::Go1_23 => value.alias("go1.23"),
            // A release added later takes only its plain name until it
            // gets its alias here.
            _ => value,
        })
    }
}

/// What a function calls, for the assembler's leaf rules (`--calls`).
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum CallsArg {
    /// No call, and no DUFFZERO or DUFFCOPY.
    Nothing,
    /// Only zero-argument runtime panics, or DUFFZERO/DUFFCOPY.
    Panics,
    /// Any other call.
    Others,
}

impl CallsArg {
    /// The spec's value.
    pub fn calls(self) -> Calls {
        match self {
            CallsArg::Nothing => Calls::Nothing,
            CallsArg::Panics => Calls::OnlyRuntimePanicsOrDuff,
            CallsArg::Others => Calls::Others,
        }
    }
}
