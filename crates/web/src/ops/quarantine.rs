//! Quarantine actions (issue #16.4), shared by the web UI, the REST API and `kurir messages
//! quarantine`: reprocess (run the account's handler again, e.g. after its type was changed),
//! mark handled (with a note), forward (through the outbox, as Kurir itself), delete. Every
//! action is in the audit trail with who did it and when.

use std::path::PathBuf;
use std::sync::Arc;

use kurir_intake::{Intake, ReprocessOutcome};
use kurir_outbox::compose::FileAttachment;
use kurir_outbox::submission::Submission;
use kurir_settings::Scope;
use kurir_store::KurirStore;
use kurir_store::lifecycle::ActionRefused;
use kurir_store::messages::{MessageStatus, StoredMessage};
use serde::Serialize;

use super::OpError;

/// What to do with a quarantined message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuarantineAction {
    Reprocess,
    MarkHandled { note: String },
    Forward { to: String },
    Delete,
}

impl QuarantineAction {
    pub fn name(&self) -> &'static str {
        match self {
            QuarantineAction::Reprocess => "reprocess",
            QuarantineAction::MarkHandled { .. } => "mark_handled",
            QuarantineAction::Forward { .. } => "forward",
            QuarantineAction::Delete => "delete",
        }
    }
}

/// What an action did.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum ActionDone {
    /// Reprocessed and taken in: `documents` went to the ERP's import folder.
    Stored {
        documents: usize,
    },
    /// Reprocessed, and the handler still refuses it (the new reason).
    StillQuarantined {
        reason: String,
    },
    MarkedHandled,
    /// Queued in the outbox as entry `outbox_id`.
    Forwarded {
        outbox_id: i64,
    },
    Deleted,
}

/// Why a quarantine action was not done, in words for either language (the UI shows the
/// page's; the API and the CLI the English [`std::fmt::Display`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuarantineRefused {
    NotQuarantined(i64),
    /// Mark handled without a note (or one over [`MAX_NOTE`] bytes).
    NoteNeeded,
    BadAddress(String),
    /// Retention removed the original: nothing to reprocess or forward.
    RawGone(i64),
    /// The move to the quarantine folder on the server is not recorded as done yet.
    ServerStepPending(i64),
    /// The message's account was removed: reprocessing has no handler to run.
    AccountGone(String),
    /// Kurir cannot send its own mail (the outbox's explanation).
    CannotSend(String),
}

impl QuarantineRefused {
    /// A stable name for the refusal (the UI's `?refused=` parameter).
    pub fn code(&self) -> &'static str {
        match self {
            QuarantineRefused::NotQuarantined(_) => "not_quarantined",
            QuarantineRefused::NoteNeeded => "note_needed",
            QuarantineRefused::BadAddress(_) => "bad_address",
            QuarantineRefused::RawGone(_) => "raw_gone",
            QuarantineRefused::ServerStepPending(_) => "server_step_pending",
            QuarantineRefused::AccountGone(_) => "account_gone",
            QuarantineRefused::CannotSend(_) => "cannot_send",
        }
    }
}

impl std::fmt::Display for QuarantineRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QuarantineRefused::NotQuarantined(id) => write!(
                f,
                "message {id} is not in quarantine; only quarantined messages can be reprocessed, marked handled, forwarded or deleted"
            ),
            QuarantineRefused::NoteNeeded => write!(
                f,
                "a note is needed (at most {MAX_NOTE} bytes): what was done about the message"
            ),
            QuarantineRefused::BadAddress(a) => write!(
                f,
                "'{a}' is not one e-mail address; give the address to forward the message to"
            ),
            QuarantineRefused::RawGone(id) => write!(
                f,
                "the original of message {id} was removed by retention (keep_raw_mail); it cannot be reprocessed or forwarded"
            ),
            QuarantineRefused::ServerStepPending(id) => write!(
                f,
                "message {id} is still being moved to the quarantine folder on the mail server; try again after the account's next fetch"
            ),
            QuarantineRefused::AccountGone(a) => write!(
                f,
                "the account {a} no longer exists, so there is no handler to run; forward or delete the message instead"
            ),
            QuarantineRefused::CannotSend(why) => write!(f, "Kurir cannot send the message: {why}"),
        }
    }
}

/// The longest note kept with "mark handled".
const MAX_NOTE: usize = 2000;

/// Runs `action` on message `id` as `actor` (`admin:NAME`, `api:KEY`, `cli:USER`).
pub async fn quarantine_action(
    store: &Arc<dyn KurirStore>,
    submitter: &kurir_outbox::Submitter,
    id: i64,
    action: QuarantineAction,
    actor: &str,
) -> Result<ActionDone, OpError> {
    let message = store
        .message(id)
        .await?
        .ok_or_else(|| OpError::NotFound(format!("there is no incoming message {id}")))?;
    if message.status != MessageStatus::Quarantined {
        return Err(OpError::Quarantine(QuarantineRefused::NotQuarantined(id)));
    }
    match action {
        QuarantineAction::Reprocess => reprocess(store, &message, actor).await,
        QuarantineAction::MarkHandled { note } => {
            let note = note.trim();
            if note.is_empty() || note.len() > MAX_NOTE {
                return Err(OpError::Quarantine(QuarantineRefused::NoteNeeded));
            }
            store
                .mark_handled(id, actor, note)
                .await?
                .map_err(|r| refused(id, r))?;
            Ok(ActionDone::MarkedHandled)
        }
        QuarantineAction::Forward { to } => forward(store, submitter, &message, &to, actor).await,
        QuarantineAction::Delete => {
            store
                .delete_quarantined(id, actor)
                .await?
                .map_err(|r| refused(id, r))?;
            Ok(ActionDone::Deleted)
        }
    }
}

fn refused(id: i64, why: ActionRefused) -> OpError {
    match why {
        ActionRefused::NotFound => OpError::NotFound(format!("there is no incoming message {id}")),
        ActionRefused::NotQuarantined => OpError::Quarantine(QuarantineRefused::NotQuarantined(id)),
        ActionRefused::ServerStepPending => {
            OpError::Quarantine(QuarantineRefused::ServerStepPending(id))
        }
    }
}

async fn reprocess(
    store: &Arc<dyn KurirStore>,
    message: &StoredMessage,
    actor: &str,
) -> Result<ActionDone, OpError> {
    let snap = store.snapshot().await?;
    if !snap.accounts.contains_key(&message.account) {
        return Err(OpError::Quarantine(QuarantineRefused::AccountGone(
            message.account.clone(),
        )));
    }
    let eff = snap.resolve(&Scope::Account(message.account.clone()));
    let account_type = eff.get("type").unwrap_or("general").to_owned();
    let data_dir = store.local_data_dir().unwrap_or_else(|| PathBuf::from("."));
    let intake = Intake::for_account(&message.account, &account_type, data_dir, store.clone());
    let outcome = intake
        .reprocess(message.id, &**store, actor)
        .await
        .map_err(|e| OpError::Failed(e.to_string()))?;
    match outcome {
        ReprocessOutcome::Stored { documents } => Ok(ActionDone::Stored { documents }),
        ReprocessOutcome::StillQuarantined { reason } => {
            Ok(ActionDone::StillQuarantined { reason })
        }
        ReprocessOutcome::Refused(r) => Err(refused(message.id, r)),
        ReprocessOutcome::RawGone => {
            Err(OpError::Quarantine(QuarantineRefused::RawGone(message.id)))
        }
    }
}

async fn forward(
    store: &Arc<dyn KurirStore>,
    submitter: &kurir_outbox::Submitter,
    message: &StoredMessage,
    to: &str,
    actor: &str,
) -> Result<ActionDone, OpError> {
    let to = to.trim();
    let valid = to.split_once('@').is_some_and(|(l, d)| {
        !l.is_empty() && d.contains('.') && !to.contains([' ', ',', ';', '<', '>'])
    });
    if !valid {
        return Err(OpError::Quarantine(QuarantineRefused::BadAddress(
            to.to_owned(),
        )));
    }
    let raw = super::read_raw(&**store, message.id)
        .await
        .map_err(|e| match e {
            super::RawError::Store(e) => OpError::Store(e),
            super::RawError::Io(e) => OpError::Failed(format!(
                "the original of message {} cannot be read ({e})",
                message.id
            )),
        })?
        .ok_or(OpError::Quarantine(QuarantineRefused::RawGone(message.id)))?;
    let subject = format!(
        "Fwd: {}",
        message.subject.as_deref().unwrap_or("(no subject)")
    );
    let text = format!(
        "Kurir forwards this message from quarantine (account {account}, message {id}).\n\
         Kurir vidarebefordrar det här meddelandet från karantän (konto {account}, meddelande {id}).\n\n\
         From: {from}\nReason / Orsak: {reason}\n\nThe original is attached. / Originalet är bifogat.\n",
        account = message.account,
        id = message.id,
        from = message.from.as_deref().unwrap_or("-"),
        reason = message.reason.as_deref().unwrap_or("-"),
    );
    let queued = submitter
        .queue(Submission::from_system(
            format!("quarantine:{}", message.id),
            to,
            subject,
            text,
            vec![FileAttachment {
                name: format!("message-{}.eml", message.id),
                content: raw,
            }],
        ))
        .await
        .map_err(|e| match e {
            kurir_outbox::SubmitError::Store(e) => OpError::Store(e),
            e => OpError::Quarantine(QuarantineRefused::CannotSend(e.to_string())),
        })?;
    let outbox_id = queued.ids[0];
    store
        .audit(
            actor,
            "forward",
            &format!("message:{}", message.id),
            Some(&format!("to {to}, outbox entry {outbox_id}")),
        )
        .await?;
    Ok(ActionDone::Forwarded { outbox_id })
}
