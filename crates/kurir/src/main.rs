//! `kurir`: the one binary. Subcommands live in `cli/`, one file per command group; this file only
//! turns their outcome into an exit status.
//!
//! Exit status: 0 success; 2 bad input (a one-line reason on stderr); 1 anything else (the
//! environment failed: database, master key, network).

mod cli;
mod fail;

/// Settings → token requests lives in a library crate so the daemon, intake and outbox share it.
mod connect {
    pub use kurir_connect::*;
}

use std::process::ExitCode;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches};

fn main() -> ExitCode {
    tune_allocator();
    private_files();
    let matches = cli::Cli::command().get_matches();
    let mut args = match cli::Cli::from_arg_matches(&matches) {
        Ok(a) => a,
        Err(e) => e.exit(),
    };
    args.data_dir_explicit = matches.value_source("data_dir") != Some(ValueSource::DefaultValue);
    // kurir.toml goes under the flags and the environment, before logging is set up (it may
    // ask for JSON logs).
    if let Err(e) = cli::config::apply(&mut args, &matches) {
        eprintln!("kurir: {e}");
        return ExitCode::from(2);
    }
    if !matches!(
        args.command,
        cli::Command::Serve(_) | cli::Command::Demo(_) | cli::Command::Emulator(_)
    ) {
        quiet_when_output_closes();
    }
    // `kurir serve` is a service: it logs at info by default and may log JSON lines.
    let (default, json) = match &args.command {
        cli::Command::Serve(a) => cli::serve::log_defaults(a.log_json, args.verbose),
        // The demo is the service too: its log lines are how a newcomer sees mail move.
        // (The emulator's request log would drown them; -v shows it.)
        cli::Command::Demo(_) if args.verbose == 0 => ("info,kurir_emulator=warn", false),
        cli::Command::Demo(_) => cli::serve::log_defaults(false, args.verbose),
        _ => (
            match args.verbose {
                0 => "warn",
                1 => "info,kurir=debug",
                _ => "debug",
            },
            false,
        ),
    };
    init_logging(default, json);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kurir: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(cli::run(args)) {
        Ok(code) => code,
        Err(err) => {
            let (code, text) = fail::describe(&err);
            eprintln!("kurir: {text}");
            ExitCode::from(code)
        }
    }
}

/// A command whose output is piped into `head` (or a pager the user quits) ends quietly when the
/// pipe closes, as Unix tools do, instead of panicking with a stack trace ("failed printing to
/// stdout: Broken pipe"): Rust ignores SIGPIPE, so every `println!` after the close would fail.
/// On Unix the default SIGPIPE action is restored (sockets are unaffected: Rust and mio send
/// with MSG_NOSIGNAL / SO_NOSIGPIPE); elsewhere, and as a second line, a panic from printing to a
/// closed stdout ends the process quietly. Not for the long-running commands (serve, demo,
/// emulator), whose stdout is one JSON line for whoever started them.
fn quiet_when_output_closes() {
    #[cfg(unix)]
    // SAFETY: only resets one signal's disposition, before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let closed = info
            .payload()
            .downcast_ref::<String>()
            .is_some_and(|m| m.starts_with("failed printing to stdout"));
        if closed {
            std::process::exit(0);
        }
        default(info);
    }));
}

/// Everything Kurir creates is private to its user: files 0600, directories 0700, whichever
/// code creates them (SQLite's WAL/SHM, raw mail, spool and import files, TLS keys). See
/// `kurir_store::files`.
fn private_files() {
    #[cfg(unix)]
    // SAFETY: umask only sets this process's file mode creation mask; it cannot fail.
    unsafe {
        libc::umask(0o077);
    }
}

/// Intake allocates a buffer per message (kilobytes to a megabyte) on one thread and frees it on
/// another once the batch is stored. With glibc's defaults each thread's heap is grown
/// (`mprotect`) and given back (`madvise`) over and over, and every page given back is a fresh
/// page fault when it is used again: 8,800 `mprotect` calls for a pass of 5,000 messages. Keeping
/// up to 256 MiB of freed memory per heap, and serving messages up to 4 MiB from the heaps instead
/// of separate mappings, lets the next batch reuse the last one's pages.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes glibc's tunables; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
    }
}

/// Logs go to stderr so that stdout stays machine-readable (`--json`, the emulator's JSON line).
fn init_logging(default: &str, json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("KURIR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
