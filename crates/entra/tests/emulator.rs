//! The token client against the real offline Entra ID emulator, over HTTPS with the emulator's
//! own CA: every flow, the single-flight cache, retries, refresh-token rotation and each AADSTS
//! error the emulator can produce, checked against Kurir's explanation of it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use kurir_emulator::{Emulator, EmulatorConfig, RunningEmulator, demo};
use kurir_entra::*;

async fn start() -> Arc<RunningEmulator> {
    Arc::new(
        Emulator::start(EmulatorConfig::demo())
            .await
            .expect("the emulator starts"),
    )
}

fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(100),
        max_total: Duration::from_secs(10),
    }
}

fn client(emu: &RunningEmulator) -> TokenClient {
    TokenClient::new(ClientConfig {
        extra_ca_pem: Some(emu.ca_pem()),
        timeout: Duration::from_secs(10),
        retry: fast_retry(),
        ..ClientConfig::default()
    })
    .expect("client builds with the emulator CA")
}

fn request(emu: &RunningEmulator, credential: Credential, scope: Scope) -> TokenRequest {
    TokenRequest {
        authority: Authority::url(&emu.base_url()).expect("emulator URL is a valid authority"),
        tenant: demo::TENANT_ID.into(),
        client_id: demo::CLIENT_ID.into(),
        credential,
        scope,
        user: None,
    }
}

fn secret(s: &str) -> Credential {
    Credential::ClientSecret {
        secret: SecretString::from(s),
        basic_auth: false,
    }
}

fn password(user: &str) -> Credential {
    Credential::UsernamePassword {
        username: user.into(),
        password: SecretString::from(demo::PASSWORD),
        client_secret: None,
    }
}

fn imap() -> Scope {
    Scope::imap_delegated(Cloud::Global)
}

/// A device-code credential whose prompt hands the user code to the test, which then plays the
/// user at the browser.
fn device_code() -> (
    Credential,
    tokio::sync::mpsc::UnboundedReceiver<DeviceCodePrompt>,
) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let cred = Credential::DeviceCode {
        prompt: Arc::new(move |p: &DeviceCodePrompt| {
            let _ = tx.send(p.clone());
        }),
    };
    (cred, rx)
}

// ---------------------------------------------------------------------------------------------
// Every flow yields a token.

#[tokio::test]
async fn client_secret_in_body_gives_an_app_token_and_caches_it() {
    let emu = start().await;
    let c = client(&emu);
    let req = request(
        &emu,
        secret(demo::CLIENT_SECRET),
        Scope::exchange_app(Cloud::Global),
    );
    let t = c.token(&req).await.unwrap();
    assert!(!t.from_cache);
    assert_eq!(t.flow, Flow::ClientSecret);
    assert_eq!(t.grant, Grant::ClientCredentials);
    assert!(
        t.claims.roles.iter().any(|r| r == "IMAP.AccessAsApp"),
        "{:?}",
        t.claims
    );
    assert_eq!(t.claims.idtyp.as_deref(), Some("app"));
    assert_eq!(t.claims.client_id(), Some(demo::CLIENT_ID));
    assert_eq!(t.claims.tid.as_deref(), Some(demo::TENANT_ID));
    assert!(t.expires_at > time::OffsetDateTime::now_utc() + time::Duration::minutes(50));

    let again = c.token(&req).await.unwrap();
    assert!(again.from_cache);
    assert_eq!(again.secret.expose_secret(), t.secret.expose_secret());
    assert_eq!(emu.token_requests(), 1);
}

#[tokio::test]
async fn client_secret_as_http_basic() {
    let emu = start().await;
    let req = request(
        &emu,
        Credential::ClientSecret {
            secret: SecretString::from(demo::CLIENT_SECRET),
            basic_auth: true,
        },
        Scope::graph_app(Cloud::Global),
    );
    let t = client(&emu).token(&req).await.unwrap();
    assert!(
        t.claims.roles.iter().any(|r| r == "Mail.Send"),
        "{:?}",
        t.claims
    );
    assert!(t.claims.aud.unwrap().contains("graph.microsoft.com"));
}

#[tokio::test]
async fn certificate_rs256_and_ps256() {
    let emu = start().await;
    let cert = emu
        .demo_certificate()
        .expect("the demo app has a generated certificate");
    for alg in [AssertionAlg::Rs256, AssertionAlg::Ps256] {
        let req = request(
            &emu,
            Credential::Certificate {
                cert_pem: cert.certificate_pem.clone(),
                key_pem: SecretString::from(cert.private_key_pem.clone()),
                alg,
            },
            Scope::exchange_app(Cloud::Global),
        );
        let t = client(&emu)
            .token(&req)
            .await
            .unwrap_or_else(|e| panic!("{alg:?}: {e}"));
        assert_eq!(t.flow, Flow::Certificate);
        assert!(t.claims.roles.iter().any(|r| r == "SMTP.SendAsApp"));
    }
    let ours = CertificateCredential::from_pem(
        &cert.certificate_pem,
        &SecretString::from(cert.private_key_pem.clone()),
    )
    .unwrap();
    assert_eq!(ours.thumbprint_hex(), cert.thumbprint.to_uppercase());
}

#[tokio::test]
async fn username_password_gives_a_user_token_and_stores_the_refresh_token() {
    let emu = start().await;
    let store = Arc::new(MemoryRefreshStore::new());
    let c = client(&emu).with_refresh_store(store.clone());
    let t = c
        .token(&request(&emu, password(demo::USER), imap()))
        .await
        .unwrap();
    assert_eq!(t.grant, Grant::Password);
    assert_eq!(t.claims.user_name(), Some(demo::USER));
    assert!(
        t.claims
            .scp
            .as_deref()
            .unwrap_or_default()
            .contains("IMAP.AccessAsUser.All")
    );
    assert_eq!(
        store.len(),
        1,
        "offline_access gives a refresh token, which is stored"
    );
}

#[tokio::test]
async fn device_code_flow_and_refresh_after_restart() {
    let emu = start().await;
    let store = Arc::new(MemoryRefreshStore::new());
    let (cred, mut prompts) = device_code();
    let approver = {
        let emu = emu.clone();
        tokio::spawn(async move {
            let p = prompts.recv().await.expect("a prompt");
            assert!(p.message.contains(&p.user_code));
            assert_eq!(p.verification_uri, "https://microsoft.com/devicelogin");
            emu.approve_device_code(&p.user_code, demo::MFA_USER)
                .unwrap();
        })
    };
    let req = TokenRequest {
        user: Some("ANNA".into()),
        ..request(&emu, cred, Scope::smtp_delegated(Cloud::Global))
    };
    let first = client(&emu)
        .with_refresh_store(store.clone())
        .token(&req)
        .await
        .unwrap();
    approver.await.unwrap();
    assert_eq!(first.grant, Grant::DeviceCode);
    assert_eq!(first.claims.user_name(), Some(demo::MFA_USER));
    let key = store.keys().pop().expect("refresh token stored");
    let rt1 = store.load(&key).await.unwrap().unwrap();

    // A new process (new client, empty cache) with the same store: no prompt, refresh grant.
    let prompted = Arc::new(AtomicUsize::new(0));
    let counter = prompted.clone();
    let req2 = TokenRequest {
        credential: Credential::DeviceCode {
            prompt: Arc::new(move |_| {
                counter.fetch_add(1, Ordering::SeqCst);
            }),
        },
        ..req.clone()
    };
    let second = client(&emu)
        .with_refresh_store(store.clone())
        .token(&req2)
        .await
        .unwrap();
    assert_eq!(second.grant, Grant::RefreshToken);
    assert!(!second.from_cache);
    assert_eq!(second.claims.user_name(), Some(demo::MFA_USER));
    assert_eq!(prompted.load(Ordering::SeqCst), 0);
    let rt2 = store.load(&key).await.unwrap().unwrap();
    assert_ne!(
        rt1.expose_secret(),
        rt2.expose_secret(),
        "the refresh token was rotated"
    );
}

// ---------------------------------------------------------------------------------------------
// Cache: single flight and renewal.

#[tokio::test]
async fn fifty_concurrent_callers_cause_one_token_request() {
    let emu = start().await;
    // Latency keeps the first request in flight while the others arrive.
    emu.faults().set_latency(Duration::from_millis(300));
    let c = Arc::new(client(&emu));
    let req = request(
        &emu,
        secret(demo::CLIENT_SECRET),
        Scope::exchange_app(Cloud::Global),
    );
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let c = c.clone();
        let req = req.clone();
        tasks.push(tokio::spawn(async move { c.token(&req).await }));
    }
    let mut tokens = Vec::new();
    for t in tasks {
        tokens.push(t.await.unwrap().unwrap());
    }
    assert_eq!(emu.token_requests(), 1);
    assert_eq!(tokens.iter().filter(|t| !t.from_cache).count(), 1);
    assert!(
        tokens
            .iter()
            .all(|t| t.secret.expose_secret() == tokens[0].secret.expose_secret())
    );
}

#[tokio::test]
async fn expiring_delegated_token_is_renewed_with_the_rotated_refresh_token() {
    let emu = start().await;
    emu.faults().set_token_lifetime(Duration::from_secs(2));
    let store = Arc::new(MemoryRefreshStore::new());
    let c = client(&emu).with_refresh_store(store.clone());
    let req = request(&emu, password(demo::USER), imap());
    let first = c.token(&req).await.unwrap();
    assert_eq!(first.grant, Grant::Password);
    let key = store.keys().pop().unwrap();
    let rt1 = store.load(&key).await.unwrap().unwrap();
    assert!(c.token(&req).await.unwrap().from_cache);

    tokio::time::sleep(Duration::from_millis(2100)).await;
    let second = c.token(&req).await.unwrap();
    assert!(!second.from_cache);
    assert_eq!(second.grant, Grant::RefreshToken);
    let rt2 = store.load(&key).await.unwrap().unwrap();
    assert_ne!(rt1.expose_secret(), rt2.expose_secret());
    assert_eq!(emu.token_requests(), 2);
}

#[tokio::test]
async fn revoked_refresh_token_falls_back_to_the_password_and_is_replaced() {
    let emu = start().await;
    let store = Arc::new(MemoryRefreshStore::new());
    let req = request(&emu, password(demo::USER), imap());
    client(&emu)
        .with_refresh_store(store.clone())
        .token(&req)
        .await
        .unwrap();
    let key = store.keys().pop().unwrap();
    let rt1 = store.load(&key).await.unwrap().unwrap();
    assert!(emu.revoke_refresh_tokens(Some(demo::USER)) >= 1);

    let t = client(&emu)
        .with_refresh_store(store.clone())
        .token(&req)
        .await
        .unwrap();
    assert_eq!(
        t.grant,
        Grant::Password,
        "refresh refused (70008), password used"
    );
    let rt2 = store.load(&key).await.unwrap().unwrap();
    assert_ne!(rt1.expose_secret(), rt2.expose_secret());
    // password, refresh (refused), password
    assert_eq!(emu.token_requests(), 3);
}

// ---------------------------------------------------------------------------------------------
// Retries.

#[tokio::test]
async fn retries_on_503_then_succeeds() {
    let emu = start().await;
    emu.faults().fail_next(2);
    let t = client(&emu)
        .token(&request(
            &emu,
            secret(demo::CLIENT_SECRET),
            Scope::exchange_app(Cloud::Global),
        ))
        .await
        .unwrap();
    assert!(!t.secret.expose_secret().is_empty());
    assert_eq!(emu.token_requests(), 3);
}

#[tokio::test]
async fn gives_up_after_the_configured_attempts_with_a_transient_error() {
    let emu = start().await;
    emu.faults().fail_next(100);
    let c = TokenClient::new(ClientConfig {
        extra_ca_pem: Some(emu.ca_pem()),
        retry: RetryPolicy {
            max_attempts: 3,
            ..fast_retry()
        },
        ..ClientConfig::default()
    })
    .unwrap();
    let err = c
        .token(&request(
            &emu,
            secret(demo::CLIENT_SECRET),
            Scope::exchange_app(Cloud::Global),
        ))
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert_eq!(err.oauth_error(), Some("temporarily_unavailable"));
    assert_eq!(emu.token_requests(), 3);
}

#[tokio::test]
async fn never_retries_invalid_client() {
    let emu = start().await;
    let err = client(&emu)
        .token(&request(
            &emu,
            secret("wrong"),
            Scope::exchange_app(Cloud::Global),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.oauth_error(), Some("invalid_client"));
    assert!(err.is_permanent());
    assert_eq!(emu.token_requests(), 1);
}

// ---------------------------------------------------------------------------------------------
// Transport problems.

#[tokio::test]
async fn untrusted_emulator_ca_is_a_tls_problem() {
    let emu = start().await;
    let c = TokenClient::new(ClientConfig {
        retry: RetryPolicy::none(),
        ..ClientConfig::default()
    })
    .unwrap();
    let err = c
        .token(&request(
            &emu,
            secret(demo::CLIENT_SECRET),
            Scope::exchange_app(Cloud::Global),
        ))
        .await
        .unwrap_err();
    match &err {
        EntraError::Transport { problem, .. } => {
            assert_eq!(*problem, TransportProblem::Tls, "{err}")
        }
        other => panic!("expected a TLS transport error, got {other}"),
    }
    assert!(err.to_string().contains("Extra CA-certifikat"));
    assert!(err.explain(Lang::Sv).fix.contains("Extra CA-certifikat"));
}

#[tokio::test]
async fn closed_port_is_a_connection_problem() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let c = TokenClient::new(ClientConfig {
        retry: RetryPolicy::none(),
        ..ClientConfig::default()
    })
    .unwrap();
    let err = c
        .token(&TokenRequest {
            authority: Authority::url(&format!("https://127.0.0.1:{port}")).unwrap(),
            tenant: demo::TENANT_ID.into(),
            client_id: demo::CLIENT_ID.into(),
            credential: secret(demo::CLIENT_SECRET),
            scope: Scope::exchange_app(Cloud::Global),
            user: None,
        })
        .await
        .unwrap_err();
    match &err {
        EntraError::Transport { problem, host, .. } => {
            assert_eq!(*problem, TransportProblem::Connect, "{err}");
            assert_eq!(host, &format!("127.0.0.1:{port}"));
        }
        other => panic!("expected a connection error, got {other}"),
    }
    assert!(err.is_transient());
}

// ---------------------------------------------------------------------------------------------
// Every AADSTS error the emulator produces, explained.

/// Runs `req`, expects Entra to refuse with `code`, and checks the explanation in both
/// languages: catalogued, carrying the trace/correlation ids, and free of the secrets sent.
async fn expect_code(emu: &RunningEmulator, req: TokenRequest, code: u32) -> EntraError {
    let err = client(emu).token(&req).await.unwrap_err();
    assert_eq!(err.aadsts_code(), Some(code), "{err}");
    let body = err.entra_body().unwrap();
    assert!(
        body.trace_id.is_some() && body.correlation_id.is_some(),
        "{body:?}"
    );
    for lang in [Lang::En, Lang::Sv] {
        let x = err.explain(lang);
        assert!(x.is_catalogued(), "AADSTS{code} not explained in {lang:?}");
        assert_eq!(x, {
            let mut expected = explain(code, lang)
                .or_else(|| explain_error(&body.error, lang))
                .unwrap();
            expected.error = Some(body.error.clone());
            expected.code = expected.code.or(Some(code));
            expected.microsoft_message = body.microsoft_message();
            expected.trace_id = body.trace_id.clone();
            expected.correlation_id = body.correlation_id.clone();
            expected.timestamp = body.timestamp.clone();
            expected
        });
    }
    let shown = format!("{err} {err:?} {}", err.explain(Lang::Sv));
    for s in [demo::CLIENT_SECRET, demo::EXPIRED_SECRET, demo::PASSWORD] {
        assert!(
            !shown.contains(s),
            "a secret leaked into the error of AADSTS{code}"
        );
    }
    assert!(err.is_permanent(), "AADSTS{code} must not be retried");
    err
}

#[tokio::test]
async fn app_credential_errors_are_explained() {
    let emu = start().await;
    let app = |c: Credential| request(&emu, c, Scope::exchange_app(Cloud::Global));

    let e = expect_code(&emu, app(secret(demo::CLIENT_SECRET_ID)), 7000215).await;
    assert!(
        e.explain(Lang::En)
            .summary
            .contains("ID instead of its Value")
    );
    let e = expect_code(&emu, app(secret(demo::EXPIRED_SECRET)), 7000222).await;
    assert!(
        e.explain(Lang::Sv)
            .fix
            .contains("Certifikat och hemligheter")
    );

    let other_tenant = TokenRequest {
        tenant: demo::OTHER_TENANT_ID.into(),
        ..app(secret(demo::CLIENT_SECRET))
    };
    expect_code(&emu, other_tenant, 700016).await;
    let missing_tenant = TokenRequest {
        tenant: "11111111-2222-4333-8444-555555555555".into(),
        ..app(secret(demo::CLIENT_SECRET))
    };
    expect_code(&emu, missing_tenant, 90002).await;
    let bad_tenant = TokenRequest {
        tenant: "kurirdemo".into(),
        ..app(secret(demo::CLIENT_SECRET))
    };
    expect_code(&emu, bad_tenant, 900023).await;

    // A certificate Entra has never seen.
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["stranger".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let stranger = Credential::Certificate {
        cert_pem: cert.pem(),
        key_pem: SecretString::from(key.serialize_pem()),
        alg: AssertionAlg::Ps256,
    };
    expect_code(&emu, app(stranger), 700027).await;
}

#[tokio::test]
async fn scope_errors_are_explained() {
    let emu = start().await;
    let with = |scope: &str| request(&emu, secret(demo::CLIENT_SECRET), Scope::parse(scope));
    expect_code(
        &emu,
        with("https://outlook.office365.com/IMAP.AccessAsApp"),
        1002012,
    )
    .await;
    expect_code(
        &emu,
        with("https://graph.microsoft.com/.default https://outlook.office365.com/.default"),
        700022,
    )
    .await;
    expect_code(
        &emu,
        with("https://nonexistent.example.com/.default"),
        500011,
    )
    .await;
    expect_code(&emu, with("not-a-uri/Mail.Send"), 70011).await;
}

#[tokio::test]
async fn user_errors_are_explained() {
    let emu = start().await;
    let cases = [
        (demo::MFA_USER, 50076),
        (demo::MFA_ENROLL_USER, 50079),
        (demo::DISABLED_USER, 50057),
        (demo::LOCKED_USER, 50053),
        (demo::EXPIRED_PASSWORD_USER, 50055),
        (demo::CA_BLOCKED_USER, 53003),
        ("nobody@kurirdemo.onmicrosoft.com", 50034),
    ];
    for (user, code) in cases {
        let e = expect_code(&emu, request(&emu, password(user), imap()), code).await;
        if code == 50076 {
            let x = e.explain(Lang::En);
            assert!(x.fix.contains("client secret, certificate or device code"));
            assert_eq!(
                e.entra_body().unwrap().suberror.as_deref(),
                Some("basic_action")
            );
        }
    }
    let wrong_password = Credential::UsernamePassword {
        username: demo::USER.into(),
        password: SecretString::from("not-the-password"),
        client_secret: None,
    };
    expect_code(&emu, request(&emu, wrong_password, imap()), 50126).await;

    let unconsented = TokenRequest {
        client_id: demo::UNCONSENTED_CLIENT_ID.into(),
        ..request(&emu, password(demo::USER), imap())
    };
    expect_code(&emu, unconsented, 65001).await;

    let on_common = TokenRequest {
        tenant: "common".into(),
        ..request(&emu, password(demo::USER), imap())
    };
    expect_code(&emu, on_common, 9001023).await;
}

#[tokio::test]
async fn declined_and_expired_device_codes_are_explained() {
    let emu = start().await;
    for (decline, code_or_name) in [(true, "authorization_declined"), (false, "expired_token")] {
        let (cred, mut prompts) = device_code();
        let player = {
            let emu = emu.clone();
            tokio::spawn(async move {
                let p = prompts.recv().await.unwrap();
                if decline {
                    emu.decline_device_code(&p.user_code).unwrap();
                } else {
                    emu.expire_device_code(&p.user_code).unwrap();
                }
            })
        };
        let err = client(&emu)
            .token(&request(&emu, cred, Scope::smtp_delegated(Cloud::Global)))
            .await
            .unwrap_err();
        player.await.unwrap();
        assert_eq!(err.oauth_error(), Some(code_or_name), "{err}");
        let x = err.explain(Lang::Sv);
        assert!(x.is_catalogued(), "{x}");
        assert!(
            x.summary.contains("enhetskod") || x.summary.contains("Enhetskod"),
            "{x}"
        );
        assert!(err.is_permanent());
    }
}
