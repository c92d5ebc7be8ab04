//! Account health (Kontohälsa): every account's last fetch and errors, every sender's outbox.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::*;
use crate::auth::{Admin, PageLang};
use crate::ops::health_summary;
pub struct AccountHealthRow {
    pub account: String,
    pub href: String,
    pub messages_href: String,
    pub last_success: String,
    pub last_attempt: String,
    pub last_error: Vec<(String, &'static str)>,
    pub last_error_at: String,
    pub error_is_current: bool,
    pub failures: u32,
    pub total: u64,
    pub stored_24h: u64,
    pub quarantined_24h: u64,
}

pub struct SenderRow {
    pub user: String,
    pub href: String,
    pub failed: u64,
    pub failed_href: String,
    pub waiting: u64,
    pub sent: u64,
}

/// What one account's mail takes up.
pub struct StorageRow {
    pub account: String,
    pub messages: u64,
    pub originals: u64,
    pub raw_size: String,
    pub quarantine_open: u64,
    pub import_documents: u64,
    pub import_size: String,
}

#[derive(Template)]
#[template(path = "health.html")]
struct HealthTpl {
    l: Layout,
    accounts: Vec<AccountHealthRow>,
    senders: Vec<SenderRow>,
    storage: Vec<StorageRow>,
    /// (entries, size) of the outbox.
    outbox: (u64, String),
}

pub(super) async fn health_page(
    State(state): State<Shared>,
    admin: Admin,
    PageLang(lang): PageLang,
    Query(q): Query<ListQuery>,
) -> Response {
    let t = lang.texts();
    let summary = match health_summary(&*state.store, time::OffsetDateTime::now_utc()).await {
        Ok(s) => s,
        Err(e) => return store_error(e),
    };
    let snap = match state.store.snapshot().await {
        Ok(s) => s,
        Err(e) => return store_error(e),
    };
    let time_or = |v: &Option<String>, none: &str| {
        v.as_deref()
            .map(fmt_time)
            .unwrap_or_else(|| none.to_owned())
    };
    let accounts = summary
        .accounts
        .iter()
        .map(|h| AccountHealthRow {
            href: format!("/accounts/{}", enc(&h.account).replace('+', "%20")),
            messages_href: format!("/incoming?account={}", enc(&h.account)),
            account: h.account.clone(),
            last_success: time_or(&h.last_success, t.never),
            last_attempt: time_or(&h.last_attempt, t.never),
            last_error: h.last_error.as_deref().map(error_parts).unwrap_or_default(),
            last_error_at: time_or(&h.last_error_at, ""),
            error_is_current: h.error_is_current,
            failures: h.failures_in_a_row,
            total: h.taken_in_total,
            stored_24h: h.last_24h_stored,
            quarantined_24h: h.last_24h_quarantined,
        })
        .collect();
    let senders = summary
        .senders
        .iter()
        .map(|s| SenderRow {
            href: format!("/users/{}", enc(&s.user)),
            failed_href: format!("/outbox?state=failed&user={}", enc(&s.user)),
            user: s.user.clone(),
            failed: s.failed,
            waiting: s.waiting,
            sent: s.sent,
        })
        .collect();
    let (usage, outbox) = match state.store.storage_use().await {
        Ok(u) => u,
        Err(e) => return store_error(e),
    };
    let storage = usage
        .into_iter()
        .map(|u| StorageRow {
            raw_size: fmt_size(u.raw_bytes),
            import_size: fmt_size(u.import_bytes),
            account: u.account,
            messages: u.messages,
            originals: u.messages_with_raw,
            quarantine_open: u.quarantine_open,
            import_documents: u.import_documents,
        })
        .collect();
    let l = layout(
        &state,
        &snap,
        &admin,
        lang,
        "health",
        t.nav_health.into(),
        "/health",
    )
    .await;
    page(
        HealthTpl {
            l,
            accounts,
            senders,
            storage,
            outbox: (outbox.entries, fmt_size(outbox.bytes)),
        },
        q.switched(),
        StatusCode::OK,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_unfolded_and_the_body_is_not_shown() {
        let raw = b"From: anna@contoso.com\r\nSubject: a long\r\n  folded subject\r\nTo: x@y.test\r\n\r\nBody: not a header\r\n";
        let h = header_lines(raw);
        assert_eq!(
            h,
            vec![
                ("From".to_owned(), "anna@contoso.com".to_owned()),
                ("Subject".to_owned(), "a long folded subject".to_owned()),
                ("To".to_owned(), "x@y.test".to_owned()),
            ]
        );
    }

    #[test]
    fn explained_errors_are_split_into_parts_and_previewed_without_urls() {
        let e = "no access token for sending as ANNA: Microsoft Entra ID refused the token request (HTTP 401, invalid_client, AADSTS7000215) at https://login.example/t/oauth2/v2.0/token: The client secret is wrong. What to do: paste the Value. Microsoft's message: Invalid client secret provided. Trace ID: 1-2-3.";
        let parts = error_parts(e);
        let classes: Vec<&str> = parts.iter().map(|p| p.1).collect();
        assert_eq!(classes, ["main", "fix", "ms", "ms"], "{parts:?}");
        assert!(parts[1].0.starts_with("What to do: paste the Value."));
        assert_eq!(
            error_preview(e, 500),
            "no access token for sending as ANNA: Microsoft Entra ID refused the token request (HTTP 401, invalid_client, AADSTS7000215): The client secret is wrong."
        );
        let intake = "no token: AADSTS7000222: expired. | What to do: create a new one. | Microsoft's message: x | Trace ID: y";
        let parts = error_parts(intake);
        assert_eq!(parts.len(), 4);
        assert_eq!(
            parts[0],
            ("no token: AADSTS7000222: expired.".to_owned(), "main")
        );
        assert_eq!(parts[1].1, "fix");
        assert_eq!(error_parts("plain"), vec![("plain".to_owned(), "main")]);
    }

    /// Times were shown in UTC only: they are in the server's zone, with the zone named.
    #[test]
    fn times_are_shown_in_the_servers_time_zone_with_the_zone() {
        let t = |s: &str| {
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).unwrap()
        };
        let stockholm = jiff::tz::TimeZone::get("Europe/Stockholm").unwrap();
        assert_eq!(
            fmt_in(t("2026-06-01T12:00:00.5+02:00"), &stockholm).unwrap(),
            "2026-06-01 12:00:00 CEST"
        );
        assert_eq!(
            fmt_in(t("2026-12-05T10:00:00Z"), &stockholm).unwrap(),
            "2026-12-05 11:00:00 CET"
        );
        assert_eq!(
            fmt_in(t("2026-12-05T10:00:00Z"), &jiff::tz::TimeZone::UTC).unwrap(),
            "2026-12-05 10:00:00 UTC"
        );
    }

    #[test]
    fn times_and_sizes_read_well() {
        assert_eq!(fmt_time("not a time"), "not a time");
        assert!(fmt_ms(0).starts_with("19"), "{}", fmt_ms(0));
        assert_eq!(fmt_size(812), "812 B");
        assert_eq!(fmt_size(12_345), "12.3 kB");
        assert_eq!(fmt_size(4_100_000), "4.1 MB");
        assert_eq!(short("abcdef", 3), "abc…");
    }
}
