//! The one way to queue outgoing mail: the REST API, `kurir send`, `kurir outbox submit`, the
//! SMTP listener and the demo all hand a [`Submission`] to [`Submitter::queue`].
//!
//! It decides who sends (a user, or the webshop *according to user settings*), refuses at once
//! when that sender cannot send (instead of queueing messages that fail later), turns each
//! message into what the outbox keeps (composed MIME, or the caller's MIME with a Message-ID and
//! Date added when missing), commits them in ONE durable transaction, and wakes the workers of
//! this process (a daemon in another process finds them at its next look at the queue).

use std::sync::Arc;

use kurir_settings::normalize_user_code;
use kurir_store::outbox::NewOutgoing;
use kurir_store::{KurirStore, StoreError};

use crate::compose::{Draft, FileAttachment, compose, ensure_ids, header_recipients, read_headers};
use crate::error::SendError;
use crate::sender::{self, ExchangeTransport, Sender};
use crate::worker::Outbox;

/// Who sends.
#[derive(Debug, Clone)]
pub enum SendAs {
    /// A Kurir user (`ANNA`), as typed: the code is normalised here.
    User(String),
    /// The webshop, according to its settings (the user it sends as, or its own settings).
    Webshop,
    /// Kurir itself (alarm notices, forwarded quarantined messages): the system settings, from
    /// the Default sender address.
    System,
}

/// One message to queue.
#[derive(Debug, Clone)]
pub enum Content {
    /// Built from parts; From is the sender's address.
    Compose {
        to: Vec<String>,
        cc: Vec<String>,
        bcc: Vec<String>,
        subject: String,
        text: Option<String>,
        html: Option<String>,
        attachments: Vec<FileAttachment>,
    },
    /// A whole RFC 5322 message. `envelope`: the recipients to deliver to (SMTP's RCPT TO, the
    /// API's to/cc/bcc); `None` takes them from its To, Cc and Bcc headers.
    Mime {
        raw: Vec<u8>,
        envelope: Option<Vec<String>>,
    },
}

/// Messages to queue together, all or none.
#[derive(Debug, Clone)]
pub struct Submission {
    pub send_as: SendAs,
    /// Where they come from, kept with each message: `cli`, `cli:submit`, `api:<key>`,
    /// `listener:<login>`, `demo`.
    pub origin: String,
    /// How Exchange Online mail goes out for the sender check (`kurir send --transport`); a
    /// process running workers checks with theirs.
    pub transport: ExchangeTransport,
    /// When the sender cannot send now (settings incomplete): refuse (the API and the CLI,
    /// whose caller is there to read why), or queue anyway (the SMTP listener, whose legacy
    /// client could only drop or bounce the message): the outbox then keeps it, fails it with
    /// the explanation, and `kurir outbox retry` sends it once the settings are fixed.
    pub queue_if_sender_cannot_send: bool,
    pub messages: Vec<Content>,
}

impl Submission {
    /// Mail Kurir sends itself (an alarm notice, a forwarded quarantined message) to one
    /// address: composed, from the Default sender address, refused at once when the system
    /// cannot send (the caller says so to whoever asked for it).
    pub fn from_system(
        origin: String,
        to: &str,
        subject: String,
        text: String,
        attachments: Vec<FileAttachment>,
    ) -> Submission {
        Submission {
            send_as: SendAs::System,
            origin,
            transport: ExchangeTransport::Auto,
            queue_if_sender_cannot_send: false,
            messages: vec![Content::Compose {
                to: vec![to.to_owned()],
                cc: Vec::new(),
                bcc: Vec::new(),
                subject,
                text: Some(text),
                html: None,
                attachments,
            }],
        }
    }
}

/// What was queued.
#[derive(Debug, Clone)]
pub struct Queued {
    /// The outbox ids, in the order of [`Submission::messages`].
    pub ids: Vec<i64>,
    /// The user the messages are queued under.
    pub sender_user: String,
    /// How that user sends now (`None`: it cannot, and the messages were queued anyway, see
    /// [`Submission::queue_if_sender_cannot_send`]).
    pub sender: Option<Sender>,
}

/// Why nothing was queued.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The user code is not one.
    #[error("{0}")]
    User(String),
    /// The sender cannot send (unknown user, incomplete settings); fix the settings.
    #[error("user {user} cannot send: {source}")]
    Sender {
        user: String,
        #[source]
        source: SendError,
    },
    /// One of the messages cannot be sent as given; nothing was queued.
    #[error("{problem}")]
    Message { index: usize, problem: String },
    /// The database did not take them; retrying may help.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Queues submissions. Cheap to clone.
#[derive(Clone)]
pub struct Submitter {
    store: Arc<dyn KurirStore>,
    /// The workers of this process, if it runs any: their cached settings and senders are
    /// used (no settings read per message), and they are woken.
    outbox: Option<Arc<Outbox>>,
}

impl Submitter {
    /// For a process without outbox workers (the CLI): the daemon sends what is queued.
    pub fn new(store: Arc<dyn KurirStore>) -> Submitter {
        Submitter {
            store,
            outbox: None,
        }
    }

    /// For a process that runs `outbox`'s workers (see [`crate::Outbox::submitter`]).
    pub(crate) fn of(outbox: Arc<Outbox>) -> Submitter {
        Submitter {
            store: outbox.store().clone(),
            outbox: Some(outbox),
        }
    }

    /// Validates the sender and every message, then commits them in one durable transaction
    /// and wakes the workers. When this returns `Ok`, the messages will be sent even if the
    /// process dies the next instant.
    pub async fn queue(&self, sub: Submission) -> Result<Queued, SubmitError> {
        let snap = match &self.outbox {
            Some(o) => o.settings().await?,
            None => Arc::new(self.store.snapshot().await?),
        };
        let sender_user = match &sub.send_as {
            SendAs::Webshop => sender::webshop_sender(&snap),
            SendAs::System => sender::SYSTEM_SENDER.to_owned(),
            SendAs::User(code) => normalize_user_code(code).map_err(SubmitError::User)?,
        };
        let resolved = match &self.outbox {
            Some(o) => o.sender_for(&sender_user).await,
            None => sender::resolve(&self.store, &snap, &sender_user, sub.transport).await,
        };
        let who = match resolved {
            Ok(who) => Some(who),
            Err(e) if sub.queue_if_sender_cannot_send => {
                tracing::warn!(user = %sender_user, error = %e, "queueing for a sender that cannot send now; the outbox will keep the message with the explanation");
                None
            }
            Err(source) => {
                return Err(SubmitError::Sender {
                    user: sender_user,
                    source,
                });
            }
        };
        let sender_from = who.as_ref().map(|w| w.from.clone());
        let domain = sender_from
            .as_deref()
            .and_then(|f| f.rsplit_once('@'))
            .map(|(_, d)| d.to_owned())
            .unwrap_or_else(|| "kurir.invalid".into());
        let mut batch = Vec::with_capacity(sub.messages.len());
        for (index, content) in sub.messages.into_iter().enumerate() {
            let problem = |problem: String| SubmitError::Message { index, problem };
            let msg = match content {
                Content::Compose {
                    to,
                    cc,
                    bcc,
                    subject,
                    text,
                    html,
                    attachments,
                } => {
                    let Some(from) = sender_from.clone() else {
                        return Err(problem(format!(
                            "{sender_user} has no address to send from; a message to compose needs one"
                        )));
                    };
                    let draft = Draft {
                        from: from.clone(),
                        to,
                        cc,
                        bcc,
                        subject: subject.clone(),
                        text,
                        html,
                        attachments,
                    };
                    let c = compose(&draft).map_err(|e| problem(e.to_string()))?;
                    NewOutgoing {
                        sender_user: sender_user.clone(),
                        origin: sub.origin.clone(),
                        from: Some(from),
                        recipients: c.recipients,
                        subject: Some(subject),
                        message_id: Some(c.message_id),
                        raw: c.raw,
                    }
                }
                Content::Mime { raw, envelope } => {
                    let recipients = envelope.unwrap_or_else(|| header_recipients(&raw));
                    if recipients.is_empty() {
                        return Err(problem(
                            "the message has no recipients (no envelope recipients, and none in To, Cc or Bcc)"
                                .into(),
                        ));
                    }
                    let (raw, message_id) = ensure_ids(raw, &domain);
                    let h = read_headers(&raw);
                    NewOutgoing {
                        sender_user: sender_user.clone(),
                        origin: sub.origin.clone(),
                        from: h.from.or_else(|| sender_from.clone()),
                        recipients,
                        subject: h.subject,
                        message_id,
                        raw,
                    }
                }
            };
            batch.push(msg);
        }
        let ids = self.store.enqueue_many(batch).await?;
        if let Some(o) = &self.outbox {
            o.wake();
        }
        Ok(Queued {
            ids,
            sender_user,
            sender: who,
        })
    }
}
