//! `GET /common/userrealm/{username}?api-version=1.0`: home realm discovery.
//!
//! MSAL asks this before ROPC to learn whether the account is federated (then it would speak
//! WS-Trust to ADFS). MSAL for Python asks it on port 443 of the authority's host whatever
//! port the authority names, which is why the emulator can run an extra listener on 443.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::state::EmulatorState;

pub async fn handle(
    State(state): State<Arc<EmulatorState>>,
    Path(username): Path<String>,
) -> Response {
    let domain = username
        .rsplit_once('@')
        .map(|(_, d)| d)
        .unwrap_or_default();
    let body = match state.fixture().tenant(domain) {
        Some(_) => json!({
            "ver": "1.0",
            "account_type": "Managed",
            "domain_name": domain.to_ascii_lowercase(),
            "cloud_instance_name": "microsoftonline.com",
            "cloud_audience_urn": "urn:federation:MicrosoftOnline",
        }),
        None => json!({
            "ver": "1.0",
            "account_type": "Unknown",
            "cloud_instance_name": "microsoftonline.com",
        }),
    };
    Json(body).into_response()
}
