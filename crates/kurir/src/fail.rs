//! Classifying failures into exit statuses: bad input (2) versus everything else (1).

use kurir_store::StoreError;

/// Bad input from the person at the keyboard: a wrong value, an unknown key, a missing user.
/// Carries a complete one-line message that says what to do.
#[derive(Debug)]
pub struct BadInput(pub String);

impl std::fmt::Display for BadInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}

pub fn bad(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(BadInput(msg.into()))
}

/// A refused submission: a database failure as it is (worth retrying), anything else (who
/// sends, what is sent) as bad input with its explanation.
pub fn submit_failed(e: kurir_outbox::SubmitError) -> anyhow::Error {
    match e {
        kurir_outbox::SubmitError::Store(e) => e.into(),
        other => bad(other.to_string()),
    }
}

/// The exit status and the one-line text for an error.
pub fn describe(err: &anyhow::Error) -> (u8, String) {
    if let Some(b) = err.downcast_ref::<BadInput>() {
        return (2, b.0.clone());
    }
    if let Some(e @ kurir_connect::ConnectError::Settings(_)) =
        err.downcast_ref::<kurir_connect::ConnectError>()
    {
        return (2, e.to_string());
    }
    if let Some(e) = err.downcast_ref::<kurir_settings::InvalidValue>() {
        return (2, e.to_string());
    }
    if let Some(e @ kurir_intake::IntakeError::Config { .. }) =
        err.downcast_ref::<kurir_intake::IntakeError>()
    {
        return (2, e.to_string());
    }
    if let Some(e) = err.downcast_ref::<StoreError>() {
        let code = match e {
            StoreError::NoSuchUser(_)
            | StoreError::NoSuchAccount(_)
            | StoreError::UserExists(_)
            | StoreError::AccountExists(_)
            | StoreError::ForeignExport { .. }
            | StoreError::BadMasterKeyFormat { .. } => 2,
            _ => 1,
        };
        return (code, e.to_string());
    }
    // Keep it on one line: the chain joined by ": ".
    let text = err
        .chain()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(": ");
    (1, text.replace('\n', " "))
}
