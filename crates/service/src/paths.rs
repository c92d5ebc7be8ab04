//! Where a service keeps its data when no `--data-dir` / `KURIR_DATA_DIR` is given: the platform's
//! place for a service's state, never the working directory (a service's working directory is
//! `/` under systemd and `C:\Windows\System32` under the Windows service manager).
//!
//! - systemd with `StateDirectory=kurir`: the directory it made (`$STATE_DIRECTORY`);
//! - Windows: `%ProgramData%\Kurir` (what services use for machine-wide state);
//! - another Unix, as root: `/var/lib/kurir` (the Filesystem Hierarchy Standard's place for state);
//! - another Unix, as a user: `$XDG_DATA_HOME/kurir`, else `~/.local/share/kurir`.

use std::ffi::OsString;
use std::path::PathBuf;

/// The default data directory of this platform (see the module).
pub fn default_data_dir() -> PathBuf {
    data_dir_from(&|name| std::env::var_os(name), running_as_root())
}

/// [`default_data_dir`] with the environment and the user given, for tests.
fn data_dir_from(env: &dyn Fn(&str) -> Option<OsString>, root: bool) -> PathBuf {
    let set = |name: &str| env(name).filter(|v| !v.is_empty());
    // systemd passes one path per StateDirectory= entry, separated by ':'.
    if let Some(state) = set("STATE_DIRECTORY") {
        let first = state
            .to_string_lossy()
            .split(':')
            .next()
            .unwrap_or_default()
            .to_owned();
        if !first.is_empty() {
            return PathBuf::from(first);
        }
    }
    if cfg!(windows) {
        let program_data = set("ProgramData").unwrap_or_else(|| r"C:\ProgramData".into());
        return PathBuf::from(program_data).join("Kurir");
    }
    if root {
        return PathBuf::from("/var/lib/kurir");
    }
    if let Some(xdg) = set("XDG_DATA_HOME") {
        return PathBuf::from(xdg).join("kurir");
    }
    match set("HOME") {
        Some(home) => PathBuf::from(home).join(".local/share/kurir"),
        // No home at all (a bare service account): the system's place, which says clearly
        // that it cannot be written if the account may not.
        None => PathBuf::from("/var/lib/kurir"),
    }
}

#[cfg(unix)]
fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

#[cfg(not(unix))]
fn running_as_root() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(vars: &[(&str, &str)], root: bool) -> PathBuf {
        let env = |name: &str| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| OsString::from(v))
        };
        data_dir_from(&env, root)
    }

    /// The default used to be `./kurir-data`: under systemd (working directory `/`) or the
    /// Windows service manager (System32) that is no place for a service's database.
    #[cfg(unix)]
    #[test]
    fn the_default_data_dir_is_the_platforms_not_the_working_directory() {
        assert_eq!(
            dir(
                &[("STATE_DIRECTORY", "/var/lib/kurir:/var/lib/other")],
                true
            ),
            PathBuf::from("/var/lib/kurir")
        );
        assert_eq!(
            dir(&[("HOME", "/root")], true),
            PathBuf::from("/var/lib/kurir")
        );
        assert_eq!(
            dir(&[("HOME", "/home/erp"), ("XDG_DATA_HOME", "")], false),
            PathBuf::from("/home/erp/.local/share/kurir")
        );
        assert_eq!(
            dir(
                &[("HOME", "/home/erp"), ("XDG_DATA_HOME", "/srv/data")],
                false
            ),
            PathBuf::from("/srv/data/kurir")
        );
        assert!(default_data_dir().is_absolute());
    }

    #[cfg(windows)]
    #[test]
    fn the_default_data_dir_is_program_data_on_windows() {
        assert_eq!(
            dir(&[("ProgramData", r"D:\ProgramData")], false),
            PathBuf::from(r"D:\ProgramData").join("Kurir")
        );
    }
}
