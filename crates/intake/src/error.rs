//! Intake errors. Each says what went wrong and what to do, and whether trying again later can
//! help ([`IntakeError::is_transient`]), which drives the scheduler's backoff. No variant carries
//! a token or a secret: servers' answers are quoted only after the SASL exchange is over.

use std::path::PathBuf;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum IntakeError {
    /// Entra ID would not give a token. The message is `EntraError::explain`'s text (what to
    /// fix); the Entra error itself stays the `source`, with its AADSTS code and trace ids.
    #[error("no token for mailbox {mailbox}: {}", explained(source))]
    Token {
        mailbox: String,
        #[source]
        source: Box<kurir_entra::EntraError>,
    },

    #[error(
        "cannot connect to {server}: {detail}. Check the host and port settings ({protocol}_host / {protocol}_port), that the server is up, and that a firewall lets Kurir reach it"
    )]
    Connect {
        protocol: &'static str,
        server: String,
        detail: String,
    },

    #[error(
        "TLS with {server} failed: {detail}. If the server uses a private certificate authority (an on-premises server or the emulator), set Extra CA certificate (ca_file) to its CA's PEM file"
    )]
    Tls { server: String, detail: String },

    #[error(
        "{server} refused the OAuth sign-in of {mailbox} ({mechanism}): {detail}. Check that the app has {permission} (admin consent), that Exchange knows the app's service principal and that it has FullAccess to the mailbox (Add-MailboxPermission), and that the mailbox address is right"
    )]
    AuthRejected {
        server: String,
        mailbox: String,
        mechanism: &'static str,
        permission: &'static str,
        detail: String,
    },

    #[error(
        "{server} offers neither XOAUTH2 nor OAUTHBEARER, so Kurir cannot sign in with a token; check that the host is Exchange Online (outlook.office365.com) or another server with OAuth enabled"
    )]
    NoOAuthMechanism { server: String },

    #[error(
        "folder '{folder}' of {mailbox} cannot be used: {detail}. Check the folder settings (source_folder, processed_folder, quarantine_folder) of the account"
    )]
    Folder {
        mailbox: String,
        folder: String,
        detail: String,
    },

    /// The server said something unexpected, or the connection dropped mid-way.
    #[error("{protocol} with {server}: {detail}. Kurir will connect again and continue")]
    Protocol {
        protocol: &'static str,
        server: String,
        detail: String,
    },

    /// Microsoft Graph answered with an error (kept as the `source`, with Graph's request-id
    /// for a support case).
    #[error("Microsoft Graph {operation} failed: {source}")]
    Graph {
        operation: String,
        #[source]
        source: Box<kurir_graph::GraphError>,
    },

    #[error(
        "could not {what} ({path}): {source}. Check that the data directory is writable and the disk is not full",
        path = path.display()
    )]
    Disk {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{0}")]
    Store(#[from] kurir_store::StoreError),

    #[error("the account {account} cannot be read: {problem}")]
    Config { account: String, problem: String },
}

/// An Entra failure explained for the admin, on one line.
fn explained(e: &kurir_entra::EntraError) -> String {
    e.explain(kurir_entra::Lang::En)
        .to_string()
        .replace('\n', " | ")
}

impl IntakeError {
    /// A short stable word for metrics (`kurir_failures_total{component="intake",reason}`).
    pub fn reason(&self) -> &'static str {
        match self {
            IntakeError::Token { .. } => "token",
            IntakeError::Connect { .. } => "network",
            IntakeError::Tls { .. } => "tls",
            IntakeError::AuthRejected { .. } | IntakeError::NoOAuthMechanism { .. } => "auth",
            IntakeError::Folder { .. } => "folder",
            IntakeError::Protocol { .. } => "protocol",
            IntakeError::Graph { .. } => kurir_settings::Protocol::Graph.as_str(),
            IntakeError::Disk { .. } => "disk",
            IntakeError::Store(_) => "store",
            IntakeError::Config { .. } => "settings",
        }
    }

    /// True when the same pass may succeed later without anyone changing anything (network,
    /// server busy, Entra temporarily unavailable). Permanent errors still get retried by the
    /// scheduler, but with the longest backoff, since an admin has to act first.
    pub fn is_transient(&self) -> bool {
        match self {
            IntakeError::Token { source, .. } => source.is_transient(),
            IntakeError::Graph { source, .. } => source.is_transient(),
            IntakeError::Connect { .. } | IntakeError::Protocol { .. } => true,
            IntakeError::Tls { .. }
            | IntakeError::AuthRejected { .. }
            | IntakeError::NoOAuthMechanism { .. }
            | IntakeError::Folder { .. }
            | IntakeError::Config { .. } => false,
            IntakeError::Disk { .. } | IntakeError::Store(_) => true,
        }
    }

    /// True for a file-system error caused by what one message brought rather than by the data
    /// directory: a file name the file system refuses (too long, invalid characters or encoding)
    /// or a file too large for it. Such a message is quarantined with the reason instead of
    /// failing its batch, which would fail again on every pass and stop the account. A full
    /// disk, a permission problem or an I/O error stays a batch error and is retried.
    pub fn belongs_to_one_message(&self) -> bool {
        match self {
            IntakeError::Disk { source, .. } => {
                matches!(
                    source.kind(),
                    std::io::ErrorKind::InvalidFilename
                        | std::io::ErrorKind::InvalidInput
                        | std::io::ErrorKind::FileTooLarge
                ) || is_illegal_byte_sequence(source)
            }
            _ => false,
        }
    }

    pub(crate) fn disk(
        what: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        IntakeError::Disk {
            what,
            path: path.into(),
            source,
        }
    }
}

/// EILSEQ: a file system that accepts only valid UTF-8 (or normalised) names refused one.
#[cfg(unix)]
fn is_illegal_byte_sequence(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(libc::EILSEQ)
}

#[cfg(not(unix))]
fn is_illegal_byte_sequence(_e: &std::io::Error) -> bool {
    false
}
