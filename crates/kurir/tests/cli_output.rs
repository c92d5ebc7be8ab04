//! The CLI's output going into a pipe that closes early (`kurir … | head`): it used to panic
//! with a stack trace ("failed printing to stdout: Broken pipe").

mod common;

use std::io::Read;
use std::process::{Command, Stdio};

#[test]
fn piping_the_cli_into_a_closed_pipe_ends_quietly() {
    let tmp = tempfile::tempdir().unwrap();
    for args in [
        &["settings", "keys"][..],
        &["settings", "show", "--json"][..],
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kurir"))
            .args(args)
            .env("KURIR_DATA_DIR", tmp.path())
            .env_remove("KURIR_MASTER_KEY")
            .env_remove("KURIR_DATABASE_URL")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The reader goes away before the command writes, as `head` does after its lines.
        drop(child.stdout.take());
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        let status = child.wait().unwrap();
        assert!(
            !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
            "{args:?}: {stderr}"
        );
        #[cfg(unix)]
        {
            use std::os::unix::process::ExitStatusExt;
            assert!(
                status.success() || status.signal() == Some(libc_sigpipe()),
                "{args:?}: ended as {status:?}: {stderr}"
            );
        }
        #[cfg(not(unix))]
        assert!(status.success(), "{args:?}: {status:?}: {stderr}");
    }
}

#[cfg(unix)]
fn libc_sigpipe() -> i32 {
    13 // SIGPIPE on every Unix Kurir builds for (Linux, the BSDs, macOS)
}
