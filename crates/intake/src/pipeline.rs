//! One intake pass over one account: list → fetch → parse → handle → record (one transaction per
//! batch) → only then move to the processed/quarantine folder (or DELE) → mark done.
//!
//! Why this order gives exactly-once under crashes (kill -9 at any instruction):
//! - Before the batch's transaction commits, nothing changed on the server and nothing reached
//!   the ERP's import folder (documents wait in `.staging/`); the next pass fetches them again.
//! - After it commits, the server ids are recorded. The next pass sees them listed, does not
//!   fetch them, and finishes the server-side move it may have missed ("stored but not moved").
//! - A message that shows up under a new server id (UIDVALIDITY reset, re-delivery of the same
//!   bytes, a Graph move that changed its id) has the same content hash: the store links the new
//!   id to the existing row instead of storing it again. The Message-ID alone does not decide:
//!   a different message under a Message-ID already seen (counter-based ids, a corrected
//!   document re-sent, a forged id) is stored and handled like any other and shown as "same
//!   Message-ID as #N" — treating it as a duplicate would move it away (over POP3: delete it)
//!   with no copy kept. Over IMAP and POP3 the server hands out the bytes it stored, so the
//!   same message gives the same hash. Graph is different: Exchange does not keep MIME and
//!   generates it on each `$value` request
//!   (<https://learn.microsoft.com/en-us/graph/outlook-get-mime-message>), so bytes of a message
//!   fetched again after a move are not guaranteed to be equal. Its server identity is what
//!   covers Graph: a message Kurir moved is recorded under the id it was listed with and,
//!   while it stays in the source folder, is only moved, never fetched again; a message a
//!   user moves back gets a new id and is taken in again when its regenerated MIME differs.
//!   Listing and moving with immutable ids (`Prefer: IdType="ImmutableId"`,
//!   <https://learn.microsoft.com/en-us/graph/outlook-immutable-id>) would make that id
//!   survive moves; it belongs in the Graph transport (a change of the recorded id format).
//! - Import documents are renamed into the ERP's folder only after the commit; entries still
//!   `staged` at the start of a pass are completed first.
//!
//! A per-account lock file keeps two Kurir processes from taking in the same account at once.

use std::collections::HashSet;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kurir_store::MessageStore;
use kurir_store::messages::{MessageStatus, NewImport, NewMessage, RawMime, Recorded};

use crate::IntakeError;
use crate::handler::Handler;
use crate::parse;
use crate::transport::{Destination, Fetched, Listed, SpoolDir, Spooled, Transport};

/// Raw MIME up to this size goes into the batch's segment file; larger gets a file of its own.
pub const INLINE_MAX: u64 = 1024 * 1024;

/// How big a batch may get (messages, and bytes as the server announced them).
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    pub messages: usize,
    pub bytes: u64,
}

impl Default for BatchLimits {
    fn default() -> Self {
        BatchLimits {
            messages: 500,
            bytes: 32 * 1024 * 1024,
        }
    }
}

/// Progress of a pass, for a progress bar or a log.
pub trait Progress: Send {
    fn listed(&mut self, _total: u64) {}
    fn advanced(&mut self, _messages: u64) {}
}

/// No progress output.
pub struct Quiet;
impl Progress for Quiet {}

/// What a pass did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PassSummary {
    pub account: String,
    pub protocol: String,
    /// Messages in the source folder at the start.
    pub listed: u64,
    /// New messages stored normally.
    pub stored: u64,
    /// New messages stored as quarantined.
    pub quarantined: u64,
    /// Fetched again under a new server id but already stored (same Message-ID or content).
    pub duplicates: u64,
    /// Already recorded by an earlier (interrupted) pass: only moved now.
    pub finished_from_earlier: u64,
    /// Documents put into the import queue.
    pub documents: u64,
    pub bytes: u64,
    #[serde(skip)]
    pub elapsed: Duration,
}

/// Everything a pass needs besides the transport.
pub struct Intake {
    pub account: String,
    pub data_dir: PathBuf,
    pub store: Arc<dyn MessageStore>,
    pub handler: Arc<dyn Handler>,
    pub limits: BatchLimits,
    /// Turns true when the service shuts down: a pass then fetches no further batch, but the
    /// batches already fetched are still stored and moved, so the pass ends quickly and
    /// cleanly instead of running through a mailbox of thousands (or being cut off).
    pub stop: Option<tokio::sync::watch::Receiver<bool>>,
    /// The account's directory name, from the store at the start of a pass
    /// ([`Intake::account_dir`]).
    pub(crate) dir: std::sync::OnceLock<String>,
}

impl Intake {
    fn stopping(&self) -> bool {
        self.stop.as_ref().is_some_and(|s| *s.borrow())
    }
}

/// A message made ready for the store; files it refers to are already durable.
struct Prepared {
    new: NewMessage,
    /// Staged import files: (staging path, final path).
    staged: Vec<(PathBuf, PathBuf)>,
    /// A raw file this message created (removed again if it turns out to be a duplicate).
    created_raw: Option<PathBuf>,
    /// A spool file the store copies into itself ([`MessageStore::keeps_raw_bytes`]): removed
    /// once the batch has committed, whatever became of the message.
    spool_after_commit: Option<PathBuf>,
}

/// A committed batch's server-side step, still to be done.
#[derive(Default)]
struct Moves {
    processed: Vec<String>,
    quarantine: Vec<String>,
    count: u64,
}

impl Moves {
    fn absorb(&mut self, other: Moves) {
        self.processed.extend(other.processed);
        self.quarantine.extend(other.quarantine);
        self.count += other.count;
    }
}

/// The held per-account lock; released when dropped (or when the process dies).
pub struct AccountLock(#[allow(dead_code)] File);

impl Intake {
    /// The account's own directory under `import/`, `spool/` and `locks/`: assigned once by the
    /// store (the cleaned account name when no other account has it in any letter case, else
    /// with a suffix) and kept, so "Orders A" and "Orders_A" never share staging files and an
    /// existing account keeps the directory the ERP was configured with. The one place that
    /// decides an account's directory; call it before any of the paths below.
    pub async fn account_dir(&self) -> Result<&str, IntakeError> {
        if let Some(d) = self.dir.get() {
            return Ok(d.as_str());
        }
        let wanted = crate::handler::clean_name(&self.account).replace(' ', "_");
        let dir = self.store.account_dir(&self.account, &wanted).await?;
        Ok(self.dir.get_or_init(|| dir).as_str())
    }

    fn account_dir_name(&self) -> &str {
        self.dir
            .get()
            .expect("Intake::account_dir is called at the start of a pass")
    }

    /// The ERP's import folder of this account (after [`Intake::account_dir`]).
    pub fn import_dir(&self) -> PathBuf {
        self.data_dir.join("import").join(self.account_dir_name())
    }

    fn staging_dir(&self) -> PathBuf {
        self.import_dir().join(".staging")
    }

    fn spool(&self) -> SpoolDir {
        SpoolDir(self.data_dir.join("spool").join(self.account_dir_name()))
    }

    /// Takes the account's lock, or says who holds it.
    pub async fn lock(&self) -> Result<AccountLock, IntakeError> {
        self.account_dir().await?;
        let dir = self.data_dir.join("locks");
        std::fs::create_dir_all(&dir)
            .map_err(|e| IntakeError::disk("create the lock directory", &dir, e))?;
        let path = dir.join(format!("{}.lock", self.account_dir_name()));
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| IntakeError::disk("open the account's lock file", &path, e))?;
        match file.try_lock() {
            Ok(()) => Ok(AccountLock(file)),
            Err(std::fs::TryLockError::WouldBlock) => Err(IntakeError::Config {
                account: self.account.clone(),
                problem: format!(
                    "another Kurir process is taking in this account right now (lock {}); wait for it to finish",
                    path.display()
                ),
            }),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(IntakeError::disk("lock the account's lock file", &path, e))
            }
        }
    }

    /// Completes what an interrupted pass left: import files of committed rows still in
    /// staging, staging files of rows never committed, and spool files.
    async fn recover(&self) -> Result<(), IntakeError> {
        let staged = self.store.staged_imports(&self.account).await?;
        let staging = self.staging_dir();
        let mut ready = Vec::new();
        let mut expected: HashSet<String> = HashSet::new();
        for entry in &staged {
            let from = staging.join(&entry.file_name);
            let to = self.import_dir().join(&entry.file_name);
            if from.exists() {
                std::fs::rename(&from, &to)
                    .map_err(|e| IntakeError::disk("move an import document into place", &to, e))?;
            }
            if to.exists() {
                ready.push(entry.id);
            } else {
                expected.insert(entry.file_name.clone());
                tracing::warn!(account = %self.account, file = %entry.file_name, "an import document of a stored message is missing; it stays staged");
            }
        }
        if !ready.is_empty() {
            sync_dir(&self.import_dir());
            self.store.mark_imports_ready(&ready).await?;
        }
        self.ack_removed_documents().await?;
        // Anything else in staging belongs to a batch that never committed.
        if let Ok(entries) = std::fs::read_dir(&staging) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if !expected.contains(&name) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        if let Ok(entries) = std::fs::read_dir(&self.spool().0) {
            for e in entries.flatten() {
                let _ = std::fs::remove_file(e.path());
            }
        }
        Ok(())
    }

    /// The file-drop contract (docs/import-queue.md): a `ready` document the ERP removed from
    /// the import folder counts as acknowledged. Only where this data directory's import folder
    /// is the one the ERP reads: a store that keeps raw mail beside it (SQLite, one instance).
    /// With PostgreSQL, instances each have their own folder, and a file missing from this one
    /// says nothing about the ERP (there the ERP acknowledges through the REST API).
    async fn ack_removed_documents(&self) -> Result<(), IntakeError> {
        if self.store.keeps_raw_bytes() {
            return Ok(());
        }
        // Only the entries still outstanding (ready, not claimed through the API): this runs at
        // every pass, and the acknowledged ones only grow.
        let import_dir = self.import_dir();
        let mut removed = Vec::new();
        let mut after = 0;
        loop {
            let page = self
                .store
                .imports_after(Some(&self.account), after, 1000, true)
                .await?;
            let Some(last) = page.last() else { break };
            after = last.id;
            removed.extend(
                page.iter()
                    .filter(|e| !import_dir.join(&e.file_name).exists())
                    .map(|e| e.id),
            );
        }
        if !removed.is_empty() {
            tracing::info!(account = %self.account, documents = removed.len(), "import documents removed from the import folder by the ERP: acknowledged");
            self.store.ack_removed_imports(&removed).await?;
        }
        Ok(())
    }

    /// One pass: everything in the source folder is taken in (or finished) when it returns Ok.
    pub async fn pass(
        &self,
        transport: &mut dyn Transport,
        progress: &mut dyn Progress,
    ) -> Result<PassSummary, IntakeError> {
        let started = Instant::now();
        let _lock = self.lock().await?;
        for dir in [self.import_dir(), self.staging_dir()] {
            std::fs::create_dir_all(&dir)
                .map_err(|e| IntakeError::disk("create the import folder", &dir, e))?;
        }
        self.recover().await?;
        let mut summary = PassSummary {
            account: self.account.clone(),
            protocol: transport.protocol().to_owned(),
            ..Default::default()
        };
        let t_list = Instant::now();
        let listed = transport.list().await?;
        let list_time = t_list.elapsed();
        summary.listed = listed.len() as u64;
        progress.listed(summary.listed);

        // Recorded by an earlier pass whose server-side step was not confirmed, and no longer in
        // the source folder: the step happened (the pass was killed right after the move).
        let ids: Vec<String> = listed.iter().map(|l| l.server_id.clone()).collect();
        let listed_ids: HashSet<&String> = ids.iter().collect();
        let gone: Vec<String> = self
            .store
            .pending_server_ids(&self.account)
            .await?
            .into_iter()
            .filter(|id| {
                id.starts_with(&format!("{}:", transport.protocol())) && !listed_ids.contains(id)
            })
            .collect();
        if !gone.is_empty() {
            self.store.mark_done(&self.account, &gone).await?;
        }

        // Recorded by an earlier pass but still in the source folder: finish, do not fetch.
        let known = self.store.known_server_ids(&self.account, &ids).await?;
        if !known.is_empty() {
            let known_ids: Vec<String> = known.iter().cloned().collect();
            let statuses = self
                .store
                .status_of_server_ids(&self.account, &known_ids)
                .await?;
            let (processed, quarantine): (Vec<_>, Vec<_>) = statuses
                .into_iter()
                .partition(|(_, s)| *s == MessageStatus::Stored);
            let processed: Vec<String> = processed.into_iter().map(|(id, _)| id).collect();
            let quarantine: Vec<String> = quarantine.into_iter().map(|(id, _)| id).collect();
            transport.finish(&processed, Destination::Processed).await?;
            transport
                .finish(&quarantine, Destination::Quarantine)
                .await?;
            transport.commit().await?;
            self.store.mark_done(&self.account, &known_ids).await?;
            summary.finished_from_earlier = known.len() as u64;
            progress.advanced(known.len() as u64);
        }

        tracing::debug!(
            listed = summary.listed,
            setup_ms = started.elapsed().as_millis() as u64,
            list_ms = list_time.as_millis() as u64,
            "listed"
        );
        let new: Vec<Listed> = listed
            .into_iter()
            .filter(|l| !known.contains(&l.server_id))
            .collect();
        let all = batches(&new, self.limits);
        let spool = self.spool();
        match transport.mover() {
            Some(mut mover) => {
                let outcome = self
                    .run_stages(
                        &all,
                        transport,
                        mover.as_mut(),
                        &spool,
                        &mut summary,
                        progress,
                    )
                    .await;
                mover.close().await;
                outcome?;
            }
            None => {
                self.run_in_line(&all, transport, &spool, &mut summary, progress)
                    .await?
            }
        }
        summary.elapsed = started.elapsed();
        Ok(summary)
    }

    /// Three stages, each at its own pace, joined by queues of one or two batches: fetching
    /// (this connection), parsing/handling/committing (a worker thread and SQLite), and moving
    /// (the second connection). A batch reaches the mover only after its transaction
    /// committed, so the order that makes intake exactly-once holds for every batch while the
    /// network, the CPU, the disk and the server work at the same time. A stage that fails
    /// closes its queues: the stages before it stop, the ones after it finish what was handed
    /// to them (committed batches still get moved), and the first error is returned.
    async fn run_stages(
        &self,
        all: &[&[Listed]],
        transport: &mut dyn Transport,
        mover: &mut dyn Transport,
        spool: &SpoolDir,
        summary: &mut PassSummary,
        progress: &mut dyn Progress,
    ) -> Result<(), IntakeError> {
        let (to_store, mut stored_rx) = tokio::sync::mpsc::channel::<Vec<Fetched>>(1);
        let (to_move, mut moves_rx) = tokio::sync::mpsc::channel::<Moves>(64);
        let fetching = async move {
            for batch in all {
                if self.stopping() {
                    tracing::info!(account = %self.account, "shutting down: no further batch fetched; the rest waits for the next start");
                    break;
                }
                let t = Instant::now();
                let fetched = transport.fetch(batch, spool).await?;
                tracing::debug!(
                    messages = batch.len(),
                    fetch_ms = t.elapsed().as_millis() as u64,
                    "batch fetched"
                );
                if to_store.send(fetched).await.is_err() {
                    break; // the storing stage failed; its error is the one returned
                }
            }
            Ok::<(), IntakeError>(())
        };
        let storing = async move {
            while let Some(fetched) = stored_rx.recv().await {
                let (prepared, recorded) = self.prepare_and_record(fetched).await?;
                let moves = self.after_commit(&prepared, &recorded, summary).await?;
                if to_move.send(moves).await.is_err() {
                    break; // the moving stage failed; the next pass finishes this batch
                }
            }
            Ok::<(), IntakeError>(())
        };
        let moving = async move {
            // A server moves many messages in one command far cheaper than in several
            // (Dovecot: 5,000 in one UID MOVE cost a third of what 50 commands of 100 cost),
            // so whatever committed batches are waiting when the mover is free go together.
            while let Some(mut moves) = moves_rx.recv().await {
                while let Ok(more) = moves_rx.try_recv() {
                    moves.absorb(more);
                }
                let (n, t) = self.move_batch(mover, Some(moves)).await?;
                tracing::debug!(messages = n, move_ms = t.as_millis() as u64, "batch moved");
                progress.advanced(n);
            }
            Ok::<(), IntakeError>(())
        };
        let (fetched, stored, moved) = tokio::join!(fetching, storing, moving);
        fetched.and(stored).and(moved)
    }

    /// Without a mover (POP3, Graph): fetching batch N+1 overlaps storing batch N, and a batch
    /// is finished on the one connection right after its commit.
    async fn run_in_line(
        &self,
        all: &[&[Listed]],
        transport: &mut dyn Transport,
        spool: &SpoolDir,
        summary: &mut PassSummary,
        progress: &mut dyn Progress,
    ) -> Result<(), IntakeError> {
        let mut next = match all.first() {
            Some(first) => Some(transport.fetch(first, spool).await?),
            None => None,
        };
        for i in 0..all.len() {
            let Some(fetched) = next.take() else {
                break; // stopping: nothing was fetched ahead
            };
            let fetch_ahead = async {
                if self.stopping() {
                    tracing::info!(account = %self.account, "shutting down: no further batch fetched; the rest waits for the next start");
                    return Ok(None);
                }
                match all.get(i + 1) {
                    Some(f) => transport.fetch(f, spool).await.map(Some),
                    None => Ok(None),
                }
            };
            let (stored, ahead) = tokio::join!(self.prepare_and_record(fetched), fetch_ahead);
            next = ahead?;
            let (prepared, recorded) = stored?;
            let moves = self.after_commit(&prepared, &recorded, summary).await?;
            let (moved, t) = self.move_batch(transport, Some(moves)).await?;
            tracing::debug!(
                messages = moved,
                move_ms = t.as_millis() as u64,
                "batch moved"
            );
            progress.advanced(moved);
        }
        Ok(())
    }

    /// After a batch's commit: import documents into the ERP's folder, counts, and what to move.
    async fn after_commit(
        &self,
        prepared: &[Prepared],
        recorded: &[Recorded],
        summary: &mut PassSummary,
    ) -> Result<Moves, IntakeError> {
        let mut ready_names = Vec::new();
        let mut moves = Moves {
            count: prepared.len() as u64,
            ..Default::default()
        };
        for (p, r) in prepared.iter().zip(recorded) {
            summary.bytes += p.new.size;
            if let Some(spool) = &p.spool_after_commit {
                let _ = std::fs::remove_file(spool);
            }
            match r {
                Recorded::New { .. } => {
                    match p.new.status {
                        MessageStatus::Stored => summary.stored += 1,
                        MessageStatus::Quarantined => summary.quarantined += 1,
                    }
                    for (from, to) in &p.staged {
                        std::fs::rename(from, to).map_err(|e| {
                            IntakeError::disk("move an import document into place", to, e)
                        })?;
                        ready_names.push(to.clone());
                    }
                    summary.documents += p.staged.len() as u64;
                }
                Recorded::Duplicate { .. } => {
                    summary.duplicates += 1;
                    for (from, _) in &p.staged {
                        let _ = std::fs::remove_file(from);
                    }
                    if let Some(raw) = &p.created_raw {
                        let _ = std::fs::remove_file(raw);
                    }
                }
            }
            match p.new.status {
                MessageStatus::Stored => moves.processed.push(p.new.server_id.clone()),
                MessageStatus::Quarantined => moves.quarantine.push(p.new.server_id.clone()),
            }
        }
        if !ready_names.is_empty() {
            sync_dir(&self.import_dir());
            let staged = self.store.staged_imports(&self.account).await?;
            let ids: Vec<i64> = staged
                .iter()
                .filter(|e| self.import_dir().join(&e.file_name).exists())
                .map(|e| e.id)
                .collect();
            self.store.mark_imports_ready(&ids).await?;
        }
        Ok(moves)
    }

    /// The server-side step for a committed batch, then its record that the step happened.
    /// Returns how many messages the batch had, and how long it took.
    async fn move_batch(
        &self,
        transport: &mut dyn Transport,
        moves: Option<Moves>,
    ) -> Result<(u64, Duration), IntakeError> {
        let Some(moves) = moves else {
            return Ok((0, Duration::ZERO));
        };
        let t = Instant::now();
        transport
            .finish(&moves.processed, Destination::Processed)
            .await?;
        transport
            .finish(&moves.quarantine, Destination::Quarantine)
            .await?;
        transport.commit().await?;
        let done: Vec<String> = moves
            .processed
            .into_iter()
            .chain(moves.quarantine)
            .collect();
        self.store.mark_done(&self.account, &done).await?;
        Ok((moves.count, t.elapsed()))
    }

    async fn prepare_and_record(
        &self,
        fetched: Vec<Fetched>,
    ) -> Result<(Vec<Prepared>, Vec<Recorded>), IntakeError> {
        let t = Instant::now();
        let mut prepared = self.prepare_all(fetched).await?;
        let prepare_time = t.elapsed();
        // Move the raw bytes into the store call instead of copying them; the rest is small.
        let news: Vec<NewMessage> = prepared
            .iter_mut()
            .map(|p| {
                let raw = std::mem::replace(&mut p.new.raw, RawMime::Inline(Vec::new()));
                NewMessage {
                    raw,
                    ..p.new.clone()
                }
            })
            .collect();
        let t = Instant::now();
        let recorded = self.store.record_batch(&self.account, news).await?;
        tracing::debug!(
            prepare_ms = prepare_time.as_millis() as u64,
            record_ms = t.elapsed().as_millis() as u64,
            "batch parsed and recorded"
        );
        Ok((prepared, recorded))
    }

    /// Parses, handles and makes durable every fetched message of a batch, off the async
    /// threads (parsing is CPU work). A panic in the parser quarantines that one message.
    async fn prepare_all(&self, fetched: Vec<Fetched>) -> Result<Vec<Prepared>, IntakeError> {
        let ctx = self.prepare_ctx();
        tokio::task::spawn_blocking(move || {
            let t = Instant::now();
            let mut prepared = fetched
                .into_iter()
                .map(|f| ctx.prepare(f))
                .collect::<Result<Vec<_>, _>>()?;
            let parse_time = t.elapsed();
            let t = Instant::now();
            ctx.write_segment(&mut prepared)?;
            tracing::debug!(
                parse_ms = parse_time.as_millis() as u64,
                segment_ms = t.elapsed().as_millis() as u64,
                "batch prepared"
            );
            Ok(prepared)
        })
        .await
        .map_err(|e| IntakeError::Config {
            account: self.account.clone(),
            problem: format!("the intake worker stopped unexpectedly: {e}"),
        })?
    }
}

/// What [`Intake::reprocess`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReprocessOutcome {
    /// The handler took it in now: its documents are in the import folder.
    Stored { documents: usize },
    /// The handler still refuses it; the new reason replaced the old.
    StillQuarantined { reason: String },
    /// Not done: not found, not quarantined, …
    Refused(kurir_store::lifecycle::ActionRefused),
    /// Retention already removed the raw MIME; there is nothing to run the handler on.
    RawGone,
}

impl Intake {
    /// The pipeline of `account` for work outside a pass (reprocessing a quarantined message):
    /// its type's handler, the data directory's folders.
    pub fn for_account(
        account: &str,
        account_type: &str,
        data_dir: PathBuf,
        store: Arc<dyn MessageStore>,
    ) -> Intake {
        Intake {
            account: account.to_owned(),
            data_dir,
            store,
            handler: crate::handler::handler_for(account_type),
            limits: BatchLimits::default(),
            stop: None,
            dir: Default::default(),
        }
    }

    /// Runs the account's handler again on quarantined message `id` (after an administrator
    /// changed the account's type, say) and replaces its quarantine state with the result: its
    /// documents go into the import queue exactly as a pass would put them (staged, committed,
    /// renamed into place, ready). Waits for a pass in progress to finish (the account lock).
    /// The message stays where it is on the mail server (the quarantine folder).
    pub async fn reprocess(
        &self,
        id: i64,
        lifecycle: &dyn kurir_store::LifecycleStore,
        actor: &str,
    ) -> Result<ReprocessOutcome, IntakeError> {
        let Some(raw) = self.store.raw_message(id).await? else {
            return Ok(match self.store.message(id).await? {
                None => ReprocessOutcome::Refused(kurir_store::lifecycle::ActionRefused::NotFound),
                Some(_) => ReprocessOutcome::RawGone,
            });
        };
        let _lock = self.lock_waiting(Duration::from_secs(60)).await?;
        for dir in [self.import_dir(), self.staging_dir()] {
            std::fs::create_dir_all(&dir)
                .map_err(|e| IntakeError::disk("create the import folder", &dir, e))?;
        }
        let ctx = self.prepare_ctx();
        let data_dir = self.data_dir.clone();
        let examined = tokio::task::spawn_blocking(move || {
            let bytes = raw
                .read(&data_dir)
                .map_err(|e| IntakeError::disk("read the raw message", &data_dir, e))?;
            let hash = parse::content_hash(&bytes);
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                ctx.examine(&bytes, &hash)
            })) {
                Ok(r) => r,
                Err(_) => Ok((
                    parse::Meta::default(),
                    MessageStatus::Quarantined,
                    Some(crate::reasons::PARSER_FAILED.to_owned()),
                    Vec::new(),
                )),
            }
        })
        .await
        .map_err(|e| IntakeError::Config {
            account: self.account.clone(),
            problem: format!("the intake worker stopped unexpectedly: {e}"),
        })??;
        let (meta, status, reason, staged) = examined;
        let outcome = kurir_store::lifecycle::Reprocessed {
            status,
            reason: reason.clone(),
            handler: self.handler.name().to_owned(),
            attachments: meta.attachments,
            imports: staged.iter().map(|(_, _, imp)| imp.clone()).collect(),
        };
        let ids = match lifecycle.replace_quarantine(id, outcome, actor).await? {
            Ok(ids) => ids,
            Err(refused) => {
                for (from, _, _) in &staged {
                    let _ = std::fs::remove_file(from);
                }
                return Ok(ReprocessOutcome::Refused(refused));
            }
        };
        for (from, to, _) in &staged {
            std::fs::rename(from, to)
                .map_err(|e| IntakeError::disk("move an import document into place", to, e))?;
        }
        if !ids.is_empty() {
            sync_dir(&self.import_dir());
            self.store.mark_imports_ready(&ids).await?;
        }
        Ok(match status {
            MessageStatus::Stored => ReprocessOutcome::Stored {
                documents: staged.len(),
            },
            MessageStatus::Quarantined => ReprocessOutcome::StillQuarantined {
                reason: reason.unwrap_or_default(),
            },
        })
    }

    /// What parsing and handling a message needs, off the async threads.
    fn prepare_ctx(&self) -> PrepareCtx {
        PrepareCtx {
            data_dir: self.data_dir.clone(),
            raw_in_store: self.store.keeps_raw_bytes(),
            staging: self.staging_dir(),
            import_dir: self.import_dir(),
            account_dir: self.account_dir_name().to_owned(),
            handler: self.handler.clone(),
        }
    }

    /// The account's lock, waiting up to `wait` for a pass that holds it.
    async fn lock_waiting(&self, wait: Duration) -> Result<AccountLock, IntakeError> {
        let until = Instant::now() + wait;
        loop {
            match self.lock().await {
                Ok(l) => return Ok(l),
                Err(e) if Instant::now() < until && matches!(e, IntakeError::Config { .. }) => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

struct PrepareCtx {
    data_dir: PathBuf,
    /// The store keeps raw MIME itself: no segment or message files are written.
    raw_in_store: bool,
    staging: PathBuf,
    import_dir: PathBuf,
    /// The account's directory name: large messages are filed under it, so two accounts never
    /// share a message file and retention can remove one account's file without a race with
    /// another account taking in the same bytes.
    account_dir: String,
    handler: Arc<dyn Handler>,
}

/// The bytes of a fetched message, from memory or a memory-mapped spool file.
enum RawBytes {
    Vec(Vec<u8>),
    Map(memmap2::Mmap),
    Empty,
}

impl std::ops::Deref for RawBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            RawBytes::Vec(v) => v,
            RawBytes::Map(m) => m,
            RawBytes::Empty => &[],
        }
    }
}

impl PrepareCtx {
    /// Writes the batch's small messages into one segment file (one write, one fsync) and
    /// points their rows at byte ranges of it. A segment of a batch that never commits is
    /// garbage on disk, never a second copy in the store.
    fn write_segment(&self, prepared: &mut [Prepared]) -> Result<(), IntakeError> {
        if self.raw_in_store {
            return Ok(());
        }
        let parts: Vec<&[u8]> = prepared
            .iter()
            .filter_map(|p| match &p.new.raw {
                RawMime::Inline(b) => Some(&b[..]),
                _ => None,
            })
            .collect();
        if parts.iter().all(|p| p.is_empty()) {
            return Ok(());
        }
        let rel = format!("messages/seg/{:016x}.seg", rand::random::<u64>());
        let path = self.data_dir.join(&rel);
        let dir = path.parent().expect("has a parent").to_owned();
        std::fs::create_dir_all(&dir)
            .map_err(|e| IntakeError::disk("create the message folder", &dir, e))?;
        let t = Instant::now();
        crate::segment::write(&path, &parts)
            .map_err(|e| IntakeError::disk("write a segment file", &path, e))?;
        tracing::debug!(
            write_sync_ms = t.elapsed().as_millis() as u64,
            "segment written"
        );
        drop(parts);
        let mut offset = 0u64;
        for p in prepared.iter_mut() {
            if let RawMime::Inline(bytes) = &p.new.raw {
                let len = bytes.len() as u64;
                p.new.raw = RawMime::Segment {
                    path: rel.clone(),
                    offset,
                    len,
                };
                offset += len;
            }
        }
        sync_dir(&dir);
        Ok(())
    }

    fn prepare(&self, f: Fetched) -> Result<Prepared, IntakeError> {
        let (raw, spool_path) = match f.body {
            Spooled::Memory(v) => (RawBytes::Vec(v), None),
            Spooled::File { path, size } => {
                let file = File::open(&path)
                    .map_err(|e| IntakeError::disk("open a spool file", &path, e))?;
                let raw = if size == 0 {
                    RawBytes::Empty
                } else {
                    // SAFETY: the spool file is ours alone (per-account lock) and is not
                    // modified while mapped.
                    RawBytes::Map(
                        unsafe { memmap2::Mmap::map(&file) }
                            .map_err(|e| IntakeError::disk("map a spool file", &path, e))?,
                    )
                };
                (raw, Some(path))
            }
        };
        let size = raw.len() as u64;
        let hash = parse::content_hash(&raw);

        // Parsing and handling: any failure (or parser panic) becomes a quarantine reason.
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.examine(&raw, &hash)));
        let (meta, status, reason, staged) = match outcome {
            Ok(Ok(x)) => x,
            Ok(Err(e)) => return Err(e),
            Err(_) => (
                parse::Meta::default(),
                MessageStatus::Quarantined,
                Some(crate::reasons::PARSER_FAILED.to_owned()),
                Vec::new(),
            ),
        };

        let (raw_mime, created_raw, spool_after_commit) = if self.raw_in_store {
            let (raw_mime, spool) = self.hand_raw_to_store(raw, spool_path);
            (raw_mime, None, spool)
        } else {
            let (raw_mime, created) = self.keep_raw(raw, spool_path, &hash, size)?;
            (raw_mime, created, None)
        };
        // The same message is the same bytes; the Message-ID alone decides nothing (see the
        // module doc).
        let dedupe_key = format!("blake3:{hash}");
        let imports = staged.iter().map(|(_, _, imp)| imp.clone()).collect();
        Ok(Prepared {
            new: NewMessage {
                server_id: f.server_id,
                dedupe_key,
                message_id: meta.message_id,
                content_hash: hash,
                status,
                reason,
                handler: self.handler.name().to_owned(),
                from: meta.from,
                to: meta.to,
                subject: meta.subject,
                date: meta.date,
                size,
                attachments: meta.attachments,
                raw: raw_mime,
                imports,
            },
            staged: staged.into_iter().map(|(from, to, _)| (from, to)).collect(),
            created_raw,
            spool_after_commit,
        })
    }

    #[allow(clippy::type_complexity)]
    fn examine(
        &self,
        raw: &[u8],
        hash: &str,
    ) -> Result<
        (
            parse::Meta,
            MessageStatus,
            Option<String>,
            Vec<(PathBuf, PathBuf, NewImport)>,
        ),
        IntakeError,
    > {
        if !self.handler.needs_body() {
            return Ok(match parse::meta_without_body(raw) {
                Ok(meta) => (meta, MessageStatus::Stored, None, Vec::new()),
                Err(reason) => (
                    parse::Meta::default(),
                    MessageStatus::Quarantined,
                    Some(reason),
                    Vec::new(),
                ),
            });
        }
        let msg = match parse::parse(raw) {
            Ok(m) => m,
            Err(reason) => {
                return Ok((
                    parse::Meta::default(),
                    MessageStatus::Quarantined,
                    Some(reason),
                    Vec::new(),
                ));
            }
        };
        let meta = parse::meta(&msg);
        let docs = match self.handler.handle(&msg) {
            Ok(d) => d,
            Err(rejection) => {
                return Ok((
                    meta,
                    MessageStatus::Quarantined,
                    Some(rejection.0),
                    Vec::new(),
                ));
            }
        };
        let mut staged: Vec<(PathBuf, PathBuf, NewImport)> = Vec::new();
        for (i, doc) in docs.iter().enumerate() {
            // Deterministic names: a retried batch overwrites its own staging file.
            let file_name = crate::handler::import_file_name(hash, i, &doc.name);
            // The handler made the name one plain component; never write anywhere else.
            let plain = matches!(
                Path::new(&file_name).components().collect::<Vec<_>>()[..],
                [std::path::Component::Normal(_)]
            );
            let from = self.staging.join(&file_name);
            let to = self.import_dir.join(&file_name);
            let written = if plain {
                write_durably(&from, &doc.bytes)
            } else {
                Err(IntakeError::disk(
                    "name an import document",
                    &file_name,
                    std::io::Error::from(std::io::ErrorKind::InvalidFilename),
                ))
            };
            if let Err(e) = written {
                if !e.belongs_to_one_message() {
                    return Err(e);
                }
                // This message's document cannot be a file here; the message is kept (in
                // quarantine, with the reason) and the account goes on with the next one.
                for (from, _, _) in &staged {
                    let _ = std::fs::remove_file(from);
                }
                let _ = std::fs::remove_file(from.with_extension("tmp-write"));
                let why = match &e {
                    IntakeError::Disk { source, .. } => source.to_string(),
                    other => other.to_string(),
                };
                return Ok((
                    meta,
                    MessageStatus::Quarantined,
                    Some(crate::reasons::unwritable(doc.kind, &doc.name, &why)),
                    Vec::new(),
                ));
            }
            staged.push((
                from,
                to,
                NewImport {
                    kind: doc.kind.to_owned(),
                    file_name,
                    content_type: doc.content_type.clone(),
                    size: doc.bytes.len() as u64,
                },
            ));
        }
        if !staged.is_empty() {
            sync_dir(&self.staging);
        }
        Ok((meta, MessageStatus::Stored, None, staged))
    }

    /// For a store that keeps raw MIME itself: the bytes in memory, or the spool file for the
    /// store to read (removed after the commit). Nothing of the message is written here.
    fn hand_raw_to_store(
        &self,
        raw: RawBytes,
        spool_path: Option<PathBuf>,
    ) -> (RawMime, Option<PathBuf>) {
        let rel = spool_path
            .as_deref()
            .and_then(|p| p.strip_prefix(&self.data_dir).ok())
            .map(|rel| rel.to_string_lossy().into_owned());
        match rel {
            Some(rel) => (RawMime::File(rel), spool_path),
            None => {
                let bytes = match raw {
                    RawBytes::Vec(v) => v,
                    other => other.to_vec(),
                };
                if let Some(p) = spool_path {
                    let _ = std::fs::remove_file(p);
                }
                (RawMime::Inline(bytes), None)
            }
        }
    }

    /// Small messages inline; large ones as a content-addressed file under `messages/`, synced
    /// before the row that points at it commits.
    fn keep_raw(
        &self,
        raw: RawBytes,
        spool_path: Option<PathBuf>,
        hash: &str,
        size: u64,
    ) -> Result<(RawMime, Option<PathBuf>), IntakeError> {
        if size <= INLINE_MAX {
            let bytes = match raw {
                RawBytes::Vec(v) => v,
                other => other.to_vec(),
            };
            if let Some(p) = spool_path {
                let _ = std::fs::remove_file(p);
            }
            return Ok((RawMime::Inline(bytes), None));
        }
        let rel = format!("messages/{}/{}/{}.eml", self.account_dir, &hash[..2], hash);
        let path = self.data_dir.join(&rel);
        let dir = path.parent().expect("has a parent").to_owned();
        std::fs::create_dir_all(&dir)
            .map_err(|e| IntakeError::disk("create the message folder", &dir, e))?;
        let existed = std::fs::metadata(&path).is_ok_and(|m| m.len() == size);
        if !existed {
            match (&raw, &spool_path) {
                (RawBytes::Map(_), Some(spool)) => {
                    let f = File::open(spool)
                        .map_err(|e| IntakeError::disk("open a spool file", spool, e))?;
                    f.sync_all()
                        .map_err(|e| IntakeError::disk("sync a spool file", spool, e))?;
                    std::fs::rename(spool, &path)
                        .map_err(|e| IntakeError::disk("store a message file", &path, e))?;
                }
                _ => write_durably(&path, &raw)?,
            }
            sync_dir(&dir);
        } else if let Some(spool) = &spool_path {
            let _ = std::fs::remove_file(spool);
        }
        drop(raw);
        Ok((RawMime::File(rel), (!existed).then_some(path)))
    }
}

/// Writes a file and syncs it, via a temporary name so a crash never leaves a torn file under
/// the final name.
fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), IntakeError> {
    let tmp = path.with_extension("tmp-write");
    let mut f = File::create(&tmp).map_err(|e| IntakeError::disk("create a file", &tmp, e))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(|e| IntakeError::disk("write a file", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| IntakeError::disk("rename a file", path, e))
}

/// Makes a rename or a new file in `dir` durable (best effort: some file systems refuse).
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Splits the listed messages into batches by count and announced size; a message larger than
/// the byte limit is a batch of its own.
///
/// The stages of a pass overlap only between batches, so the first batches are small (the
/// pipeline fills quickly instead of waiting for one full batch to arrive) and so are the last
/// (the store and the move of the final batch run with nothing left to overlap them): sizes
/// ramp up from an eighth of the limit, doubling, and down again, halving what is left.
pub fn batches(listed: &[Listed], limits: BatchLimits) -> Vec<&[Listed]> {
    let smallest = (limits.messages / 8).max(1);
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0u64;
    let mut cap = smallest.min(limits.messages);
    let cap_for = |cap: usize, start: usize| {
        let left = listed.len() - start;
        cap.min((left / 2).max(smallest)).max(1)
    };
    let mut this_cap = cap_for(cap, 0);
    for (i, l) in listed.iter().enumerate() {
        let size = l.size.unwrap_or(0);
        let count = i - start;
        if count > 0 && (count >= this_cap || bytes + size > limits.bytes) {
            out.push(&listed[start..i]);
            start = i;
            bytes = 0;
            cap = (cap * 2).min(limits.messages);
            this_cap = cap_for(cap, start);
        }
        bytes += size;
    }
    if start < listed.len() {
        out.push(&listed[start..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(size: u64) -> Listed {
        Listed {
            server_id: format!("x:{size}"),
            size: Some(size),
        }
    }

    #[test]
    fn batches_respect_count_and_bytes() {
        let listed: Vec<Listed> = (0..5).map(|_| l(10)).collect();
        let limits = BatchLimits {
            messages: 2,
            bytes: 1000,
        };
        let sizes: Vec<usize> = batches(&listed, limits).iter().map(|b| b.len()).collect();
        assert_eq!(sizes, vec![1, 2, 1, 1]);
        let listed = vec![l(10), l(5000), l(10)];
        let limits = BatchLimits {
            messages: 100,
            bytes: 1000,
        };
        let sizes: Vec<usize> = batches(&listed, limits).iter().map(|b| b.len()).collect();
        assert_eq!(sizes, vec![1, 1, 1]);
    }

    #[test]
    fn batches_ramp_up_and_down() {
        let listed: Vec<Listed> = (0..5000).map(|_| l(100)).collect();
        let sizes: Vec<usize> = batches(&listed, BatchLimits::default())
            .iter()
            .map(|b| b.len())
            .collect();
        assert_eq!(sizes.iter().sum::<usize>(), 5000);
        assert_eq!(&sizes[..4], &[62, 124, 248, 496]);
        assert!(sizes.iter().all(|s| *s <= 500), "{sizes:?}");
        assert!(*sizes.last().unwrap() <= 62, "{sizes:?}");
    }
}
