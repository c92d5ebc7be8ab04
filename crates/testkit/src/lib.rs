//! Test support shared by the integration tests of several crates: the project's REAL
//! Dovecot/Postfix stack (`scripts/mailstack`), each suite in its own directory and on its own
//! ports, so that one suite re-trusting its emulator cannot pull the keys from under another.
//!
//! A missing prerequisite panics with what to do; nothing is skipped.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// One suite's mail stack: `{tmp}/{dir_name}`, ports `{prefix}143`, `{prefix}993`, …
pub struct MailStack {
    suite: &'static str,
    dir_name: &'static str,
    prefix: u16,
}

impl MailStack {
    /// `prefix` 12 gives IMAP 12143, IMAPS 12993, POP3 12110, POP3S 12995, submission 12587 and
    /// 12465, LMTP 12024, injection 12025.
    pub const fn new(suite: &'static str, dir_name: &'static str, prefix: u16) -> MailStack {
        MailStack {
            suite,
            dir_name,
            prefix,
        }
    }

    pub fn dir(&self) -> PathBuf {
        std::env::temp_dir().join(self.dir_name)
    }

    pub fn port(&self, standard: u16) -> u16 {
        self.prefix * 1000 + standard
    }

    pub fn repo() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .canonicalize()
            .unwrap()
    }

    /// Runs `scripts/mailstack ARGS` for this suite's directory and ports.
    pub fn run(&self, args: &[&str]) -> Output {
        let ports = [
            ("MAILSTACK_IMAP_PORT", 143),
            ("MAILSTACK_IMAPS_PORT", 993),
            ("MAILSTACK_POP3_PORT", 110),
            ("MAILSTACK_POP3S_PORT", 995),
            ("MAILSTACK_SUBMISSION_PORT", 587),
            ("MAILSTACK_SUBMISSIONS_PORT", 465),
            ("MAILSTACK_LMTP_PORT", 24),
            ("MAILSTACK_INJECT_PORT", 25),
        ];
        let mut c = Command::new(Self::repo().join("scripts/mailstack"));
        c.args(args).env("MAILSTACK_DIR", self.dir());
        for (k, v) in ports {
            c.env(k, self.port(v).to_string());
        }
        c.output().unwrap_or_else(|e| {
            panic!("cannot run scripts/mailstack: {e}; run the tests from a checkout of Kurir")
        })
    }

    /// Starts the stack once per test process (a running stack is kept).
    pub fn start_once(&self) {
        static STARTED: OnceLock<Result<(), String>> = OnceLock::new();
        let r = STARTED.get_or_init(|| {
            let out = self.run(&["start"]);
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "scripts/mailstack start failed (exit {:?}):\n{}{}\nThe {} tests need the real Postfix/Dovecot stack: run them as root on Debian (apt-get must work), or fix the cause above (logs under {}/log).",
                    out.status.code(),
                    String::from_utf8_lossy(&out.stderr),
                    String::from_utf8_lossy(&out.stdout),
                    self.suite,
                    self.dir().display()
                ))
            }
        });
        if let Err(e) = r {
            panic!("{e}");
        }
    }

    /// Makes the stack trust an emulator's signing keys, once per test process.
    pub fn trust_once(&self, emulator_state_dir: &Path, tenant_id: &str, domain: &str) {
        static TRUSTED: OnceLock<Result<(), String>> = OnceLock::new();
        let r = TRUSTED.get_or_init(|| {
            let out = self.run(&[
                "trust",
                emulator_state_dir.to_str().unwrap(),
                tenant_id,
                domain,
            ]);
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "scripts/mailstack trust failed:\n{}",
                    String::from_utf8_lossy(&out.stderr)
                ))
            }
        });
        if let Err(e) = r {
            panic!("{e}");
        }
    }
}
