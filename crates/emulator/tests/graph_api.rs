//! Graph mail in the emulator over real HTTPS (reqwest trusting only the emulator's CA):
//! every endpoint and error the Graph client and Microsoft's SDK meet, with tokens from the
//! emulator's own token endpoint.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use kurir_emulator::{Emulator, EmulatorConfig, RunningEmulator, demo};
use reqwest::Method;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::macros::datetime;

const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";

struct H {
    emu: RunningEmulator,
    http: reqwest::Client,
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    bytes: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes).unwrap_or(Value::Null)
    }
    fn code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
    fn message(&self) -> String {
        self.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

fn eml(subject: &str, to: &str) -> Vec<u8> {
    format!(
        "From: Order System <orders@example.com>\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{}@example.com>\r\nDate: Wed, 01 May 2024 08:30:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nBody of {subject}\r\n",
        uuid::Uuid::new_v4()
    )
    .into_bytes()
}

impl H {
    async fn start() -> H {
        Self::start_with(EmulatorConfig::demo()).await
    }
    async fn start_with(cfg: EmulatorConfig) -> H {
        let emu = Emulator::start(cfg).await.expect("emulator starts");
        let ca = reqwest::Certificate::from_pem(emu.ca_pem().as_bytes()).unwrap();
        let http = reqwest::Client::builder()
            .tls_certs_only([ca])
            .build()
            .unwrap();
        H { emu, http }
    }

    async fn token_form(&self, form: &[(&str, &str)]) -> String {
        let r = self
            .http
            .post(format!(
                "{}/{}/oauth2/v2.0/token",
                self.emu.base_url(),
                demo::TENANT_ID
            ))
            .form(form)
            .send()
            .await
            .unwrap();
        let v: Value = r.json().await.unwrap();
        v["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("token: {v}"))
            .to_string()
    }

    async fn app_token(&self) -> String {
        self.app_token_for(demo::CLIENT_ID, demo::CLIENT_SECRET, GRAPH_SCOPE)
            .await
    }

    async fn app_token_for(&self, client: &str, secret: &str, scope: &str) -> String {
        self.token_form(&[
            ("grant_type", "client_credentials"),
            ("client_id", client),
            ("client_secret", secret),
            ("scope", scope),
        ])
        .await
    }

    async fn user_token(&self, user: &str) -> String {
        self.token_form(&[
            ("grant_type", "password"),
            ("client_id", demo::CLIENT_ID),
            ("username", user),
            ("password", demo::PASSWORD),
            ("scope", GRAPH_SCOPE),
        ])
        .await
    }

    async fn req(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
        content_type: &str,
    ) -> Answer {
        let url = if path.starts_with("https://") {
            path.to_string()
        } else {
            format!("{}/v1.0{path}", self.emu.base_url())
        };
        let mut b = self.http.request(method, url);
        if let Some(t) = token {
            b = b.bearer_auth(t);
        }
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        if let Some(body) = body {
            b = b.header("content-type", content_type).body(body);
        }
        let r = b.send().await.expect("answered");
        Answer {
            status: r.status().as_u16(),
            headers: r.headers().clone(),
            bytes: r.bytes().await.unwrap().to_vec(),
        }
    }

    async fn get(&self, path: &str, token: &str) -> Answer {
        self.req(Method::GET, path, Some(token), &[], None, "")
            .await
    }

    async fn post_json(&self, path: &str, token: &str, body: Value) -> Answer {
        self.req(
            Method::POST,
            path,
            Some(token),
            &[],
            Some(body.to_string().into_bytes()),
            "application/json",
        )
        .await
    }

    async fn patch_json(&self, path: &str, token: &str, body: Value) -> Answer {
        self.req(
            Method::PATCH,
            path,
            Some(token),
            &[],
            Some(body.to_string().into_bytes()),
            "application/json",
        )
        .await
    }

    fn put(&self, mailbox: &str, folder: &str, raw: Vec<u8>) -> String {
        self.emu.put_mail(mailbox, Some(folder), raw).unwrap()
    }

    async fn folder_ids(&self, token: &str, mailbox: &str, folder: &str) -> Vec<String> {
        let a = self
            .get(
                &format!("/users/{mailbox}/mailFolders/{folder}/messages?$top=1000&$select=id"),
                token,
            )
            .await;
        assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.bytes));
        a.json()["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_string())
            .collect()
    }
}

#[tokio::test]
async fn token_checks_and_mailbox_errors_answer_like_graph() {
    let h = H::start().await;
    let inbox = format!("/users/{}/mailFolders/inbox/messages", demo::USER);

    let a = h
        .req(
            Method::GET,
            &inbox,
            None,
            &[("client-request-id", "abc-123")],
            None,
            "",
        )
        .await;
    assert_eq!(
        (a.status, a.code().as_str()),
        (401, "InvalidAuthenticationToken")
    );
    let inner = &a.json()["error"]["innerError"];
    assert_eq!(inner["client-request-id"], "abc-123");
    assert!(inner["request-id"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(inner["date"].as_str().is_some());

    let a = h.get(&inbox, "not-a-jwt").await;
    assert_eq!(a.status, 401);

    // A token for Exchange (IMAP) is not a Graph token.
    let exo = h
        .app_token_for(
            demo::CLIENT_ID,
            demo::CLIENT_SECRET,
            "https://outlook.office365.com/.default",
        )
        .await;
    let a = h.get(&inbox, &exo).await;
    assert_eq!(a.status, 401);
    assert_eq!(
        a.message(),
        "Access token validation failure. Invalid audience."
    );

    // No admin consent: the token has no roles.
    let unconsented = h
        .app_token_for(
            demo::UNCONSENTED_CLIENT_ID,
            demo::UNCONSENTED_CLIENT_SECRET,
            GRAPH_SCOPE,
        )
        .await;
    let a = h.get(&inbox, &unconsented).await;
    assert_eq!((a.status, a.code().as_str()), (403, "ErrorAccessDenied"));
    assert_eq!(
        a.message(),
        "Access is denied. Check credentials and try again."
    );

    let app = h.app_token().await;
    assert_eq!(h.get(&inbox, &app).await.status, 200);

    // The application access policy of the demo app leaves the CEO's mailbox out.
    let a = h
        .get(
            &format!("/users/{}/mailFolders", demo::RESTRICTED_MAILBOX),
            &app,
        )
        .await;
    assert_eq!((a.status, a.code().as_str()), (403, "ErrorAccessDenied"));
    assert!(
        a.message().contains("Access to OData is disabled"),
        "{}",
        a.message()
    );

    let a = h
        .get("/users/nobody@kurirdemo.onmicrosoft.com/mailFolders", &app)
        .await;
    assert_eq!((a.status, a.code().as_str()), (404, "ErrorInvalidUser"));
    let a = h
        .get(
            &format!("/users/{}/mailFolders", demo::NO_MAILBOX_USER),
            &app,
        )
        .await;
    assert_eq!(
        (a.status, a.code().as_str()),
        (404, "MailboxNotEnabledForRESTAPI")
    );

    // Delegated: own mailbox (also as /me) yes, someone else's no.
    let adele = h.user_token(demo::USER).await;
    assert_eq!(h.get(&inbox, &adele).await.status, 200);
    assert_eq!(
        h.get("/me/mailFolders/inbox/messages", &adele).await.status,
        200
    );
    let a = h
        .get(
            &format!("/users/{}/mailFolders/inbox/messages", demo::USER2),
            &adele,
        )
        .await;
    assert_eq!((a.status, a.code().as_str()), (403, "ErrorAccessDenied"));
    let a = h.get("/me/mailFolders", &app).await;
    assert_eq!(a.status, 400, "app-only tokens have no /me");

    // Expired tokens.
    h.emu.faults().set_token_lifetime(Duration::from_secs(1));
    let short = h.app_token().await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let a = h.get(&inbox, &short).await;
    assert_eq!(a.status, 401);
    assert!(a.message().contains("expired"), "{}", a.message());
    h.emu.shutdown().await;
}

#[tokio::test]
async fn folders_list_create_and_conflict() {
    let h = H::start().await;
    let t = h.app_token().await;
    let mb = demo::M2M_MAILBOX;
    let a = h.get(&format!("/users/{mb}/mailFolders"), &t).await;
    assert_eq!(a.status, 200);
    let names: Vec<String> = a.json()["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["displayName"].as_str().unwrap().to_string())
        .collect();
    for n in [
        "Inbox",
        "Drafts",
        "Sent Items",
        "Deleted Items",
        "Archive",
        "Junk Email",
        "Outbox",
    ] {
        assert!(names.contains(&n.to_string()), "{names:?}");
    }
    let a = h
        .post_json(
            &format!("/users/{mb}/mailFolders/inbox/childFolders"),
            &t,
            json!({"displayName": "Kurir"}),
        )
        .await;
    assert_eq!(a.status, 201);
    let created = a.json();
    let inbox = h
        .get(&format!("/users/{mb}/mailFolders/inbox"), &t)
        .await
        .json();
    assert_eq!(created["parentFolderId"], inbox["id"]);
    assert_eq!(inbox["childFolderCount"], 1);
    let a = h
        .post_json(
            &format!("/users/{mb}/mailFolders/inbox/childFolders"),
            &t,
            json!({"displayName": "kurir"}),
        )
        .await;
    assert_eq!((a.status, a.code().as_str()), (409, "ErrorFolderExists"));
    let a = h
        .get(&format!("/users/{mb}/mailFolders/inbox/childFolders"), &t)
        .await;
    assert_eq!(a.json()["value"][0]["id"], created["id"]);
    // By id as well as by well-known name.
    let id = created["id"].as_str().unwrap();
    assert_eq!(
        h.get(&format!("/users/{mb}/mailFolders/{id}/messages"), &t)
            .await
            .status,
        200
    );
    assert_eq!(
        h.get(&format!("/users/{mb}/mailFolders/nosuch/messages"), &t)
            .await
            .code(),
        "ErrorItemNotFound"
    );
    h.emu.shutdown().await;
}

#[tokio::test]
async fn listing_pages_selects_filters_and_orders() {
    let h = H::start().await;
    let t = h.app_token().await;
    let mb = demo::USER2;
    let base = datetime!(2024-05-01 08:00 UTC);
    for i in 0..25 {
        h.emu
            .put_mail_at(
                mb,
                Some("inbox"),
                eml(&format!("Order {i:02}"), mb),
                base + time::Duration::minutes(i),
            )
            .unwrap();
    }
    // Default: 10 per page, newest first, opaque next links.
    let mut url =
        format!("/users/{mb}/mailFolders/inbox/messages?$select=subject,receivedDateTime");
    let mut subjects = Vec::new();
    let mut pages = 0;
    loop {
        let a = h.get(&url, &t).await;
        assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.bytes));
        let v = a.json();
        let first = &v["value"][0];
        assert!(
            first.get("body").is_none() && first.get("isRead").is_none(),
            "$select trims: {first}"
        );
        subjects.extend(
            v["value"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["subject"].as_str().unwrap().to_string()),
        );
        pages += 1;
        match v["@odata.nextLink"].as_str() {
            Some(next) => {
                assert!(next.contains("skiptoken"), "{next}");
                url = next.to_string();
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(subjects.len(), 25);
    assert_eq!(subjects[0], "Order 24");
    assert_eq!(subjects[24], "Order 00");

    // $filter on receivedDateTime, ascending order, $top.
    let a = h
        .get(&format!("/users/{mb}/messages?$filter=receivedDateTime ge 2024-05-01T08:20:00Z&$orderby=receivedDateTime asc&$top=3"), &t)
        .await;
    let v = a.json();
    let got: Vec<&str> = v["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["subject"].as_str().unwrap())
        .collect();
    assert_eq!(got, ["Order 20", "Order 21", "Order 22"]);
    assert!(v["@odata.nextLink"].is_string());
    let lt = h
        .get(&format!("/users/{mb}/mailFolders/inbox/messages?$filter=receivedDateTime lt 2024-05-01T08:02:00Z"), &t)
        .await;
    assert_eq!(lt.json()["value"].as_array().unwrap().len(), 2);

    // isRead filter after marking one read.
    let id = v["value"][0]["id"].as_str().unwrap().to_string();
    let a = h
        .req(
            Method::PATCH,
            &format!("/users/{mb}/messages/{id}"),
            Some(&t),
            &[],
            Some(br#"{"isRead":true}"#.to_vec()),
            "application/json",
        )
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.json()["isRead"], true);
    let a = h
        .get(
            &format!("/users/{mb}/mailFolders/inbox/messages?$filter=isRead eq true"),
            &t,
        )
        .await;
    let read = a.json();
    assert_eq!(read["value"].as_array().unwrap().len(), 1);
    assert_eq!(read["value"][0]["id"], id.as_str());
    let inbox = h
        .get(&format!("/users/{mb}/mailFolders/inbox"), &t)
        .await
        .json();
    assert_eq!(
        (
            inbox["totalItemCount"].as_i64(),
            inbox["unreadItemCount"].as_i64()
        ),
        (Some(25), Some(24))
    );

    // Errors for what Graph refuses.
    assert_eq!(
        h.get(&format!("/users/{mb}/messages?$top=1001"), &t)
            .await
            .status,
        400
    );
    let a = h
        .get(
            &format!("/users/{mb}/messages?$filter=bodyPreview eq 'x'"),
            &t,
        )
        .await;
    assert_eq!(
        (a.status, a.code().as_str()),
        (400, "ErrorInvalidUrlQueryFilter")
    );
    let a = h
        .get(&format!("/users/{mb}/messages?$select=nosuch"), &t)
        .await;
    assert_eq!(a.status, 400);
    h.emu.shutdown().await;
}

/// Graph's strict rules, which the emulator used to be lenient about: `$filter` with `$orderby`
/// on a property the filter does not name first (400 InefficientFilter), an id that is no id
/// (400 ErrorInvalidIdMalformed, not 404); what Graph does support ($filter on subject and
/// on from/emailAddress/address, $orderby on subject); and the headers every answer carries.
/// Kurir's Graph client turns the refusals into an explanation.
#[tokio::test]
async fn strict_query_rules_malformed_ids_and_headers_answer_like_graph() {
    let h = H::start().await;
    let t = h.app_token().await;
    let mb = demo::USER2;
    let base = datetime!(2024-05-01 08:00 UTC);
    for (i, subject) in ["Bravo", "Alpha", "Charlie"].iter().enumerate() {
        h.emu
            .put_mail_at(
                mb,
                Some("inbox"),
                eml(subject, mb),
                base + time::Duration::minutes(i as i64),
            )
            .unwrap();
    }
    let list = |q: String| format!("/users/{mb}/mailFolders/inbox/messages?$select=subject&{q}");
    let subjects = |a: &Answer| -> Vec<String> {
        a.json()["value"]
            .as_array()
            .unwrap_or(&Vec::new())
            .iter()
            .map(|m| m["subject"].as_str().unwrap_or_default().to_owned())
            .collect()
    };

    // $orderby on a property the filter does not name (first): refused as Graph refuses it.
    for q in [
        "$filter=isRead eq false&$orderby=receivedDateTime desc",
        "$filter=isRead eq false and receivedDateTime ge 2024-01-01T00:00:00Z&$orderby=receivedDateTime",
    ] {
        let a = h.get(&list(q.into()), &t).await;
        assert_eq!(a.status, 400, "{q}");
        assert_eq!(a.code(), "InefficientFilter", "{q}");
        assert_eq!(
            a.message(),
            "The restriction or sort order is too complex for this operation."
        );
    }
    // Named first: fine.
    let a = h
        .get(
            &list("$filter=receivedDateTime ge 2024-01-01T00:00:00Z and isRead eq false&$orderby=receivedDateTime desc".into()),
            &t,
        )
        .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.bytes));
    assert_eq!(subjects(&a), ["Charlie", "Alpha", "Bravo"]);
    // What Graph supports and the emulator used to refuse.
    let a = h.get(&list("$filter=subject eq 'alpha'".into()), &t).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.bytes));
    assert_eq!(subjects(&a), ["Alpha"]);
    let a = h
        .get(
            &list("$filter=from/emailAddress/address eq 'orders@example.com'".into()),
            &t,
        )
        .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.bytes));
    assert_eq!(subjects(&a).len(), 3);
    let a = h.get(&list("$orderby=subject".into()), &t).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.bytes));
    assert_eq!(subjects(&a), ["Alpha", "Bravo", "Charlie"]);

    // An id that is no id is a 400; a well-formed unknown one a 404.
    let a = h.get(&format!("/users/{mb}/messages/not-an-id"), &t).await;
    assert_eq!(a.status, 400);
    assert_eq!(a.code(), "ErrorInvalidIdMalformed");
    let unknown = format!("AAMkAG{}AAA", "x".repeat(48));
    let a = h.get(&format!("/users/{mb}/messages/{unknown}"), &t).await;
    assert_eq!(a.status, 404);
    assert_eq!(a.code(), "ErrorItemNotFound");

    // Headers: client-request-id always (the caller's, else the request-id), the front end's
    // diagnostic, and a Bearer challenge on 401.
    let a = h.get(&format!("/users/{mb}/mailFolders"), &t).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.headers["client-request-id"], a.headers["request-id"]);
    assert!(a.headers.contains_key("x-ms-ags-diagnostic"));
    let a = h
        .req(
            Method::GET,
            &format!("/users/{mb}/mailFolders"),
            Some(&t),
            &[("client-request-id", "7e57c0de-0000-4000-8000-000000000001")],
            None,
            "",
        )
        .await;
    assert_eq!(
        a.headers["client-request-id"],
        "7e57c0de-0000-4000-8000-000000000001"
    );
    let a = h
        .req(
            Method::GET,
            &format!("/users/{mb}/mailFolders"),
            None,
            &[],
            None,
            "",
        )
        .await;
    assert_eq!(a.status, 401);
    let challenge = a.headers["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.starts_with("Bearer ") && challenge.contains("authorization_uri="),
        "{challenge}"
    );

    // Kurir's Graph client: the refusal with what it means.
    let graph = kurir_graph::GraphClient::new(
        &h.emu.graph_url(),
        Some(&h.emu.ca_pem()),
        Duration::from_secs(30),
    )
    .unwrap();
    let err = graph
        .list_messages(
            &t,
            mb,
            "inbox",
            &kurir_graph::MessageQuery {
                filter: Some("isRead eq false".into()),
                order_by: Some("receivedDateTime desc".into()),
                ..kurir_graph::MessageQuery::default()
            },
        )
        .await
        .expect_err("refused");
    let text = err.to_string();
    assert!(
        text.contains("InefficientFilter") && text.contains("order by the first filtered property"),
        "{text}"
    );
}

/// The attachments API, which the emulator did not have (404s; `$expand` ignored): a received
/// message's MIME attachments listed, read and downloaded byte for byte, `$expand=attachments`,
/// a file attached to a draft with `POST …/attachments`, and Graph's 3 MB limit for that call.
#[tokio::test]
async fn attachments_are_listed_read_downloaded_expanded_and_added_to_drafts() {
    let h = H::start().await;
    let t = h.app_token().await;
    let mb = demo::USER2;
    let pdf: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    let raw = format!(
        "From: orders@example.com\r\nTo: {mb}\r\nSubject: With files\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n--b1\r\nContent-Type: application/pdf; name=\"order 1.pdf\"\r\nContent-Disposition: attachment; filename=\"order 1.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n--b1\r\nContent-Type: image/png\r\nContent-Disposition: inline; filename=\"logo.png\"\r\nContent-ID: <logo@example>\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n--b1--\r\n",
        STANDARD.encode(&pdf)
    );
    let id = h.put(mb, "inbox", raw.into_bytes());

    let a = h
        .get(&format!("/users/{mb}/messages/{id}/attachments"), &t)
        .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.bytes));
    let list = a.json()["value"].as_array().unwrap().clone();
    assert_eq!(list.len(), 2, "{list:?}");
    assert_eq!(list[0]["@odata.type"], "#microsoft.graph.fileAttachment");
    assert_eq!(list[0]["name"], "order 1.pdf");
    assert_eq!(list[0]["contentType"], "application/pdf");
    assert_eq!(list[0]["size"], 5000);
    assert_eq!(list[0]["isInline"], false);
    assert_eq!(list[1]["isInline"], true);
    assert_eq!(list[1]["contentId"], "logo@example");
    let aid = list[0]["id"].as_str().unwrap();

    let a = h
        .get(&format!("/users/{mb}/messages/{id}/attachments/{aid}"), &t)
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(
        STANDARD
            .decode(a.json()["contentBytes"].as_str().unwrap())
            .unwrap(),
        pdf
    );
    let a = h
        .get(
            &format!("/users/{mb}/messages/{id}/attachments/{aid}/$value"),
            &t,
        )
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.headers["content-type"], "application/pdf");
    assert_eq!(a.bytes, pdf);
    let a = h
        .get(
            &format!("/users/{mb}/messages/{id}?$select=subject&$expand=attachments"),
            &t,
        )
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.json()["attachments"].as_array().unwrap().len(), 2);
    let missing = format!("AAMkAG{}AAA", "0".repeat(48));
    let a = h
        .get(
            &format!("/users/{mb}/messages/{id}/attachments/{missing}"),
            &t,
        )
        .await;
    assert_eq!((a.status, a.code().as_str()), (404, "ErrorItemNotFound"));

    // A file attached to a draft, and Graph's 3 MB limit for this call.
    let a = h
        .post_json(
            &format!("/users/{mb}/messages"),
            &t,
            json!({"subject": "Draft with a file", "toRecipients": [{"emailAddress": {"address": demo::USER}}]}),
        )
        .await;
    assert_eq!(a.status, 201);
    let draft = a.json()["id"].as_str().unwrap().to_owned();
    let a = h
        .post_json(
            &format!("/users/{mb}/messages/{draft}/attachments"),
            &t,
            json!({"@odata.type": "#microsoft.graph.fileAttachment", "name": "note.txt",
                   "contentType": "text/plain", "contentBytes": STANDARD.encode("hello")}),
        )
        .await;
    assert_eq!(a.status, 201, "{}", String::from_utf8_lossy(&a.bytes));
    assert_eq!(a.json()["name"], "note.txt");
    let a = h
        .get(&format!("/users/{mb}/messages/{draft}/attachments"), &t)
        .await;
    assert_eq!(a.json()["value"][0]["name"], "note.txt");
    let big = STANDARD.encode(vec![0u8; 3 * 1024 * 1024 + 1]);
    let a = h
        .post_json(
            &format!("/users/{mb}/messages/{draft}/attachments"),
            &t,
            json!({"@odata.type": "#microsoft.graph.fileAttachment", "name": "big.bin",
                   "contentType": "application/octet-stream", "contentBytes": big}),
        )
        .await;
    assert_eq!(a.status, 413, "{}", String::from_utf8_lossy(&a.bytes));
    h.emu.shutdown().await;
}

/// Calls that used to answer 200 and do nothing, or 404: PATCH of flag, categories and
/// importance (read back) and of a draft's subject and recipients (its MIME rebuilt; a sent
/// message's content is refused), copy, a draft created in a folder, `$skip`, `$count`,
/// `$search` (and its refusal together with `$filter`), unknown and read-only properties.
#[tokio::test]
async fn patch_copy_folder_drafts_skip_count_and_search_work_like_graph() {
    let h = H::start().await;
    let t = h.app_token().await;
    let mb = demo::USER2;
    let base = datetime!(2024-05-01 08:00 UTC);
    let ids: Vec<String> = ["Invoice 7", "Order 1", "Order 2"]
        .iter()
        .enumerate()
        .map(|(i, subject)| {
            h.emu
                .put_mail_at(
                    mb,
                    Some("inbox"),
                    eml(subject, mb),
                    base + time::Duration::minutes(i as i64),
                )
                .unwrap()
        })
        .collect();
    let patch = |id: &str| format!("/users/{mb}/messages/{id}");
    let a = h.patch_json(
        &patch(&ids[0]),
        &t,
        json!({"flag": {"flagStatus": "flagged"}, "categories": ["Röd kategori"], "importance": "high"}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.bytes));
    let got = h
        .get(
            &format!(
                "/users/{mb}/messages/{}?$select=flag,categories,importance",
                ids[0]
            ),
            &t,
        )
        .await
        .json();
    assert_eq!(got["flag"]["flagStatus"], "flagged");
    assert_eq!(got["categories"], json!(["Röd kategori"]));
    assert_eq!(got["importance"], "high");
    let a = h
        .patch_json(&patch(&ids[0]), &t, json!({"nosuch": 1}))
        .await;
    assert_eq!(a.status, 400);
    let a = h
        .patch_json(&patch(&ids[0]), &t, json!({"subject": "changed"}))
        .await;
    assert_eq!(
        (a.status, a.code().as_str()),
        (400, "ErrorInvalidPropertyUpdateSentMessage"),
        "a received message's content cannot change"
    );

    // copy: a new message in the destination, the original stays.
    let a = h
        .post_json(
            &format!("/users/{mb}/messages/{}/copy", ids[0]),
            &t,
            json!({"destinationId": "archive"}),
        )
        .await;
    assert_eq!(a.status, 201, "{}", String::from_utf8_lossy(&a.bytes));
    assert_ne!(a.json()["id"], ids[0].as_str());
    assert_eq!(a.json()["categories"], json!(["Röd kategori"]));
    assert_eq!(h.folder_ids(&t, mb, "archive").await.len(), 1);
    assert_eq!(h.folder_ids(&t, mb, "inbox").await.len(), 3);

    // A draft created in a folder, then its subject and recipients changed.
    let a = h
        .post_json(
            &format!("/users/{mb}/mailFolders/archive/messages"),
            &t,
            json!({"subject": "Draft in Archive"}),
        )
        .await;
    assert_eq!(a.status, 201, "{}", String::from_utf8_lossy(&a.bytes));
    let draft = a.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(a.json()["isDraft"], true);
    let a = h.patch_json(
        &patch(&draft),
        &t,
        json!({"subject": "Draft, edited", "toRecipients": [{"emailAddress": {"address": demo::USER}}]}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.bytes));
    let mime = h
        .get(&format!("/users/{mb}/messages/{draft}/$value"), &t)
        .await;
    let text = String::from_utf8_lossy(&mime.bytes);
    assert!(text.contains("Subject: Draft, edited"), "{text}");
    assert!(text.contains(demo::USER), "{text}");

    // $skip and $count; $search, and its refusal with $filter.
    let list = |q: &str| format!("/users/{mb}/mailFolders/inbox/messages?$select=subject&{q}");
    let a = h
        .get(&list("$orderby=receivedDateTime&$skip=1&$count=true"), &t)
        .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.bytes));
    assert_eq!(a.json()["@odata.count"], 3);
    let subjects: Vec<&str> = a.json()["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["subject"].as_str().unwrap())
        .map(|s| {
            if s == "Order 1" {
                "Order 1"
            } else if s == "Order 2" {
                "Order 2"
            } else {
                "?"
            }
        })
        .collect();
    assert_eq!(subjects, ["Order 1", "Order 2"]);
    // Subject, body and sender are searched: every message is from orders@example.com.
    let a = h.get(&list("$search=\"invoice\""), &t).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.bytes));
    assert_eq!(a.json()["value"][0]["subject"], "Invoice 7");
    assert_eq!(a.json()["value"].as_array().unwrap().len(), 1);
    let a = h.get(&list("$search=\"orders@example.com\""), &t).await;
    assert_eq!(a.json()["value"].as_array().unwrap().len(), 3);
    let a = h
        .get(&list("$search=\"order\"&$filter=isRead eq false"), &t)
        .await;
    assert_eq!(a.status, 400);
    h.emu.shutdown().await;
}

/// reply, forward and createReply (404s before): the answer threads on the original's
/// Message-ID, goes to the sender (reply) or the named recipients (forward), keeps a copy in
/// Sent Items, and createReply leaves an editable draft.
#[tokio::test]
async fn reply_forward_and_create_reply_thread_on_the_original() {
    let h = H::start().await;
    let t = h.app_token().await;
    let mb = demo::USER2;
    let raw = format!(
        "From: Anna <{}>\r\nTo: {mb}\r\nSubject: Offer 12\r\nMessage-ID: <offer-12@kurirdemo>\r\n\r\nPlease confirm.\r\n",
        demo::USER
    );
    let id = h.put(mb, "inbox", raw.into_bytes());
    let a = h
        .post_json(
            &format!("/users/{mb}/messages/{id}/reply"),
            &t,
            json!({"comment": "Confirmed."}),
        )
        .await;
    assert_eq!(a.status, 202, "{}", String::from_utf8_lossy(&a.bytes));
    // The sender (a mailbox here) receives it, threaded.
    let inbox = h.folder_ids(&t, demo::USER, "inbox").await;
    let mut found = None;
    for m in inbox {
        let mime = h
            .get(&format!("/users/{}/messages/{m}/$value", demo::USER), &t)
            .await;
        let text = String::from_utf8_lossy(&mime.bytes).into_owned();
        if text.contains("Subject: RE: Offer 12") {
            found = Some(text);
        }
    }
    let text = found.expect("the reply reached the sender");
    assert!(text.contains("In-Reply-To: <offer-12@kurirdemo>"), "{text}");
    assert!(text.contains("References: <offer-12@kurirdemo>"), "{text}");
    assert_eq!(h.folder_ids(&t, mb, "sentitems").await.len(), 1);

    let a = h
        .post_json(
            &format!("/users/{mb}/messages/{id}/forward"),
            &t,
            json!({"comment": "FYI", "toRecipients": [{"emailAddress": {"address": demo::M2M_MAILBOX}}]}),
        )
        .await;
    assert_eq!(a.status, 202, "{}", String::from_utf8_lossy(&a.bytes));
    let got = h
        .get(
            &format!(
                "/users/{}/mailFolders/inbox/messages?$select=subject",
                demo::M2M_MAILBOX
            ),
            &t,
        )
        .await;
    assert!(
        got.json()["value"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["subject"] == "FW: Offer 12"),
        "{}",
        got.json()
    );
    let a = h
        .post_json(
            &format!("/users/{mb}/messages/{id}/forward"),
            &t,
            json!({"comment": "x"}),
        )
        .await;
    assert_eq!(
        (a.status, a.code().as_str()),
        (400, "ErrorInvalidRecipients")
    );

    let a = h
        .req(
            Method::POST,
            &format!("/users/{mb}/messages/{id}/createReply"),
            Some(&t),
            &[],
            None,
            "",
        )
        .await;
    assert_eq!(a.status, 201, "{}", String::from_utf8_lossy(&a.bytes));
    assert_eq!(a.json()["isDraft"], true);
    assert_eq!(a.json()["subject"], "RE: Offer 12");
    assert_eq!(h.folder_ids(&t, mb, "drafts").await.len(), 1);
    h.emu.shutdown().await;
}

#[tokio::test]
async fn get_value_move_and_delete() {
    let h = H::start().await;
    let t = h.app_token().await;
    let mb = demo::USER;
    let raw = eml("Invoice 4711", mb);
    let id = h.put(mb, "inbox", raw.clone());

    let a = h.get(&format!("/users/{mb}/messages/{id}"), &t).await;
    let m = a.json();
    assert_eq!(m["subject"], "Invoice 4711");
    assert_eq!(m["from"]["emailAddress"]["address"], "orders@example.com");
    assert_eq!(m["toRecipients"][0]["emailAddress"]["address"], mb);
    assert!(m["internetMessageId"].as_str().unwrap().starts_with('<'));
    assert_eq!(m["isRead"], false);
    assert_eq!(m["hasAttachments"], false);
    assert_eq!(m["bodyPreview"], "Body of Invoice 4711");

    let a = h
        .get(&format!("/users/{mb}/messages/{id}/$value"), &t)
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.bytes, raw, "$value is the stored bytes exactly");

    // Move: a new id, the old one is gone.
    let a = h
        .post_json(
            &format!("/users/{mb}/messages/{id}/move"),
            &t,
            json!({"destinationId": "archive"}),
        )
        .await;
    assert_eq!(a.status, 201);
    let moved = a.json();
    let new_id = moved["id"].as_str().unwrap().to_string();
    assert_ne!(new_id, id);
    let archive = h
        .get(&format!("/users/{mb}/mailFolders/archive"), &t)
        .await
        .json();
    assert_eq!(moved["parentFolderId"], archive["id"]);
    assert_eq!(
        h.get(&format!("/users/{mb}/messages/{id}"), &t)
            .await
            .code(),
        "ErrorItemNotFound"
    );

    // With immutable ids the id survives the move.
    let a = h
        .req(
            Method::POST,
            &format!("/users/{mb}/messages/{new_id}/move"),
            Some(&t),
            &[("Prefer", "IdType=\"ImmutableId\"")],
            Some(json!({"destinationId": "inbox"}).to_string().into_bytes()),
            "application/json",
        )
        .await;
    assert_eq!(a.status, 201);
    assert_eq!(a.json()["id"], new_id.as_str());

    let a = h
        .req(
            Method::DELETE,
            &format!("/users/{mb}/messages/{new_id}"),
            Some(&t),
            &[],
            None,
            "",
        )
        .await;
    assert_eq!(a.status, 204);
    assert_eq!(
        h.get(&format!("/users/{mb}/messages/{new_id}"), &t)
            .await
            .status,
        404,
        "a deleted message moves, and a move changes the id"
    );
    // DELETE moves to Deleted Items, as in Exchange; deleting it there removes it.
    let deleted = h.folder_ids(&t, mb, "deleteditems").await;
    assert_eq!(deleted.len(), 1, "the deleted message is in Deleted Items");
    let a = h
        .req(
            Method::DELETE,
            &format!("/users/{mb}/messages/{}", deleted[0]),
            Some(&t),
            &[],
            None,
            "",
        )
        .await;
    assert_eq!(a.status, 204);
    assert!(h.folder_ids(&t, mb, "deleteditems").await.is_empty());
    h.emu.shutdown().await;
}

#[tokio::test]
async fn delta_pages_and_reports_removals() {
    let h = H::start().await;
    let t = h.app_token().await;
    let mb = demo::M2M_MAILBOX;
    let ids: Vec<String> = (0..5)
        .map(|i| h.put(mb, "inbox", eml(&format!("D{i}"), mb)))
        .collect();

    let prefer = [("Prefer", "odata.maxpagesize=2")];
    let mut url = format!("/users/{mb}/mailFolders/inbox/messages/delta?$select=subject");
    let mut seen = Vec::new();
    let mut pages = 0;
    let delta_link = loop {
        let a = h.req(Method::GET, &url, Some(&t), &prefer, None, "").await;
        assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.bytes));
        let v = a.json();
        pages += 1;
        seen.extend(
            v["value"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["id"].as_str().unwrap().to_string()),
        );
        if let Some(n) = v["@odata.nextLink"].as_str() {
            url = n.to_string();
        } else {
            break v["@odata.deltaLink"]
                .as_str()
                .expect("deltaLink on the last page")
                .to_string();
        }
    };
    assert_eq!(pages, 3);
    assert_eq!(seen, ids);
    assert!(delta_link.contains("deltatoken"));

    // Nothing changed: an empty round.
    let v = h.get(&delta_link, &t).await.json();
    assert_eq!(v["value"].as_array().unwrap().len(), 0);

    // Move one out, delete one, mark one read, add one.
    h.post_json(
        &format!("/users/{mb}/messages/{}/move", ids[0]),
        &t,
        json!({"destinationId": "archive"}),
    )
    .await;
    h.req(
        Method::DELETE,
        &format!("/users/{mb}/messages/{}", ids[1]),
        Some(&t),
        &[],
        None,
        "",
    )
    .await;
    h.req(
        Method::PATCH,
        &format!("/users/{mb}/messages/{}", ids[2]),
        Some(&t),
        &[],
        Some(br#"{"isRead":true}"#.to_vec()),
        "application/json",
    )
    .await;
    let new = h.put(mb, "inbox", eml("D5", mb));

    let v = h.get(&delta_link, &t).await.json();
    let value = v["value"].as_array().unwrap();
    let removed: Vec<&str> = value
        .iter()
        .filter(|m| m.get("@removed").is_some())
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    let changed: Vec<&str> = value
        .iter()
        .filter(|m| m.get("@removed").is_none())
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(removed, [ids[0].as_str(), ids[1].as_str()]);
    assert_eq!(changed, [ids[2].as_str(), new.as_str()]);
    assert_eq!(value[0]["@removed"]["reason"], "deleted");
    assert!(
        value.iter().find(|m| m["id"] == new.as_str()).unwrap()["subject"] == "D5",
        "$select from the first round still applies"
    );
    assert!(v["@odata.deltaLink"].is_string());
    h.emu.shutdown().await;
}

#[tokio::test]
async fn send_mail_json_and_mime_deliver_and_file_sent_items() {
    let h = H::start().await;
    let t = h.app_token().await;
    let (from, to) = (demo::USER, demo::USER2);
    let a = h
        .post_json(
            &format!("/users/{from}/sendMail"),
            &t,
            json!({"message": {
                "subject": "Order confirmation",
                "body": {"contentType": "Text", "content": "Thanks for your order."},
                "toRecipients": [{"emailAddress": {"address": to}}],
                "attachments": [{"@odata.type": "#microsoft.graph.fileAttachment", "name": "order.txt", "contentType": "text/plain", "contentBytes": STANDARD.encode("line 1")}]
            }}),
        )
        .await;
    assert_eq!(a.status, 202, "{}", String::from_utf8_lossy(&a.bytes));
    assert!(a.bytes.is_empty());
    let inbox = h
        .get(&format!("/users/{to}/mailFolders/inbox/messages"), &t)
        .await
        .json();
    let got = &inbox["value"][0];
    assert_eq!(got["subject"], "Order confirmation");
    assert_eq!(got["from"]["emailAddress"]["address"], from);
    assert_eq!(got["hasAttachments"], true);
    assert_eq!(got["isRead"], false);
    let sent = h
        .get(&format!("/users/{from}/mailFolders/sentitems/messages"), &t)
        .await
        .json();
    assert_eq!(sent["value"].as_array().unwrap().len(), 1);

    // saveToSentItems as Microsoft's examples write it: the string "false".
    let a = h
        .post_json(
            &format!("/users/{from}/sendMail"),
            &t,
            json!({"message": {"subject": "Quiet", "toRecipients": [{"emailAddress": {"address": to}}]}, "saveToSentItems": "false"}),
        )
        .await;
    assert_eq!(a.status, 202);
    let sent = h
        .get(&format!("/users/{from}/mailFolders/sentitems/messages"), &t)
        .await
        .json();
    assert_eq!(sent["value"].as_array().unwrap().len(), 1);

    // MIME form: Bcc is delivered but not shown to recipients.
    let mime = format!(
        "From: {from}\r\nTo: {to}\r\nBcc: {}\r\nSubject: MIME sent\r\n\r\nhello\r\n",
        demo::M2M_MAILBOX
    );
    let a = h
        .req(
            Method::POST,
            &format!("/users/{from}/sendMail"),
            Some(&t),
            &[],
            Some(STANDARD.encode(&mime).into_bytes()),
            "text/plain",
        )
        .await;
    assert_eq!(a.status, 202);
    let m2m_ids = h.folder_ids(&t, demo::M2M_MAILBOX, "inbox").await;
    assert_eq!(m2m_ids.len(), 1);
    let delivered = h
        .get(
            &format!(
                "/users/{}/messages/{}/$value",
                demo::M2M_MAILBOX,
                m2m_ids[0]
            ),
            &t,
        )
        .await;
    let text = String::from_utf8_lossy(&delivered.bytes);
    assert!(!text.contains("Bcc:"), "{text}");
    assert!(
        text.contains("Message-ID:") && text.contains("Date:"),
        "Exchange completes the header: {text}"
    );

    let a = h
        .req(
            Method::POST,
            &format!("/users/{from}/sendMail"),
            Some(&t),
            &[],
            Some(b"%%% not base64 %%%".to_vec()),
            "text/plain",
        )
        .await;
    assert_eq!(
        (a.status, a.code().as_str()),
        (400, "ErrorMimeContentInvalidBase64String")
    );

    // Over 4 MB in one request.
    let big = STANDARD.encode(vec![b'a'; 4 * 1024 * 1024]).into_bytes();
    let a = h
        .req(
            Method::POST,
            &format!("/users/{from}/sendMail"),
            Some(&t),
            &[],
            Some(big),
            "text/plain",
        )
        .await;
    assert_eq!(a.status, 413);
    assert_eq!(a.message(), "The maximum request length supported is 4MB.");

    // A token without Mail.Send cannot send.
    let unconsented = h
        .app_token_for(
            demo::UNCONSENTED_CLIENT_ID,
            demo::UNCONSENTED_CLIENT_SECRET,
            GRAPH_SCOPE,
        )
        .await;
    let a = h
        .post_json(
            &format!("/users/{from}/sendMail"),
            &unconsented,
            json!({"message": {}}),
        )
        .await;
    assert_eq!(a.status, 403);
    h.emu.shutdown().await;
}

#[tokio::test]
async fn upload_session_attaches_a_large_file_to_a_draft() {
    let h = H::start().await;
    let t = h.app_token().await;
    let (from, to) = (demo::USER, demo::M2M_MAILBOX);
    let mime = format!(
        "From: {from}\r\nTo: {to}\r\nSubject: Big drawing\r\nContent-Type: text/plain\r\n\r\nSee attachment.\r\n"
    );
    let a = h
        .req(
            Method::POST,
            &format!("/users/{from}/messages"),
            Some(&t),
            &[],
            Some(STANDARD.encode(&mime).into_bytes()),
            "text/plain",
        )
        .await;
    assert_eq!(a.status, 201, "{}", String::from_utf8_lossy(&a.bytes));
    let draft = a.json();
    assert_eq!(draft["isDraft"], true);
    let id = draft["id"].as_str().unwrap();

    let size = 3_500_000usize;
    let data: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
    let a = h
        .post_json(
            &format!("/users/{from}/messages/{id}/attachments/createUploadSession"),
            &t,
            json!({"AttachmentItem": {"attachmentType": "file", "name": "drawing.bin", "size": size}}),
        )
        .await;
    assert_eq!(a.status, 201);
    let s = a.json();
    assert_eq!(s["nextExpectedRanges"], json!(["0-"]));
    assert!(s["expirationDateTime"].is_string());
    let upload = s["uploadUrl"].as_str().unwrap().to_string();
    // Like Microsoft's (outlook.office.com), the upload URL is on another host than Graph, so
    // an SDK that attaches tokens only to Graph's host sends none there.
    let graph_host = url::Url::parse(&h.emu.base_url())
        .unwrap()
        .host_str()
        .unwrap()
        .to_owned();
    let upload_host = url::Url::parse(&upload)
        .unwrap()
        .host_str()
        .unwrap()
        .to_owned();
    assert_ne!(upload_host, graph_host, "{upload}");

    let chunk = 10 * 320 * 1024;
    let put = |range: String, body: Vec<u8>, auth: bool| {
        let mut b = h
            .http
            .put(&upload)
            .header("Content-Range", range)
            .body(body);
        if auth {
            b = b.bearer_auth(&t);
        }
        b.send()
    };
    // The Graph token must not go to the upload URL.
    let r = put(
        format!("bytes 0-{}/{size}", chunk - 1),
        data[..chunk].to_vec(),
        true,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 401);
    // A range that does not start where the upload stands.
    let r = put(
        format!("bytes 5-{}/{size}", chunk + 4),
        data[5..chunk + 5].to_vec(),
        false,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 416);
    // A chunk over Graph's 4 MB request limit is answered with 413, not a dropped connection.
    let r = put(
        format!("bytes 0-{}/{size}", 5 * 1024 * 1024 - 1),
        vec![0u8; 5 * 1024 * 1024],
        false,
    )
    .await
    .expect("an answer, not a reset connection");
    assert_eq!(r.status(), 413);

    let r = put(
        format!("bytes 0-{}/{size}", chunk - 1),
        data[..chunk].to_vec(),
        false,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["nextExpectedRanges"], json!([chunk.to_string()]));
    let r = put(
        format!("bytes {chunk}-{}/{size}", size - 1),
        data[chunk..].to_vec(),
        false,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 201);
    // The documented Location header names the new attachment.
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let a = h.get(&location, &t).await;
    assert_eq!(
        a.status,
        200,
        "{location}: {}",
        String::from_utf8_lossy(&a.bytes)
    );
    assert_eq!(a.json()["name"], "drawing.bin");
    assert_eq!(a.json()["size"], size);

    let m = h
        .get(&format!("/users/{from}/messages/{id}"), &t)
        .await
        .json();
    assert_eq!(m["hasAttachments"], true);
    let a = h
        .req(
            Method::POST,
            &format!("/users/{from}/messages/{id}/send"),
            Some(&t),
            &[],
            None,
            "",
        )
        .await;
    assert_eq!(a.status, 202);
    assert_eq!(
        h.get(&format!("/users/{from}/messages/{id}"), &t)
            .await
            .status,
        404,
        "the draft left Drafts"
    );

    let ids = h.folder_ids(&t, to, "inbox").await;
    assert_eq!(ids.len(), 1);
    let raw = h
        .get(&format!("/users/{to}/messages/{}/$value", ids[0]), &t)
        .await
        .bytes;
    let parsed = mail_parser::MessageParser::default().parse(&raw).unwrap();
    assert_eq!(parsed.subject(), Some("Big drawing"));
    assert_eq!(parsed.attachment_count(), 1);
    assert_eq!(parsed.attachment(0).unwrap().contents(), data.as_slice());
    assert!(parsed.body_text(0).unwrap().contains("See attachment."));

    // Too big for Exchange.
    let d2 = h
        .post_json(
            &format!("/users/{from}/messages"),
            &t,
            json!({"subject": "x"}),
        )
        .await
        .json();
    let a = h
        .post_json(
            &format!("/users/{from}/messages/{}/attachments/createUploadSession", d2["id"].as_str().unwrap()),
            &t,
            json!({"attachmentItem": {"attachmentType": "file", "name": "huge", "size": 151u64 * 1024 * 1024}}),
        )
        .await;
    assert_eq!(a.status, 400);
    h.emu.shutdown().await;
}

#[tokio::test]
async fn fifth_concurrent_request_on_a_mailbox_is_throttled() {
    let h = H::start().await;
    let t = h.app_token().await;
    h.emu.graph_faults().set_latency(Duration::from_millis(600));
    let url = format!("/users/{}/mailFolders", demo::USER);
    let answers = futures_join(&h, &t, &url, 6).await;
    let throttled: Vec<&Answer> = answers.iter().filter(|a| a.status == 429).collect();
    let ok = answers.iter().filter(|a| a.status == 200).count();
    assert_eq!((ok, throttled.len()), (4, 2));
    assert_eq!(throttled[0].code(), "ApplicationThrottled");
    assert_eq!(
        throttled[0].message(),
        "Application is over its MailboxConcurrency limit."
    );
    assert_eq!(throttled[0].headers["retry-after"], "1");
    // Another mailbox has its own budget; and slots are released afterwards.
    let again = h.get(&url, &t).await;
    assert_eq!(again.status, 200);
    h.emu.shutdown().await;
}

/// Sends `n` identical GETs at the same moment.
async fn futures_join(h: &H, t: &str, url: &str, n: usize) -> Vec<Answer> {
    futures_all((0..n).map(|_| h.get(url, t)).collect()).await
}

/// Drives futures concurrently on this task (no `futures` crate in the tree for this).
async fn futures_all<F: std::future::Future<Output = Answer>>(futs: Vec<F>) -> Vec<Answer> {
    let mut pinned: Vec<std::pin::Pin<Box<F>>> = futs.into_iter().map(Box::pin).collect();
    let mut results: Vec<Option<Answer>> = (0..pinned.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in pinned.iter_mut().enumerate() {
            if results[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(a) => results[i] = Some(a),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    results.into_iter().map(|r| r.unwrap()).collect()
}

#[tokio::test]
async fn batch_runs_requests_and_fails_dependents_with_424() {
    let h = H::start().await;
    let t = h.app_token().await;
    let mb = demo::USER;
    let id = h.put(mb, "inbox", eml("Batched", mb));
    let a = h
        .post_json(
            "/$batch",
            &t,
            json!({"requests": [
                {"id": "1", "method": "GET", "url": format!("/users/{mb}/messages/{id}?$select=subject")},
                {"id": "2", "method": "GET", "url": format!("/users/{mb}/messages/AAMkAG{}AAA", "0".repeat(48))},
                {"id": "3", "method": "PATCH", "url": format!("/users/{mb}/messages/{id}"), "dependsOn": ["2"],
                 "headers": {"Content-Type": "application/json"}, "body": {"isRead": true}},
                {"id": "4", "method": "PATCH", "url": format!("/users/{mb}/messages/{id}"), "dependsOn": ["1"],
                 "headers": {"Content-Type": "application/json"}, "body": {"isRead": true}},
                {"id": "5", "method": "GET", "url": format!("/users/{}/mailFolders", demo::RESTRICTED_MAILBOX)},
                {"id": "6", "method": "GET", "url": format!("/users/{mb}/messages/{id}/$value")}
            ]}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.bytes));
    let v = a.json();
    let by_id = |i: &str| {
        v["responses"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == i)
            .unwrap()
            .clone()
    };
    assert_eq!(by_id("1")["status"], 200);
    assert_eq!(by_id("1")["body"]["subject"], "Batched");
    assert_eq!(by_id("2")["status"], 404);
    assert_eq!(by_id("3")["status"], 424);
    assert_eq!(by_id("4")["status"], 200);
    assert_eq!(by_id("4")["body"]["isRead"], true);
    assert_eq!(
        by_id("5")["status"],
        403,
        "each inner request is authorised on its own"
    );
    let raw = STANDARD
        .decode(by_id("6")["body"].as_str().unwrap())
        .unwrap();
    assert!(String::from_utf8_lossy(&raw).contains("Subject: Batched"));

    let too_many: Vec<Value> = (0..21)
        .map(|i| json!({"id": i.to_string(), "method": "GET", "url": "/users/x/messages"}))
        .collect();
    assert_eq!(
        h.post_json("/$batch", &t, json!({"requests": too_many}))
            .await
            .status,
        400
    );

    // Inner requests count against the mailbox's concurrency on their own.
    h.emu.graph_faults().set_latency(Duration::from_millis(400));
    let six: Vec<Value> = (0..6).map(|i| json!({"id": i.to_string(), "method": "GET", "url": format!("/users/{mb}/mailFolders")})).collect();
    let v = h
        .post_json("/$batch", &t, json!({"requests": six}))
        .await
        .json();
    let statuses: Vec<u64> = v["responses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_u64().unwrap())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        2,
        "{statuses:?}"
    );
    h.emu.shutdown().await;
}

#[tokio::test]
async fn injected_faults_throttle_fail_and_drop() {
    let h = H::start().await;
    let t = h.app_token().await;
    let url = format!("/users/{}/mailFolders", demo::USER);
    let ops = |body: Value| {
        h.http
            .post(format!("{}/_emulator/graph/faults", h.emu.base_url()))
            .json(&body)
            .send()
    };
    ops(json!({"throttle_next": 1, "retry_after_secs": 7}))
        .await
        .unwrap();
    let a = h.get(&url, &t).await;
    assert_eq!((a.status, a.code().as_str()), (429, "ApplicationThrottled"));
    assert_eq!(a.headers["retry-after"], "7");
    h.emu.graph_faults().unavailable_next(1);
    let a = h.get(&url, &t).await;
    assert_eq!(a.status, 503);
    assert_eq!(a.headers["retry-after"], "7");
    h.emu.graph_faults().drop_next(1);
    let err = h
        .http
        .get(format!("{}/v1.0{url}", h.emu.base_url()))
        .bearer_auth(&t)
        .send()
        .await
        .expect_err("the connection is closed without an answer");
    assert!(!err.is_status());
    assert_eq!(h.get(&url, &t).await.status, 200, "back to normal");
    h.emu.shutdown().await;
}

#[tokio::test]
async fn test_api_puts_mail_and_mailboxes_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = EmulatorConfig {
        state_dir: Some(dir.path().to_path_buf()),
        ..EmulatorConfig::demo()
    };
    let h = H::start_with(cfg.clone()).await;
    let raw = eml("Persisted", demo::M2M_MAILBOX);
    let r = h
        .http
        .post(format!(
            "{}/_emulator/mailboxes/{}/messages?folder=archive",
            h.emu.base_url(),
            demo::M2M_MAILBOX
        ))
        .body(raw.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = h
        .http
        .post(format!(
            "{}/_emulator/mailboxes/nobody@x/messages",
            h.emu.base_url()
        ))
        .body(raw.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let discovery: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("emulator.json")).unwrap())
            .unwrap();
    assert_eq!(discovery["base_url"], h.emu.base_url().as_str());
    h.emu.shutdown().await;

    let h = H::start_with(cfg).await;
    let t = h.app_token().await;
    let a = h
        .get(
            &format!("/users/{}/messages/{id}/$value", demo::M2M_MAILBOX),
            &t,
        )
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.bytes, raw);
    let m = h
        .get(&format!("/users/{}/messages/{id}", demo::M2M_MAILBOX), &t)
        .await
        .json();
    let archive = h
        .get(
            &format!("/users/{}/mailFolders/archive", demo::M2M_MAILBOX),
            &t,
        )
        .await
        .json();
    assert_eq!(m["parentFolderId"], archive["id"]);
    assert!(OffsetDateTime::now_utc().year() >= 2024);
    h.emu.shutdown().await;
}
