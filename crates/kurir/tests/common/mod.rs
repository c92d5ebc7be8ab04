//! Helpers shared by the CLI tests: run the real `kurir` binary in a temporary data directory.
#![allow(dead_code)] // each test file uses its own subset

pub mod daemon;
pub mod pg;
pub mod web;

use std::path::Path;

use assert_cmd::Command;

/// The binary with a clean environment: only the given data directory, no master key or
/// language from the developer's shell.
pub fn kurir(dir: &Path) -> Command {
    let mut c = Command::cargo_bin("kurir").unwrap();
    c.env("KURIR_DATA_DIR", dir)
        .env_remove("KURIR_MASTER_KEY")
        .env_remove("KURIR_DATABASE_URL")
        .env_remove("KURIR_LOG")
        .env_remove("KURIR_LANG");
    c
}

/// Runs a command that must succeed; returns stdout.
pub fn ok(dir: &Path, args: &[&str]) -> String {
    ok_stdin(dir, args, "")
}

pub fn ok_stdin(dir: &Path, args: &[&str], stdin: &str) -> String {
    let out = kurir(dir).args(args).write_stdin(stdin).output().unwrap();
    assert!(
        out.status.success(),
        "kurir {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs a command that must be refused as bad input: exit 2, one line on stderr containing
/// `needle`. Returns stderr.
pub fn refused(dir: &Path, args: &[&str], needle: &str) -> String {
    let out = kurir(dir).args(args).output().unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2), "kurir {args:?}: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.contains(needle),
        "kurir {args:?}: expected '{needle}' in: {stderr}"
    );
    stderr
}

/// Sets a secret the way a script would: through an environment variable, never argv.
pub fn set_secret(dir: &Path, scope: &[&str], key: &str, value: &str) {
    let mut args = vec!["settings", "set"];
    args.extend_from_slice(scope);
    let env_arg = format!("{key}=KURIR_TEST_SECRET");
    args.extend(["--secret-env", &env_arg]);
    let out = kurir(dir)
        .args(&args)
        .env("KURIR_TEST_SECRET", value)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
