//! Writing to stdout and stderr without panicking.
//!
//! `print!` panics when stdout is a pipe whose reader has gone, as in
//! `gostack conform --replay FILE | head -1`: Rust ignores SIGPIPE, so the
//! write fails with `BrokenPipe`, and `print!` panics on any failed write.
//! The macros here do not. On a closed stdout the program ends at once,
//! quietly, with status 0: the reader wanted no more. Any other failure to
//! write stdout ends it with one line on stderr and status 2. A failure to
//! write stderr is ignored: there is nowhere left to say so.

use std::io::Write;

/// Writes to stdout and flushes, ending the program when that fails.
pub fn stdout(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        stderr(format_args!("gostack: cannot write the output: {e}\n"));
        std::process::exit(2);
    }
}

/// Writes to stderr; a failure is ignored.
pub fn stderr(args: std::fmt::Arguments<'_>) {
    let _ = std::io::stderr().lock().write_fmt(args);
}

/// `print!` that never panics (see the module doc).
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::stdout(format_args!($($arg)*))
    };
}

/// `println!` that never panics (see the module doc).
macro_rules! outln {
    () => {
        $crate::output::stdout(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::output::stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `eprintln!` that never panics (see the module doc).
macro_rules! errln {
    () => {
        $crate::output::stderr(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::output::stderr(format_args!("{}\n", format_args!($($arg)*)))
    };
}
