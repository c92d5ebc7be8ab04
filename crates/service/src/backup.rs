//! `kurir backup` and `kurir restore`: one archive (`.tar.gz`) with a consistent copy of the
//! SQLite database and the files beside it (raw mail, the ERP's import folders, the SMTP
//! listener's TLS files), taken while `kurir serve` runs.
//!
//! Consistency: the database is copied with SQLite's `VACUUM INTO` (one read transaction, so
//! the copy is the database at one instant). The files are copied *after* it, guided by the
//! copy: a raw message file or segment is written and synced before the row pointing at it
//! commits and never changes afterwards, so every row of the copy finds its file complete. Files
//! written after the instant (a batch in flight) are not referenced by the copy and are left
//! out. Only retention can remove a referenced file meanwhile; the report names such files.
//!
//! The master key is never put in the archive: the archive holds sealed secrets and mail, the key
//! opens the secrets, and they must not travel together. The command says where the key is.
//!
//! PostgreSQL: the database is backed up with `pg_dump` (docs/backup.md); both commands refuse.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use kurir_store::KurirStore;
use serde::{Deserialize, Serialize};

/// The archive's own description, first entry `kurir-backup.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub kurir_version: String,
    pub created_at: String,
    /// The fingerprint of the master key the secrets are sealed with (not the key).
    pub key_fingerprint: String,
    pub messages: u64,
    pub outbox_entries: u64,
    pub files: u64,
}

const MANIFEST: &str = "kurir-backup.json";
const DATABASE: &str = "kurir.db";
const FORMAT: u32 = 1;

/// What a backup wrote.
#[derive(Debug, Clone, Serialize)]
pub struct BackupReport {
    pub archive: PathBuf,
    pub bytes: u64,
    pub manifest: Manifest,
    /// Referenced files that retention removed while the backup ran (their messages' raw MIME
    /// is gone in the live store too).
    pub vanished: Vec<String>,
    /// Where the master key is, which the archive does not hold.
    pub key_location: String,
}

/// Backs up `store` (SQLite in `data_dir`) into `archive` (a new file).
pub async fn backup(
    data_dir: &Path,
    store: &dyn KurirStore,
    archive: &Path,
) -> anyhow::Result<BackupReport> {
    if store.backend() != "sqlite" {
        return Err(kurir_store::StoreError::NotWithPostgres("kurir backup").into());
    }
    if archive.exists() {
        bail!(
            "{} exists already; give a new file name (a backup never overwrites one)",
            archive.display()
        );
    }
    if archive.starts_with(data_dir) {
        bail!(
            "{} is inside the data directory; put the backup somewhere else (another disk, or copy it off the machine)",
            archive.display()
        );
    }
    let work = tempdir_beside(archive)?;
    let db_copy = work.join(DATABASE);
    store
        .copy_database_to(&db_copy)
        .await
        .context("copy the database (VACUUM INTO)")?;
    // The copy decides which files belong to the backup.
    let (raw_files, messages, outbox_entries) =
        kurir_store::SqliteStore::backup_inventory(&db_copy)
            .await
            .context("read the copied database")?;

    let data_dir = data_dir.to_owned();
    let archive_path = archive.to_owned();
    let fingerprint = store.key_fingerprint();
    let key_location = kurir_store::crypto::key_location(&data_dir);
    let report = tokio::task::spawn_blocking(move || {
        let result = write_archive(
            &data_dir,
            &work,
            &archive_path,
            raw_files,
            messages,
            outbox_entries,
            fingerprint,
        );
        let _ = std::fs::remove_dir_all(&work);
        result
    })
    .await
    .context("the backup worker stopped")??;
    Ok(BackupReport {
        key_location,
        ..report
    })
}

fn tempdir_beside(archive: &Path) -> anyhow::Result<PathBuf> {
    let parent = archive
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let dir = parent.join(format!(".kurir-backup-{:016x}", rand::random::<u64>()));
    std::fs::create_dir(&dir).with_context(|| format!("create {}", dir.display()))?;
    Ok(dir)
}

fn write_archive(
    data_dir: &Path,
    work: &Path,
    archive: &Path,
    raw_files: BTreeSet<String>,
    messages: u64,
    outbox_entries: u64,
    key_fingerprint: String,
) -> anyhow::Result<BackupReport> {
    let partial = archive.with_extension("partial");
    let file = create_private(&partial)?;
    let gz = flate2::write::GzEncoder::new(BufWriter::new(file), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    tar.mode(tar::HeaderMode::Deterministic);
    let mut vanished = Vec::new();
    let mut files = 0u64;
    // Raw mail the copy refers to, then the import folders and the listener's TLS files as
    // they are now (neither is referenced by rows in a way a later state could break).
    let mut entries: Vec<String> = raw_files.into_iter().collect();
    for dir in ["import", "listener-tls"] {
        collect_files(data_dir, Path::new(dir), &mut entries)?;
    }
    let mut body = Vec::new();
    for rel in &entries {
        let path = data_dir.join(rel);
        match File::open(&path) {
            Ok(mut f) => {
                tar.append_file(rel, &mut f)
                    .with_context(|| format!("put {} in the archive", path.display()))?;
                files += 1;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => vanished.push(rel.clone()),
            Err(e) => return Err(e).with_context(|| format!("read {}", path.display())),
        }
        body.push(rel);
    }
    let manifest = Manifest {
        format: FORMAT,
        kurir_version: env!("CARGO_PKG_VERSION").into(),
        created_at: time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .expect("RFC 3339"),
        key_fingerprint,
        messages,
        outbox_entries,
        files,
    };
    let json = serde_json::to_vec_pretty(&manifest)?;
    let mut header = tar::Header::new_gnu();
    header.set_size(json.len() as u64);
    header.set_mode(0o600);
    header.set_cksum();
    tar.append_data(&mut header, MANIFEST, &json[..])?;
    tar.append_path_with_name(work.join(DATABASE), DATABASE)
        .context("put the database copy in the archive")?;
    let gz = tar.into_inner().context("finish the archive")?;
    let mut w = gz.finish().context("finish the compression")?;
    w.flush()?;
    let file = w.into_inner().map_err(|e| e.into_error())?;
    file.sync_all().context("sync the archive")?;
    drop(file);
    std::fs::rename(&partial, archive)
        .with_context(|| format!("move the archive to {}", archive.display()))?;
    let bytes = std::fs::metadata(archive)?.len();
    Ok(BackupReport {
        archive: archive.to_owned(),
        bytes,
        manifest,
        vanished,
        key_location: String::new(),
    })
}

/// Every file under `data_dir/rel` (recursively; staging folders left out: their documents
/// belong to batches not committed at the instant, or are renamed into place at the next pass).
fn collect_files(data_dir: &Path, rel: &Path, out: &mut Vec<String>) -> anyhow::Result<()> {
    let dir = data_dir.join(rel);
    let Ok(read) = std::fs::read_dir(&dir) else {
        return Ok(());
    };
    for e in read {
        let e = e?;
        let name = e.file_name();
        if name == ".staging" {
            continue;
        }
        let child = rel.join(&name);
        let kind = e.file_type()?;
        if kind.is_dir() {
            collect_files(data_dir, &child, out)?;
        } else if kind.is_file() {
            out.push(child.to_string_lossy().replace('\\', "/"));
        }
    }
    Ok(())
}

fn create_private(path: &Path) -> anyhow::Result<File> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path)
        .with_context(|| format!("create {}", path.display()))
}

/// What a restore put back.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    pub data_dir: PathBuf,
    pub manifest: Manifest,
    pub files: u64,
}

/// Restores `archive` into `data_dir`, which must be empty (or hold only the master key file).
/// The master key must be there first (the key file, or `KURIR_MASTER_KEY`) and be the one the
/// backup's secrets are sealed with: a restore that could not open its secrets is refused
/// before anything is written.
pub async fn restore(
    archive: &Path,
    data_dir: &Path,
    database_url: Option<&str>,
) -> anyhow::Result<RestoreReport> {
    if database_url.is_some() {
        return Err(kurir_store::StoreError::NotWithPostgres("kurir restore").into());
    }
    if let Ok(read) = std::fs::read_dir(data_dir) {
        let others: Vec<String> = read
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n != kurir_store::crypto::MASTER_KEY_FILE)
            .collect();
        if !others.is_empty() {
            bail!(
                "the data directory {} is not empty ({}); restore into an empty directory (it may hold only {}), then point --data-dir / KURIR_DATA_DIR at it",
                data_dir.display(),
                others.join(", "),
                kurir_store::crypto::MASTER_KEY_FILE
            );
        }
    }
    let manifest = read_manifest(archive)?;
    if manifest.format != FORMAT {
        bail!(
            "{} is a Kurir backup of format {}, which this Kurir ({}) does not read",
            archive.display(),
            manifest.format,
            env!("CARGO_PKG_VERSION")
        );
    }
    let key = kurir_store::MasterKey::load(data_dir).map_err(|e| {
        anyhow::anyhow!(
            "{e}. The backup's secrets are sealed with the master key of fingerprint {}; put that key in place first (copy the original {} into {}, or set {}), then run the restore again",
            manifest.key_fingerprint,
            kurir_store::crypto::MASTER_KEY_FILE,
            data_dir.display(),
            kurir_store::crypto::MASTER_KEY_ENV
        )
    })?;
    if key.fingerprint() != manifest.key_fingerprint {
        bail!(
            "the master key in place (fingerprint {}, from {}) is not the one the backup's secrets are sealed with (fingerprint {}); put the original key in place and run the restore again",
            key.fingerprint(),
            key.origin,
            manifest.key_fingerprint
        );
    }
    kurir_store::files::private_data_dir(data_dir)?;
    let dir = data_dir.to_owned();
    let archive = archive.to_owned();
    let files = tokio::task::spawn_blocking(move || unpack(&archive, &dir))
        .await
        .context("the restore worker stopped")??;
    // Opening runs the migrations a newer Kurir needs, and checks the key against the data.
    let store = kurir_store::SqliteStore::open(data_dir)
        .await
        .context("open the restored database")?;
    store.close().await;
    Ok(RestoreReport {
        data_dir: data_dir.to_owned(),
        manifest,
        files,
    })
}

fn read_manifest(archive: &Path) -> anyhow::Result<Manifest> {
    let f = File::open(archive).with_context(|| format!("open {}", archive.display()))?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(BufReader::new(f)));
    for entry in tar
        .entries()
        .with_context(|| format!("{} is not a Kurir backup (.tar.gz)", archive.display()))?
    {
        let entry = entry?;
        if entry.path()?.as_os_str() == MANIFEST {
            return serde_json::from_reader(entry)
                .with_context(|| format!("{}'s {MANIFEST} cannot be read", archive.display()));
        }
    }
    bail!(
        "{} is not a Kurir backup: it has no {MANIFEST}",
        archive.display()
    )
}

/// Unpacks every entry but the manifest; entries must stay inside `dir` (the tar crate's
/// `unpack_in` refuses `..` and absolute paths).
fn unpack(archive: &Path, dir: &Path) -> anyhow::Result<u64> {
    let f = File::open(archive)?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(BufReader::new(f)));
    tar.set_preserve_permissions(false);
    let mut n = 0;
    for entry in tar.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        if path.as_os_str() == MANIFEST {
            continue;
        }
        if !entry.unpack_in(dir)? {
            bail!(
                "the archive entry {} points outside the data directory; this is not a backup Kurir made",
                path.display()
            );
        }
        n += 1;
    }
    Ok(n)
}
