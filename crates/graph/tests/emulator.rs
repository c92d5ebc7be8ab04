//! Kurir's Graph client against the emulator over HTTPS: every operation the intake and
//! outbox use, retries on injected 429/503/dropped connections, and the plain-words errors.

use std::time::{Duration, Instant};

use kurir_emulator::{Emulator, EmulatorConfig, RunningEmulator, demo};
use kurir_graph::{
    AttachmentItem, BatchRequest, BatchRequestItem, BodyType, DeltaStart, GraphClient, ItemBody,
    Message, MessageQuery, Recipient, RetryPolicy, SendMailRequest, codes,
};

async fn token(emu: &RunningEmulator, client: &str, secret: &str, scope: &str) -> String {
    let http = reqwest::Client::builder()
        .tls_certs_merge(reqwest::Certificate::from_pem_bundle(emu.ca_pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    let v: serde_json::Value = http
        .post(format!(
            "{}/{}/oauth2/v2.0/token",
            emu.base_url(),
            demo::TENANT_ID
        ))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", client),
            ("client_secret", secret),
            ("scope", scope),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["access_token"].as_str().unwrap().to_string()
}

async fn setup() -> (RunningEmulator, GraphClient, String) {
    let emu = Emulator::start(EmulatorConfig::demo()).await.unwrap();
    let client = GraphClient::new(
        &emu.graph_url(),
        Some(&emu.ca_pem()),
        Duration::from_secs(30),
    )
    .unwrap()
    .with_retry(RetryPolicy {
        max_retries: 3,
        max_wait: Duration::from_secs(5),
        base_wait: Duration::from_millis(50),
    });
    let t = token(
        &emu,
        demo::CLIENT_ID,
        demo::CLIENT_SECRET,
        kurir_graph::GRAPH_DEFAULT_SCOPE,
    )
    .await;
    (emu, client, t)
}

fn eml(subject: &str, to: &str) -> Vec<u8> {
    format!("From: erp@example.com\r\nTo: {to}\r\nSubject: {subject}\r\n\r\nbody {subject}\r\n")
        .into_bytes()
}

#[tokio::test]
async fn folders_listing_mime_read_move_delete() {
    let (emu, g, t) = setup().await;
    let mb = demo::M2M_MAILBOX;
    let top = g.list_folders(&t, mb).await.unwrap();
    assert!(top.iter().any(|f| f.display_name == "Inbox"));
    let a = g
        .find_or_create_child_folder(&t, mb, "inbox", "Kurir")
        .await
        .unwrap();
    let b = g
        .find_or_create_child_folder(&t, mb, "inbox", "kurir")
        .await
        .unwrap();
    assert_eq!(a.id, b.id, "found, not created twice");
    let e = g
        .create_child_folder(&t, mb, "inbox", "Kurir")
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(codes::FOLDER_EXISTS));

    let raws: Vec<Vec<u8>> = (0..12).map(|i| eml(&format!("M{i}"), mb)).collect();
    for r in &raws {
        emu.put_mail(mb, None, r.clone()).unwrap();
    }
    let q = MessageQuery {
        select: vec!["subject".into(), "isRead".into()],
        top: Some(5),
        order_by: Some("receivedDateTime asc".into()),
        ..Default::default()
    };
    let all = g.list_messages(&t, mb, "inbox", &q).await.unwrap();
    assert_eq!(all.len(), 12, "followed the next links");
    assert!(all[0].body.is_none());
    let first = all[0].id().to_string();

    let mut out = Vec::new();
    let n = g.get_mime(&t, mb, &first, &mut out).await.unwrap();
    assert_eq!(n as usize, out.len());
    assert!(
        raws.contains(&out),
        "$value is one of the stored messages byte for byte"
    );

    g.set_read(&t, mb, &first, true).await.unwrap();
    let unread = g
        .list_messages(
            &t,
            mb,
            "inbox",
            &MessageQuery {
                filter: Some("isRead eq false".into()),
                top: Some(100),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(unread.len(), 11);

    let moved = g.move_message(&t, mb, &first, &a.id, false).await.unwrap();
    assert_ne!(moved.id(), first);
    assert_eq!(moved.parent_folder_id.as_deref(), Some(a.id.as_str()));
    assert!(
        g.get_message(&t, mb, &first, &[])
            .await
            .unwrap_err()
            .is_not_found()
    );
    let kept = g
        .move_message(&t, mb, moved.id(), "archive", true)
        .await
        .unwrap();
    assert_eq!(kept.id(), moved.id());
    g.delete_message(&t, mb, kept.id()).await.unwrap();
    let e = g
        .get_message(&t, mb, kept.id(), &["subject"])
        .await
        .unwrap_err();
    assert!(e.is_not_found() && !e.is_transient(), "{e}");
    emu.shutdown().await;
}

#[tokio::test]
async fn delta_rounds_report_new_and_removed() {
    let (emu, g, t) = setup().await;
    let mb = demo::USER;
    let ids: Vec<String> = (0..5)
        .map(|i| emu.put_mail(mb, None, eml(&format!("D{i}"), mb)).unwrap())
        .collect();
    let first = g
        .delta(
            &t,
            mb,
            &DeltaStart::Initial {
                folder: "inbox".into(),
                select: vec!["subject".into()],
                max_page_size: Some(2),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        first
            .messages
            .iter()
            .map(|m| m.id().to_string())
            .collect::<Vec<_>>(),
        ids
    );
    assert!(first.removed.is_empty());
    g.move_message(&t, mb, &ids[3], "archive", false)
        .await
        .unwrap();
    let new = emu.put_mail(mb, None, eml("D5", mb)).unwrap();
    let second = g
        .delta(&t, mb, &DeltaStart::Link(first.delta_link.clone()))
        .await
        .unwrap();
    assert_eq!(second.removed, vec![ids[3].clone()]);
    assert_eq!(second.messages.len(), 1);
    assert_eq!(second.messages[0].id(), new);
    assert_eq!(second.messages[0].subject.as_deref(), Some("D5"));
    emu.shutdown().await;
}

#[tokio::test]
async fn sending_mime_json_and_large_attachments() {
    let (emu, g, t) = setup().await;
    let (from, to) = (demo::USER, demo::USER2);
    // A From the mailbox may not send as is refused, as Exchange refuses it.
    let denied = g
        .send_mime(&t, from, &eml("Not as erp@example.com", to))
        .await
        .expect_err("Send As denied");
    assert!(denied.to_string().contains("ErrorSendAsDenied"), "{denied}");
    let own = format!("From: {from}\r\nTo: {to}\r\nSubject: MIME form\r\n\r\nbody\r\n");
    g.send_mime(&t, from, own.as_bytes()).await.unwrap();
    g.send_json(
        &t,
        from,
        &SendMailRequest {
            message: Message {
                subject: Some("JSON form".into()),
                body: Some(ItemBody {
                    content_type: BodyType::Text,
                    content: "hej".into(),
                }),
                to_recipients: Some(vec![Recipient::address(to)]),
                ..Default::default()
            },
            save_to_sent_items: Some(false),
        },
    )
    .await
    .unwrap();
    let data: Vec<u8> = (0..3_600_000u32).map(|i| (i % 253) as u8).collect();
    let mime = format!(
        "From: {from}\r\nTo: {to}\r\nSubject: Large\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
    );
    g.send_with_large_attachments(
        &t,
        from,
        mime.as_bytes(),
        &[
            (
                AttachmentItem::file("drawing.bin", data.len() as u64, None),
                &data,
            ),
            // Under 3 MB: one POST …/attachments (Graph refuses an upload session for it).
            (AttachmentItem::file("small.bin", 1000, None), &data[..1000]),
        ],
    )
    .await
    .unwrap();
    let inbox = g
        .list_messages(
            &t,
            to,
            "inbox",
            &MessageQuery {
                order_by: Some("receivedDateTime asc".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let subjects: Vec<&str> = inbox.iter().filter_map(|m| m.subject.as_deref()).collect();
    assert_eq!(subjects, ["MIME form", "JSON form", "Large"]);
    let large = &inbox[2];
    assert_eq!(large.has_attachments, Some(true));
    let mut raw = Vec::new();
    g.get_mime(&t, to, large.id(), &mut raw).await.unwrap();
    assert!(
        raw.len() > data.len() * 4 / 3,
        "the attachment is in the delivered MIME"
    );
    assert!(String::from_utf8_lossy(&raw).contains("drawing.bin"));
    let sent = g
        .list_messages(&t, from, "sentitems", &MessageQuery::default())
        .await
        .unwrap();
    assert_eq!(sent.len(), 2, "saveToSentItems=false kept the JSON one out");
    emu.shutdown().await;
}

#[tokio::test]
async fn retries_honour_retry_after_and_give_up_when_told() {
    let (emu, g, t) = setup().await;
    let mb = demo::USER;
    emu.graph_faults().set_retry_after(1);
    emu.graph_faults().throttle_next(2);
    let start = Instant::now();
    g.list_folders(&t, mb)
        .await
        .expect("succeeds after two 429s");
    assert!(
        start.elapsed() >= Duration::from_secs(2),
        "waited Retry-After twice: {:?}",
        start.elapsed()
    );

    emu.graph_faults().unavailable_next(1);
    emu.graph_faults().drop_next(1);
    g.list_folders(&t, mb)
        .await
        .expect("a dropped connection and a 503 are retried");

    let impatient = g.clone().with_retry(RetryPolicy {
        max_retries: 0,
        ..RetryPolicy::default()
    });
    emu.graph_faults().throttle_next(1);
    let e = impatient.list_folders(&t, mb).await.unwrap_err();
    assert!(e.is_transient());
    assert_eq!(e.status(), Some(429));
    assert_eq!(e.code(), Some(codes::APPLICATION_THROTTLED));
    assert_eq!(e.retry_after(), Some(Duration::from_secs(1)));
    assert!(e.to_string().contains("Retry-After"), "{e}");
    emu.shutdown().await;
}

#[tokio::test]
async fn errors_explain_what_to_fix() {
    let (emu, g, t) = setup().await;
    let e = g
        .list_folders(&t, demo::RESTRICTED_MAILBOX)
        .await
        .unwrap_err();
    assert_eq!(
        (e.status(), e.code()),
        (Some(403), Some(codes::ACCESS_DENIED))
    );
    assert!(e.to_string().contains("application access policy"), "{e}");
    assert!(e.request_id().is_some());
    let e = g
        .list_folders(&t, "nobody@kurirdemo.onmicrosoft.com")
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(codes::INVALID_USER));
    assert!(e.to_string().contains("typos"), "{e}");
    let e = g.list_folders(&t, demo::NO_MAILBOX_USER).await.unwrap_err();
    assert_eq!(e.code(), Some(codes::MAILBOX_NOT_ENABLED));
    let imap = token(
        &emu,
        demo::CLIENT_ID,
        demo::CLIENT_SECRET,
        "https://outlook.office365.com/.default",
    )
    .await;
    let e = g.list_folders(&imap, demo::USER).await.unwrap_err();
    assert_eq!(e.status(), Some(401));
    assert!(
        e.to_string()
            .contains("https://graph.microsoft.com/.default"),
        "{e}"
    );
    assert!(
        !e.to_string().contains(&imap),
        "the token is never in the error"
    );
    let unconsented = token(
        &emu,
        demo::UNCONSENTED_CLIENT_ID,
        demo::UNCONSENTED_CLIENT_SECRET,
        kurir_graph::GRAPH_DEFAULT_SCOPE,
    )
    .await;
    let e = g.list_folders(&unconsented, demo::USER).await.unwrap_err();
    assert!(e.to_string().contains("Grant admin consent"), "{e}");
    assert!(!e.is_transient());
    emu.shutdown().await;
}

#[tokio::test]
async fn batch_through_the_client() {
    let (emu, g, t) = setup().await;
    let mb = demo::USER;
    let id = emu.put_mail(mb, None, eml("B", mb)).unwrap();
    let item = |id: &str, url: String, deps: Option<Vec<String>>| BatchRequestItem {
        id: id.into(),
        method: "GET".into(),
        url,
        headers: None,
        body: None,
        depends_on: deps,
    };
    let r = g
        .batch(
            &t,
            &BatchRequest {
                requests: vec![
                    item(
                        "a",
                        format!("/users/{mb}/messages/AAMkAG{}AAA", "0".repeat(48)),
                        None,
                    ),
                    item(
                        "b",
                        format!("/users/{mb}/messages/{id}"),
                        Some(vec!["a".into()]),
                    ),
                    item("c", format!("/users/{mb}/messages/{id}"), None),
                ],
            },
        )
        .await
        .unwrap();
    let status: Vec<(String, u16)> = r
        .responses
        .iter()
        .map(|x| (x.id.clone(), x.status))
        .collect();
    assert_eq!(
        status,
        [("a".into(), 404), ("b".into(), 424), ("c".into(), 200)]
    );
    emu.shutdown().await;
}
