//! Every AADSTS answer of the emulator, over real HTTPS (reqwest trusting only the emulator's
//! CA), checked field by field against Microsoft's error shape; plus the successful grants,
//! refresh rotation, device code hooks and fault injection that the errors depend on.

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use kurir_emulator::keys::{RegisteredCertificate, generate_rsa_certificate};
use kurir_emulator::{Emulator, EmulatorConfig, RunningEmulator, demo};
use serde_json::{Value, json};
use sha2::Digest;

const GRAPH: &str = "https://graph.microsoft.com/.default";
const EXO_USER: &str = "https://outlook.office.com/IMAP.AccessAsUser.All https://outlook.office.com/SMTP.Send offline_access openid profile";

struct Harness {
    emu: RunningEmulator,
    http: reqwest::Client,
}

impl Harness {
    async fn start() -> Harness {
        let emu = Emulator::start(EmulatorConfig::demo())
            .await
            .expect("emulator starts");
        let ca = reqwest::Certificate::from_pem(emu.ca_pem().as_bytes()).unwrap();
        let http = reqwest::Client::builder()
            .tls_certs_only([ca])
            .build()
            .unwrap();
        Harness { emu, http }
    }

    fn url(&self, tenant: &str, endpoint: &str) -> String {
        format!("{}/{tenant}/oauth2/v2.0/{endpoint}", self.emu.base_url())
    }

    async fn post(&self, tenant: &str, endpoint: &str, form: &[(&str, &str)]) -> (u16, Value) {
        let r = self
            .http
            .post(self.url(tenant, endpoint))
            .header("client-request-id", "11111111-2222-3333-4444-555555555555")
            .form(form)
            .send()
            .await
            .expect("request reaches the emulator");
        let status = r.status().as_u16();
        (status, r.json().await.expect("JSON body"))
    }

    async fn token(&self, form: &[(&str, &str)]) -> (u16, Value) {
        self.post(demo::TENANT_ID, "token", form).await
    }

    async fn ropc(&self, client_id: &str, user: &str, password: &str, scope: &str) -> (u16, Value) {
        self.token(&[
            ("grant_type", "password"),
            ("client_id", client_id),
            ("username", user),
            ("password", password),
            ("scope", scope),
        ])
        .await
    }

    async fn ops(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.emu.base_url()))
            .json(&body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }
}

/// Asserts Microsoft's error shape and returns the body for further checks.
#[track_caller]
fn assert_aadsts(answer: (u16, Value), status: u16, error: &str, code: u64) -> Value {
    let (got_status, body) = answer;
    assert_eq!(got_status, status, "HTTP status for {body}");
    assert_eq!(body["error"], error, "{body}");
    assert_eq!(body["error_codes"], json!([code]), "{body}");
    let description = body["error_description"].as_str().unwrap();
    assert!(
        description.starts_with(&format!("AADSTS{code}: ")),
        "{description}"
    );
    let trace = body["trace_id"].as_str().unwrap();
    let timestamp = body["timestamp"].as_str().unwrap();
    assert!(description.ends_with(&format!(
        "\r\nTrace ID: {trace}\r\nCorrelation ID: 11111111-2222-3333-4444-555555555555\r\nTimestamp: {timestamp}"
    )));
    assert_eq!(
        body["correlation_id"],
        "11111111-2222-3333-4444-555555555555"
    );
    assert_eq!(timestamp.len(), "2016-01-09 02:02:12Z".len());
    assert_eq!(
        body["error_uri"],
        format!("https://login.microsoftonline.com/error?code={code}")
    );
    body
}

fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn assertion(
    key_pem: &str,
    alg: Algorithm,
    cert: &RegisteredCertificate,
    aud: &str,
    nbf: i64,
    exp: i64,
) -> String {
    let mut header = Header::new(alg);
    match alg {
        Algorithm::PS256 => header.x5t_s256 = Some(cert.x5t_s256()),
        _ => header.x5t = Some(cert.x5t()),
    }
    let claims = json!({"aud": aud, "iss": demo::CLIENT_ID, "sub": demo::CLIENT_ID,
        "jti": uuid::Uuid::new_v4().to_string(), "nbf": nbf, "exp": exp, "iat": nbf});
    jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_rsa_pem(key_pem.as_bytes()).unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn tenant_errors() {
    let h = Harness::start().await;
    let cc = [
        ("grant_type", "client_credentials"),
        ("client_id", demo::CLIENT_ID),
        ("client_secret", demo::CLIENT_SECRET),
        ("scope", GRAPH),
    ];
    assert_aadsts(
        h.post("00000000-1111-2222-3333-444444444444", "token", &cc)
            .await,
        400,
        "invalid_request",
        90002,
    );
    assert_aadsts(
        h.post("fabrikam.onmicrosoft.com", "token", &cc).await,
        400,
        "invalid_request",
        90002,
    );
    assert_aadsts(
        h.post("not_a_tenant", "token", &cc).await,
        400,
        "invalid_request",
        900023,
    );
    // Client credentials on the aliases: no directory named (50059), for /organizations too;
    // the answer used to be 9001023, whose text tells the client to use /organizations.
    for alias in ["common", "organizations", "consumers"] {
        let body = assert_aadsts(
            h.post(alias, "token", &cc).await,
            400,
            "invalid_request",
            50059,
        );
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .contains("No tenant-identifying information"),
            "{alias}: {body}"
        );
    }
    // A disabled app: 7000112, whatever the credential.
    assert_aadsts(
        h.token(&[
            ("grant_type", "client_credentials"),
            ("client_id", demo::DISABLED_CLIENT_ID),
            ("client_secret", demo::DISABLED_CLIENT_SECRET),
            ("scope", GRAPH),
        ])
        .await,
        400,
        "unauthorized_client",
        7000112,
    );
    // Discovery of a tenant that does not exist: invalid_tenant, as Entra names it there.
    let r = h
        .http
        .get(format!(
            "{}/fabrikam.onmicrosoft.com/v2.0/.well-known/openid-configuration",
            h.emu.base_url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_tenant", "{body}");
    assert_eq!(body["error_codes"][0], 90002, "{body}");
    // The same app by domain works; ROPC on /common and /consumers does not.
    let (status, ok) = h.post(demo::TENANT_DOMAIN, "token", &cc).await;
    assert_eq!(status, 200, "{ok}");
    let ropc = [
        ("grant_type", "password"),
        ("client_id", demo::CLIENT_ID),
        ("username", demo::USER),
        ("password", demo::PASSWORD),
        ("scope", EXO_USER),
    ];
    assert_aadsts(
        h.post("common", "token", &ropc).await,
        400,
        "invalid_request",
        9001023,
    );
    assert_aadsts(
        h.post("consumers", "token", &ropc).await,
        400,
        "invalid_request",
        9001023,
    );
    let (status, body) = h.post("organizations", "token", &ropc).await;
    assert_eq!(
        status, 200,
        "organizations resolves the user's tenant: {body}"
    );
    h.emu.shutdown().await;
}

#[tokio::test]
async fn client_secret_errors_and_success() {
    let h = Harness::start().await;
    let with_secret = |secret: &'static str| {
        [
            ("grant_type", "client_credentials"),
            ("client_id", demo::CLIENT_ID),
            ("client_secret", secret),
            ("scope", GRAPH),
        ]
    };
    assert_aadsts(
        h.token(&with_secret("wrong")).await,
        401,
        "invalid_client",
        7000215,
    );
    let id_instead = assert_aadsts(
        h.token(&with_secret(demo::CLIENT_SECRET_ID)).await,
        401,
        "invalid_client",
        7000215,
    );
    assert!(
        id_instead["error_description"]
            .as_str()
            .unwrap()
            .contains("not the client secret ID")
    );
    assert_aadsts(
        h.token(&with_secret(demo::EXPIRED_SECRET)).await,
        401,
        "invalid_client",
        7000222,
    );
    assert_aadsts(
        h.token(&[
            ("grant_type", "client_credentials"),
            ("client_id", demo::CLIENT_ID),
            ("scope", GRAPH),
        ])
        .await,
        401,
        "invalid_client",
        7000218,
    );
    let unknown = [
        ("grant_type", "client_credentials"),
        ("client_id", "99999999-9999-9999-9999-999999999999"),
        ("client_secret", "x"),
        ("scope", GRAPH),
    ];
    assert_aadsts(h.token(&unknown).await, 400, "unauthorized_client", 700016);
    // The demo app is not registered in the other tenant.
    assert_aadsts(
        h.post(
            demo::OTHER_TENANT_ID,
            "token",
            &with_secret(demo::CLIENT_SECRET),
        )
        .await,
        400,
        "unauthorized_client",
        700016,
    );

    // HTTP Basic with form-urlencoded parts, as MSAL for Python sends it.
    let basic = format!(
        "{}:{}",
        demo::CLIENT_ID,
        url::form_urlencoded::byte_serialize(demo::CLIENT_SECRET.as_bytes()).collect::<String>()
    );
    let r = h
        .http
        .post(h.url(demo::TENANT_ID, "token"))
        .header(
            "authorization",
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(basic)
            ),
        )
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "https://outlook.office365.com/.default"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let body: Value = r.json().await.unwrap();
    assert!(body.get("refresh_token").is_none());
    assert_eq!(body["expires_in"], 3599);
    let c = claims(body["access_token"].as_str().unwrap());
    assert_eq!(c["aud"], "https://outlook.office365.com");
    assert_eq!(
        c["iss"],
        format!("https://sts.windows.net/{}/", demo::TENANT_ID)
    );
    assert_eq!(c["appidacr"], "1");
    assert_eq!(c["idtyp"], "app");
    assert!(
        c["roles"]
            .as_array()
            .unwrap()
            .contains(&json!("IMAP.AccessAsApp"))
    );
    assert_eq!(h.emu.token_requests(), 7);

    // Without admin consent the token is issued, but carries no roles (as Entra does).
    let (status, body) = h
        .token(&[
            ("grant_type", "client_credentials"),
            ("client_id", demo::UNCONSENTED_CLIENT_ID),
            ("client_secret", demo::UNCONSENTED_CLIENT_SECRET),
            ("scope", GRAPH),
        ])
        .await;
    assert_eq!(status, 200);
    assert!(
        claims(body["access_token"].as_str().unwrap())
            .get("roles")
            .is_none()
    );
    h.emu.shutdown().await;
}

#[tokio::test]
async fn scope_errors() {
    let h = Harness::start().await;
    let cc = |scope: &'static str| {
        [
            ("grant_type", "client_credentials"),
            ("client_id", demo::CLIENT_ID),
            ("client_secret", demo::CLIENT_SECRET),
            ("scope", scope),
        ]
    };
    assert_aadsts(
        h.token(&cc("https://graph.microsoft.com/Mail.Read")).await,
        400,
        "invalid_scope",
        1002012,
    );
    assert_aadsts(
        h.token(&cc(
            "https://graph.microsoft.com/.default https://outlook.office365.com/.default",
        ))
        .await,
        400,
        "invalid_scope",
        700022,
    );
    assert_aadsts(h.token(&cc("")).await, 400, "invalid_scope", 70011);
    assert_aadsts(
        h.token(&cc("Mail.Read,Mail.Send")).await,
        400,
        "invalid_scope",
        70011,
    );
    assert_aadsts(
        h.token(&cc("https://api.contoso.com/.default")).await,
        400,
        "invalid_resource",
        500011,
    );
    // ROPC for a permission the resource does not have (a typo): 650053, not 65001 (which says
    // consent is missing, sending the admin to grant something that cannot exist).
    let body = assert_aadsts(
        h.ropc(
            demo::CLIENT_ID,
            demo::USER,
            demo::PASSWORD,
            "https://outlook.office.com/IMAP.AccessAsUser.Al",
        )
        .await,
        400,
        "invalid_client",
        650053,
    );
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("'IMAP.AccessAsUser.Al'"),
        "{body}"
    );
    // A real permission the app was not granted: still 65001.
    assert_aadsts(
        h.ropc(
            demo::CLIENT_ID,
            demo::USER,
            demo::PASSWORD,
            "https://graph.microsoft.com/Calendars.Read",
        )
        .await,
        400,
        "invalid_grant",
        65001,
    );
    h.emu.shutdown().await;
}

#[tokio::test]
async fn client_assertions() {
    let h = Harness::start().await;
    let cert = h
        .emu
        .demo_certificate()
        .expect("demo certificate generated");
    let registered = RegisteredCertificate::from_pem(&cert.certificate_pem).unwrap();
    let token_url = h.url(demo::TENANT_ID, "token");
    let with = |a: String| {
        vec![
            ("grant_type".to_string(), "client_credentials".to_string()),
            ("client_id".to_string(), demo::CLIENT_ID.to_string()),
            ("scope".to_string(), GRAPH.to_string()),
            (
                "client_assertion_type".to_string(),
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_string(),
            ),
            ("client_assertion".to_string(), a),
        ]
    };
    let send = |form: Vec<(String, String)>| {
        let h = &h;
        async move {
            let f: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            h.token(&f).await
        }
    };
    let t = now();
    // RS256 + x5t (MSAL for Python) and PS256 + x5t#S256 (newer docs), several audience forms.
    let old_aud = format!("{}/{}/v2.0", h.emu.base_url(), demo::TENANT_ID);
    let localhost_aud = format!(
        "https://localhost:{}/{}/oauth2/v2.0/token",
        h.emu.listen_addr().port(),
        demo::TENANT_DOMAIN
    );
    for (alg, aud) in [
        (Algorithm::RS256, token_url.clone()),
        (Algorithm::PS256, token_url.clone()),
        (Algorithm::RS256, old_aud),
        (Algorithm::PS256, localhost_aud),
    ] {
        let (status, body) = send(with(assertion(
            &cert.private_key_pem,
            alg,
            &registered,
            &aud,
            t,
            t + 600,
        )))
        .await;
        assert_eq!(status, 200, "{alg:?} {aud}: {body}");
        assert_eq!(
            claims(body["access_token"].as_str().unwrap())["appidacr"],
            "2"
        );
    }
    // Outside its time range.
    assert_aadsts(
        send(with(assertion(
            &cert.private_key_pem,
            Algorithm::RS256,
            &registered,
            &token_url,
            t - 7200,
            t - 3600,
        )))
        .await,
        401,
        "invalid_client",
        700024,
    );
    // Signed by another key while claiming the registered certificate's thumbprint.
    let other = generate_rsa_certificate("intruder", 1).unwrap();
    assert_aadsts(
        send(with(assertion(
            &other.key_pem,
            Algorithm::RS256,
            &registered,
            &token_url,
            t,
            t + 600,
        )))
        .await,
        401,
        "invalid_client",
        700027,
    );
    // A certificate that is not registered on the app.
    let other_cert = RegisteredCertificate::from_pem(&other.cert_pem).unwrap();
    let body = assert_aadsts(
        send(with(assertion(
            &other.key_pem,
            Algorithm::RS256,
            &other_cert,
            &token_url,
            t,
            t + 600,
        )))
        .await,
        401,
        "invalid_client",
        700027,
    );
    let sha1_hex = hex::encode_upper(sha1::Sha1::digest(&other_cert.der));
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains(&sha1_hex)
    );
    // An audience that is some other server.
    let (status, _) = send(with(assertion(
        &cert.private_key_pem,
        Algorithm::RS256,
        &registered,
        "https://login.example.com/x/oauth2/v2.0/token",
        t,
        t + 600,
    )))
    .await;
    assert_eq!(status, 401);
    h.emu.shutdown().await;
}

#[tokio::test]
async fn password_grant_errors_and_refresh_rotation() {
    let h = Harness::start().await;
    let pw = demo::PASSWORD;
    assert_aadsts(
        h.ropc(demo::CLIENT_ID, demo::USER, "wrong", EXO_USER).await,
        400,
        "invalid_grant",
        50126,
    );
    assert_aadsts(
        h.ropc(
            demo::CLIENT_ID,
            "nobody@kurirdemo.onmicrosoft.com",
            pw,
            EXO_USER,
        )
        .await,
        400,
        "invalid_grant",
        50034,
    );
    let expired = assert_aadsts(
        h.ropc(demo::CLIENT_ID, demo::EXPIRED_PASSWORD_USER, pw, EXO_USER)
            .await,
        400,
        "invalid_grant",
        50055,
    );
    assert_eq!(expired["suberror"], "user_password_expired");
    assert_aadsts(
        h.ropc(demo::CLIENT_ID, demo::DISABLED_USER, pw, EXO_USER)
            .await,
        400,
        "invalid_grant",
        50057,
    );
    assert_aadsts(
        h.ropc(demo::CLIENT_ID, demo::LOCKED_USER, pw, EXO_USER)
            .await,
        400,
        "invalid_grant",
        50053,
    );
    for (user, code) in [
        (demo::MFA_USER, 50076),
        (demo::MFA_ENROLL_USER, 50079),
        (demo::CA_BLOCKED_USER, 53003),
    ] {
        let body = assert_aadsts(
            h.ropc(demo::CLIENT_ID, user, pw, EXO_USER).await,
            400,
            "invalid_grant",
            code,
        );
        assert_eq!(body["suberror"], "basic_action");
        let challenge: Value = serde_json::from_str(body["claims"].as_str().unwrap()).unwrap();
        assert!(
            challenge["access_token"]["capolids"]["essential"]
                .as_bool()
                .unwrap()
        );
    }
    let consent = assert_aadsts(
        h.ropc(demo::UNCONSENTED_CLIENT_ID, demo::USER, pw, EXO_USER)
            .await,
        400,
        "invalid_grant",
        65001,
    );
    assert_eq!(consent["suberror"], "consent_required");
    // Delegated permission the app was never granted.
    assert_aadsts(
        h.ropc(
            demo::CLIENT_ID,
            demo::USER,
            pw,
            "https://outlook.office.com/EWS.AccessAsUser.All",
        )
        .await,
        400,
        "invalid_grant",
        65001,
    );

    let (status, first) = h.ropc(demo::CLIENT_ID, demo::USER, pw, EXO_USER).await;
    assert_eq!(status, 200, "{first}");
    let at = claims(first["access_token"].as_str().unwrap());
    assert_eq!(at["aud"], "https://outlook.office.com");
    assert_eq!(at["upn"], demo::USER);
    assert_eq!(at["scp"], "IMAP.AccessAsUser.All SMTP.Send");
    assert_eq!(at["idtyp"], "user");
    assert_eq!(
        first["scope"],
        "https://outlook.office.com/IMAP.AccessAsUser.All https://outlook.office.com/SMTP.Send"
    );
    let id = claims(first["id_token"].as_str().unwrap());
    assert_eq!(id["aud"], demo::CLIENT_ID);
    assert_eq!(id["preferred_username"], demo::USER);

    let refresh = |rt: String| {
        let h = &h;
        async move {
            h.token(&[
                ("grant_type", "refresh_token"),
                ("client_id", demo::CLIENT_ID),
                ("refresh_token", rt.as_str()),
                ("scope", EXO_USER),
            ])
            .await
        }
    };
    let rt1 = first["refresh_token"].as_str().unwrap().to_string();
    let (status, second) = refresh(rt1.clone()).await;
    assert_eq!(status, 200, "{second}");
    let rt2 = second["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(rt1, rt2);
    assert_aadsts(refresh(rt1).await, 400, "invalid_grant", 70008);
    assert_aadsts(
        refresh("garbage".into()).await,
        400,
        "invalid_grant",
        9002313,
    );
    // Revoked through the test hook.
    assert_eq!(h.emu.revoke_refresh_tokens(Some(demo::USER)), 1);
    assert_aadsts(refresh(rt2).await, 400, "invalid_grant", 70008);
    // Expired: a 1 s refresh token lifetime.
    h.emu
        .faults()
        .set_refresh_token_lifetime(Duration::from_secs(1));
    let (_, third) = h.ropc(demo::CLIENT_ID, demo::USER, pw, EXO_USER).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_aadsts(
        refresh(third["refresh_token"].as_str().unwrap().to_string()).await,
        400,
        "invalid_grant",
        700082,
    );
    h.emu.shutdown().await;
}

#[tokio::test]
async fn device_code_flow_and_polling_errors() {
    let h = Harness::start().await;
    let start = || async {
        let (status, body) = h
            .post(
                demo::TENANT_ID,
                "devicecode",
                &[("client_id", demo::CLIENT_ID), ("scope", EXO_USER)],
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body
    };
    let poll = |device_code: String| {
        let h = &h;
        async move {
            h.token(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                ("client_id", demo::CLIENT_ID),
                ("device_code", device_code.as_str()),
            ])
            .await
        }
    };
    let flow = start().await;
    assert_eq!(
        flow["verification_uri"],
        "https://microsoft.com/devicelogin"
    );
    assert_eq!(flow["expires_in"], 900);
    assert_eq!(flow["interval"], 5);
    let user_code = flow["user_code"].as_str().unwrap().to_string();
    assert!(flow["message"].as_str().unwrap().contains(&user_code));
    let device_code = flow["device_code"].as_str().unwrap().to_string();
    assert_aadsts(
        poll(device_code.clone()).await,
        400,
        "authorization_pending",
        70016,
    );
    h.emu
        .approve_device_code(&user_code, demo::MFA_USER)
        .unwrap();
    let (status, tokens) = poll(device_code.clone()).await;
    assert_eq!(
        status, 200,
        "MFA happens in the browser, so device code works: {tokens}"
    );
    assert_eq!(
        claims(tokens["access_token"].as_str().unwrap())["upn"],
        demo::MFA_USER
    );
    // Single use.
    assert_aadsts(poll(device_code).await, 400, "bad_verification_code", 70018);
    assert!(h.emu.approve_device_code(&user_code, demo::USER).is_err());

    let declined = start().await;
    let (status, _) = h
        .ops(
            "/_emulator/devicecode/decline",
            json!({"user_code": declined["user_code"]}),
        )
        .await;
    assert_eq!(status, 200);
    assert_aadsts(
        poll(declined["device_code"].as_str().unwrap().into()).await,
        400,
        "authorization_declined",
        65004,
    );

    let expiring = start().await;
    h.emu
        .expire_device_code(expiring["user_code"].as_str().unwrap())
        .unwrap();
    assert_aadsts(
        poll(expiring["device_code"].as_str().unwrap().into()).await,
        400,
        "expired_token",
        70019,
    );

    let blocked = start().await;
    let (status, _) = h
        .ops(
            "/_emulator/devicecode/approve",
            json!({"user_code": blocked["user_code"], "username": demo::CA_BLOCKED_USER}),
        )
        .await;
    assert_eq!(status, 200);
    assert_aadsts(
        poll(blocked["device_code"].as_str().unwrap().into()).await,
        400,
        "invalid_grant",
        53003,
    );
    let (status, _) = h
        .ops(
            "/_emulator/devicecode/approve",
            json!({"user_code": "NOSUCHCODE", "username": demo::USER}),
        )
        .await;
    assert_eq!(status, 404);
    h.emu.shutdown().await;
}

#[tokio::test]
async fn faults_counters_discovery_and_keys() {
    let h = Harness::start().await;
    let cc = [
        ("grant_type", "client_credentials"),
        ("client_id", demo::CLIENT_ID),
        ("client_secret", demo::CLIENT_SECRET),
        ("scope", GRAPH),
    ];
    h.emu.faults().fail_next(2);
    assert_aadsts(h.token(&cc).await, 503, "temporarily_unavailable", 90033);
    assert_aadsts(h.token(&cc).await, 503, "temporarily_unavailable", 90033);
    assert_eq!(h.token(&cc).await.0, 200);
    h.emu.faults().set_latency(Duration::from_millis(300));
    h.emu.faults().set_token_lifetime(Duration::from_secs(42));
    let started = std::time::Instant::now();
    let (_, body) = h.token(&cc).await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(body["expires_in"], 42);
    let c = claims(body["access_token"].as_str().unwrap());
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 42);
    assert_eq!(h.emu.token_requests(), 4);
    assert_eq!(h.emu.token_requests_for(demo::CLIENT_ID, GRAPH), 4);
    let (_, faults) = h
        .ops(
            "/_emulator/faults",
            json!({"latency_ms": 0, "fail_next": 1}),
        )
        .await;
    assert_eq!(faults["fail_next"], 1);
    let counters: Value = h
        .http
        .get(format!("{}/_emulator/counters", h.emu.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(counters["token_requests"], 4);
    assert_eq!(counters["by_client_scope"][0]["count"], 4);
    h.ops("/_emulator/reset", json!({})).await;
    assert_eq!(h.emu.token_requests(), 0);
    assert_eq!(h.emu.faults().pending_failures(), 0);

    let get = |path: String| {
        let h = &h;
        async move {
            let r = h
                .http
                .get(format!("{}{path}", h.emu.base_url()))
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (status, oidc) = get(format!(
        "/{}/v2.0/.well-known/openid-configuration",
        demo::TENANT_DOMAIN
    ))
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        oidc["issuer"],
        format!("{}/{}/v2.0", h.emu.base_url(), demo::TENANT_ID)
    );
    assert_eq!(
        oidc["device_authorization_endpoint"],
        format!(
            "{}/{}/oauth2/v2.0/devicecode",
            h.emu.base_url(),
            demo::TENANT_ID
        )
    );
    let (status, common) = get("/common/v2.0/.well-known/openid-configuration".into()).await;
    assert_eq!(status, 200);
    assert_eq!(
        common["issuer"],
        format!("{}/{{tenantid}}/v2.0", h.emu.base_url())
    );
    let (_, jwks) = get(format!("/{}/discovery/v2.0/keys", demo::TENANT_ID)).await;
    let keys = jwks["keys"].as_array().unwrap();
    let info = h.emu.signing_keys();
    assert_eq!(keys.len(), 2);
    for k in keys {
        assert_eq!(k["kid"], k["x5t"]);
        assert_eq!(k["e"], "AQAB");
        let der = base64::engine::general_purpose::STANDARD
            .decode(k["x5c"][0].as_str().unwrap())
            .unwrap();
        assert_eq!(
            URL_SAFE_NO_PAD.encode(sha1::Sha1::digest(&der)),
            k["kid"].as_str().unwrap()
        );
    }
    assert!(keys.iter().any(|k| k["kid"] == info.app_kid.as_str()));
    assert!(keys.iter().any(|k| k["kid"] == info.user_kid.as_str()));
    let kids: HashMap<String, String> = serde_json::from_str(
        &std::fs::read_to_string(h.emu.state_dir().join("keys/kids.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(kids["app"], info.app_kid);
    let (_, realm) = get(format!("/common/userrealm/{}?api-version=1.0", demo::USER)).await;
    assert_eq!(realm["account_type"], "Managed");
    assert_eq!(realm["domain_name"], demo::TENANT_DOMAIN);
    let (status, _) = get("/nosuch.example.com/v2.0/.well-known/openid-configuration".into()).await;
    assert_eq!(status, 400);
    h.emu.shutdown().await;
}

#[tokio::test]
async fn state_dir_keeps_keys_and_ca_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = EmulatorConfig {
        state_dir: Some(dir.path().to_path_buf()),
        ..EmulatorConfig::demo()
    };
    let first = Emulator::start(cfg.clone()).await.unwrap();
    let (kid, ca, thumb) = (
        first.signing_keys().user_kid,
        first.ca_pem(),
        first.demo_certificate().unwrap().thumbprint,
    );
    first.shutdown().await;
    let second = Emulator::start(cfg).await.unwrap();
    assert_eq!(second.signing_keys().user_kid, kid);
    assert_eq!(second.ca_pem(), ca);
    assert_eq!(second.demo_certificate().unwrap().thumbprint, thumb);
    assert!(dir.path().join("keys/app.pub.pem").exists());
    assert!(dir.path().join("keys/user.pub.pem").exists());
    second.shutdown().await;
}
