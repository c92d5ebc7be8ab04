//! Everything Kurir writes is private to the user it runs as: the data directory holds the
//! master key, the database (SQLite), raw mail (segments, `.eml`, spool files) and the ERP's
//! import queue. The directory is `0700` whether Kurir created it or found it, and the `kurir`
//! binary sets its umask to `077` at start, so every file created under it is `0600` and every
//! directory `0700` whichever code creates it (SQLite's WAL/SHM files included).

use std::path::Path;

use crate::StoreError;

/// Creates the data directory (and its parents) or takes the existing one, and makes it
/// private to its owner (`0700`, on Unix; elsewhere the platform's defaults apply). An
/// existing directory that is open to others is tightened and the tightening logged; one that
/// cannot be tightened (not ours) is used as it is, with a warning.
pub fn private_data_dir(dir: &Path) -> Result<(), StoreError> {
    std::fs::create_dir_all(dir).map_err(|e| StoreError::Io {
        what: format!("create the data directory {}", dir.display()),
        source: e,
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir)
            .map_err(|e| StoreError::Io {
                what: format!("read the data directory {}", dir.display()),
                source: e,
            })?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            match std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)) {
                Ok(()) => tracing::info!(
                    dir = %dir.display(),
                    was = format!("{:o}", mode & 0o777),
                    "the data directory is now private to its owner (0700)"
                ),
                Err(e) => tracing::warn!(
                    dir = %dir.display(),
                    error = %e,
                    "the data directory is open to other users and cannot be made private; run `chmod 700` on it"
                ),
            }
        }
    }
    Ok(())
}
