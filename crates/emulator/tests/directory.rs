//! Graph's directory API in the emulator (issue #17.4), over real HTTPS with tokens from the
//! emulator: an administrator signed in with the device code flow registers an app, creates its
//! service principal, grants application permissions (admin consent), adds a client secret and
//! makes the app an owner of itself; the app's next token carries exactly the granted roles; the
//! app rotates its own secret with Application.ReadWrite.OwnedBy; a user without a directory
//! role is refused with Authorization_RequestDenied.

use kurir_emulator::{Emulator, EmulatorConfig, RunningEmulator, demo};
use reqwest::Method;
use serde_json::{Value, json};

const GRAPH: &str = "00000003-0000-0000-c000-000000000000";
const EXCHANGE: &str = "00000002-0000-0ff1-ce00-000000000000";
const ADMIN_SCOPES: &str = "https://graph.microsoft.com/Application.ReadWrite.All https://graph.microsoft.com/AppRoleAssignment.ReadWrite.All";

struct H {
    emu: RunningEmulator,
    http: reqwest::Client,
}

impl H {
    async fn start() -> H {
        let emu = Emulator::start(EmulatorConfig::demo()).await.unwrap();
        let ca = reqwest::Certificate::from_pem(emu.ca_pem().as_bytes()).unwrap();
        let http = reqwest::Client::builder()
            .tls_certs_only([ca])
            .build()
            .unwrap();
        H { emu, http }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.emu.base_url())
    }

    async fn token(&self, form: &[(&str, &str)]) -> Value {
        self.http
            .post(self.url(&format!("/{}/oauth2/v2.0/token", demo::TENANT_ID)))
            .form(form)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The administrator's sign-in as the set-up does it: the device code flow, approved as
    /// the user would at the verification page.
    async fn device_code_token(&self, user: &str) -> String {
        let dc: Value = self
            .http
            .post(self.url(&format!("/{}/oauth2/v2.0/devicecode", demo::TENANT_ID)))
            .form(&[
                ("client_id", demo::SETUP_CLIENT_ID),
                ("scope", ADMIN_SCOPES),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let code = dc["user_code"].as_str().unwrap_or_else(|| panic!("{dc}"));
        self.emu.approve_device_code(code, user).unwrap();
        let t = self
            .token(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                ("client_id", demo::SETUP_CLIENT_ID),
                ("device_code", dc["device_code"].as_str().unwrap()),
            ])
            .await;
        t["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("{t}"))
            .to_owned()
    }

    async fn app_token(&self, client: &str, secret: &str, resource: &str) -> Value {
        self.token(&[
            ("grant_type", "client_credentials"),
            ("client_id", client),
            ("client_secret", secret),
            ("scope", &format!("{resource}/.default")),
        ])
        .await
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut b = self
            .http
            .request(method, self.url(&format!("/v1.0{path}")))
            .bearer_auth(token);
        if let Some(v) = body {
            b = b.json(&v);
        }
        let r = b.send().await.unwrap();
        let status = r.status().as_u16();
        let bytes = r.bytes().await.unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }
}

/// The claims of a JWT (no verification: the emulator signed it).
fn claims(jwt: &str) -> Value {
    use base64::Engine;
    let part = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap(),
    )
    .unwrap()
}

fn role_id(sp: &Value, value: &str) -> String {
    sp["appRoles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["value"] == value)
        .unwrap_or_else(|| panic!("{value} in {sp}"))["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn an_admin_registers_consents_and_adds_a_secret_and_the_app_rotates_its_own() {
    let h = H::start().await;
    let admin = h.device_code_token(demo::ADMIN_USER).await;
    let c = claims(&admin);
    assert!(
        c["scp"]
            .as_str()
            .unwrap()
            .contains("Application.ReadWrite.All"),
        "{c}"
    );

    // Register (single tenant), found again by name.
    let (st, app) = h
        .call(
            Method::POST,
            "/applications",
            &admin,
            Some(json!({"displayName": "Kurir (ERP mail)", "signInAudience": "AzureADMyOrg"})),
        )
        .await;
    assert_eq!(st, 201, "{app}");
    let (object_id, app_id) = (app["id"].as_str().unwrap(), app["appId"].as_str().unwrap());
    assert_ne!(object_id, app_id, "the object id is not the client id");
    let (st, found) = h
        .call(
            Method::GET,
            "/applications?$filter=displayName%20eq%20'Kurir%20(ERP%20mail)'",
            &admin,
            None,
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(found["value"].as_array().unwrap().len(), 1);
    let (st, by_app_id) = h
        .call(
            Method::GET,
            &format!("/applications(appId='{app_id}')"),
            &admin,
            None,
        )
        .await;
    assert_eq!((st, by_app_id["id"].as_str()), (200, Some(object_id)));

    // Its service principal, once.
    let (st, sp) = h
        .call(
            Method::POST,
            "/servicePrincipals",
            &admin,
            Some(json!({"appId": app_id})),
        )
        .await;
    assert_eq!(st, 201, "{sp}");
    let sp_id = sp["id"].as_str().unwrap().to_owned();
    let (st, again) = h
        .call(
            Method::POST,
            "/servicePrincipals",
            &admin,
            Some(json!({"appId": app_id})),
        )
        .await;
    assert_eq!(st, 409, "{again}");

    // Admin consent: app role assignments on Microsoft Graph and Exchange Online, looked up by
    // value in the resources' service principals.
    let (_, graph) = h
        .call(
            Method::GET,
            &format!("/servicePrincipals?$filter=appId%20eq%20'{GRAPH}'"),
            &admin,
            None,
        )
        .await;
    let graph = graph["value"][0].clone();
    assert_eq!(
        role_id(&graph, "Mail.Send"),
        "b633e1c5-b582-4048-a93e-9f11b44c7e96"
    );
    let (_, exchange) = h
        .call(
            Method::GET,
            &format!("/servicePrincipals(appId='{EXCHANGE}')"),
            &admin,
            None,
        )
        .await;
    for (resource, role) in [
        (&graph, "Mail.ReadWrite"),
        (&graph, "Mail.Send"),
        (&graph, "Application.ReadWrite.OwnedBy"),
        (&exchange, "IMAP.AccessAsApp"),
    ] {
        let body = json!({"principalId": sp_id, "resourceId": resource["id"], "appRoleId": role_id(resource, role)});
        let (st, a) = h
            .call(
                Method::POST,
                &format!(
                    "/servicePrincipals/{}/appRoleAssignedTo",
                    resource["id"].as_str().unwrap()
                ),
                &admin,
                Some(body.clone()),
            )
            .await;
        assert_eq!(st, 201, "{role}: {a}");
        assert_eq!(a["principalId"], sp_id);
        // Granting again is refused as Graph does.
        let (st, dup) = h
            .call(
                Method::POST,
                &format!("/servicePrincipals/{sp_id}/appRoleAssignments"),
                &admin,
                Some(body),
            )
            .await;
        assert_eq!(st, 400);
        assert!(
            dup["error"]["message"]
                .as_str()
                .unwrap()
                .contains("already exists"),
            "{dup}"
        );
    }
    let (_, assigned) = h
        .call(
            Method::GET,
            &format!("/servicePrincipals/{sp_id}/appRoleAssignments"),
            &admin,
            None,
        )
        .await;
    assert_eq!(assigned["value"].as_array().unwrap().len(), 4);

    // A client secret: its value once, never again in the registration.
    let (st, secret) = h
        .call(
            Method::POST,
            &format!("/applications/{object_id}/addPassword"),
            &admin,
            Some(json!({"passwordCredential": {"displayName": "Kurir"}})),
        )
        .await;
    assert_eq!(st, 200, "{secret}");
    let value = secret["secretText"].as_str().unwrap().to_owned();
    let (_, reg) = h
        .call(
            Method::GET,
            &format!("/applications/{object_id}"),
            &admin,
            None,
        )
        .await;
    assert!(reg["passwordCredentials"][0]["secretText"].is_null());
    assert_eq!(reg["passwordCredentials"][0]["keyId"], secret["keyId"]);

    // The app's tokens carry exactly what was granted, per resource.
    let t = h
        .app_token(app_id, &value, "https://graph.microsoft.com")
        .await;
    let roles = claims(t["access_token"].as_str().unwrap())["roles"].clone();
    assert_eq!(
        roles,
        json!([
            "Mail.ReadWrite",
            "Mail.Send",
            "Application.ReadWrite.OwnedBy"
        ])
    );
    let t = h
        .app_token(app_id, &value, "https://outlook.office365.com")
        .await;
    assert_eq!(
        claims(t["access_token"].as_str().unwrap())["roles"],
        json!(["IMAP.AccessAsApp"])
    );

    // Rotation by the app itself: only once it owns its registration.
    let app_token = h
        .app_token(app_id, &value, "https://graph.microsoft.com")
        .await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let add = json!({"passwordCredential": {"displayName": "Kurir (rotated)"}});
    let (st, refused) = h
        .call(
            Method::POST,
            &format!("/applications/{object_id}/addPassword"),
            &app_token,
            Some(add.clone()),
        )
        .await;
    assert_eq!(
        (st, refused["error"]["code"].as_str()),
        (403, Some("Authorization_RequestDenied"))
    );
    let (st, _) = h
        .call(
            Method::POST,
            &format!("/applications/{object_id}/owners/$ref"),
            &admin,
            Some(json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{sp_id}")})),
        )
        .await;
    assert_eq!(st, 204);
    let (st, new_secret) = h
        .call(
            Method::POST,
            &format!("/applications/{object_id}/addPassword"),
            &app_token,
            Some(add),
        )
        .await;
    assert_eq!(st, 200, "{new_secret}");
    let new_value = new_secret["secretText"].as_str().unwrap();
    assert!(
        h.app_token(app_id, new_value, "https://graph.microsoft.com")
            .await["access_token"]
            .is_string()
    );
    // … but not on another registration it does not own.
    let (_, demo_app) = h
        .call(
            Method::GET,
            &format!("/applications(appId='{}')", demo::CLIENT_ID),
            &admin,
            None,
        )
        .await;
    let (st, _) = h
        .call(
            Method::POST,
            &format!(
                "/applications/{}/addPassword",
                demo_app["id"].as_str().unwrap()
            ),
            &app_token,
            Some(json!({"passwordCredential": {}})),
        )
        .await;
    assert_eq!(st, 403);
    // The old secret removed: it no longer signs in (AADSTS7000215).
    let (st, _) = h
        .call(
            Method::POST,
            &format!("/applications/{object_id}/removePassword"),
            &app_token,
            Some(json!({"keyId": secret["keyId"]})),
        )
        .await;
    assert_eq!(st, 204);
    let t = h
        .app_token(app_id, &value, "https://graph.microsoft.com")
        .await;
    assert!(
        t["error_description"]
            .as_str()
            .unwrap()
            .starts_with("AADSTS7000215"),
        "{t}"
    );
}

#[tokio::test]
async fn a_user_without_a_directory_role_is_refused_with_authorization_request_denied() {
    let h = H::start().await;
    // Adele consented to the same scopes but holds no directory role.
    let user = h.device_code_token(demo::USER).await;
    let (st, e) = h
        .call(
            Method::POST,
            "/applications",
            &user,
            Some(json!({"displayName": "Mine"})),
        )
        .await;
    assert_eq!(st, 403);
    assert_eq!(e["error"]["code"], "Authorization_RequestDenied");
    assert_eq!(
        e["error"]["message"],
        "Insufficient privileges to complete the operation."
    );
    // Reading is allowed to members.
    let (st, _) = h.call(Method::GET, "/applications", &user, None).await;
    assert_eq!(st, 200);
    // An app-only token without directory permissions cannot touch registrations.
    let t = h
        .app_token(
            demo::CLIENT_ID,
            demo::CLIENT_SECRET,
            "https://graph.microsoft.com",
        )
        .await;
    let (st, _) = h
        .call(
            Method::POST,
            "/applications",
            t["access_token"].as_str().unwrap(),
            Some(json!({"displayName": "X"})),
        )
        .await;
    assert_eq!(st, 403);
}

/// A key pair and self-signed certificate, as `kurir setup entra` makes one.
struct Cert {
    der: Vec<u8>,
    key: jsonwebtoken::EncodingKey,
    x5t: String,
}

fn new_cert() -> Cert {
    use base64::Engine;
    use sha1::Digest;
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["kurir-test".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let der = cert.der().to_vec();
    Cert {
        x5t: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha1::Sha1::digest(&der)),
        key: jsonwebtoken::EncodingKey::from_rsa_pem(key.serialize_pem().as_bytes()).unwrap(),
        der,
    }
}

impl Cert {
    fn b64(&self) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(&self.der)
    }
    fn sign(&self, claims: &Value) -> String {
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        h.x5t = Some(self.x5t.clone());
        jsonwebtoken::encode(&h, claims, &self.key).unwrap()
    }
    /// The proof of possession addKey/removeKey demand.
    fn proof(&self, object_id: &str) -> String {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        self.sign(&json!({"aud": "00000002-0000-0000-c000-000000000000", "iss": object_id, "nbf": now, "exp": now + 600}))
    }
}

impl H {
    /// An app-only Graph token with a client assertion signed by `cert`.
    async fn cert_token(&self, client: &str, cert: &Cert) -> Value {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let aud = self.url(&format!("/{}/oauth2/v2.0/token", demo::TENANT_ID));
        let assertion = cert.sign(&json!({
            "aud": aud, "iss": client, "sub": client, "jti": uuid::Uuid::new_v4().to_string(),
            "nbf": now, "exp": now + 600,
        }));
        self.token(&[
            ("grant_type", "client_credentials"),
            ("client_id", client),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", &assertion),
            ("scope", "https://graph.microsoft.com/.default"),
        ])
        .await
    }
}

/// Certificates (issue #17.1/#17.3): the administrator uploads the first one's public part with
/// `PATCH keyCredentials`; the app signs in with it at once; the app rolls it itself with
/// `addKey`/`removeKey` and no permission, but only with a proof of possession signed by a
/// registered certificate (one signed by any other key, or for another application, is refused);
/// the removed certificate no longer signs in.
#[tokio::test]
async fn an_app_rolls_its_own_certificate_with_a_proof_of_possession() {
    let h = H::start().await;
    let admin = h.device_code_token(demo::ADMIN_USER).await;
    let (st, app) = h
        .call(
            Method::POST,
            "/applications",
            &admin,
            Some(json!({"displayName": "Kurir cert", "signInAudience": "AzureADMyOrg"})),
        )
        .await;
    assert_eq!(st, 201, "{app}");
    let (object_id, app_id) = (
        app["id"].as_str().unwrap().to_owned(),
        app["appId"].as_str().unwrap().to_owned(),
    );
    let (st, _) = h
        .call(
            Method::POST,
            "/servicePrincipals",
            &admin,
            Some(json!({"appId": app_id})),
        )
        .await;
    assert_eq!(st, 201);
    let first = new_cert();
    let first_id = uuid::Uuid::new_v4().to_string();
    let (st, e) = h
        .call(
            Method::PATCH,
            &format!("/applications/{object_id}"),
            &admin,
            Some(json!({"keyCredentials": [{"type": "AsymmetricX509Cert", "usage": "Verify", "key": first.b64(), "keyId": first_id, "displayName": "Kurir"}]})),
        )
        .await;
    assert_eq!(st, 204, "{e}");
    let (_, listed) = h
        .call(
            Method::GET,
            &format!("/applications/{object_id}"),
            &admin,
            None,
        )
        .await;
    let keys = listed["keyCredentials"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "{listed}");
    assert_eq!(keys[0]["keyId"], first_id.as_str());
    assert!(keys[0]["key"].is_null(), "the key is never returned");
    let t = h.cert_token(&app_id, &first).await;
    let app_token = t["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("{t}"))
        .to_owned();

    // addKey without any permission, but with a proof: one signed by an unregistered key, or
    // naming another application, is refused; the right one is taken.
    let second = new_cert();
    let add = |proof: String| json!({"keyCredential": {"type": "AsymmetricX509Cert", "usage": "Verify", "key": second.b64(), "displayName": "Kurir (rotated)"}, "passwordCredential": null, "proof": proof});
    let stranger = new_cert();
    for bad in [stranger.proof(&object_id), first.proof(&app_id)] {
        let (st, e) = h
            .call(
                Method::POST,
                &format!("/applications/{object_id}/addKey"),
                &app_token,
                Some(add(bad)),
            )
            .await;
        assert_eq!(st, 400, "{e}");
        assert!(
            e["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("Proof of possession token validation failed"),
            "{e}"
        );
    }
    let (st, added) = h
        .call(
            Method::POST,
            &format!("/applications/{object_id}/addKey"),
            &app_token,
            Some(add(first.proof(&object_id))),
        )
        .await;
    assert_eq!(st, 200, "{added}");
    assert!(h.cert_token(&app_id, &second).await["access_token"].is_string());

    // removeKey of the first, proven with the second: the first no longer signs in.
    let (st, e) = h
        .call(
            Method::POST,
            &format!("/applications/{object_id}/removeKey"),
            &app_token,
            Some(json!({"keyId": first_id, "proof": second.proof(&object_id)})),
        )
        .await;
    assert_eq!(st, 204, "{e}");
    let refused = h.cert_token(&app_id, &first).await;
    assert!(refused["access_token"].is_null(), "{refused}");
    assert!(h.cert_token(&app_id, &second).await["access_token"].is_string());
    let (_, listed) = h
        .call(
            Method::GET,
            &format!("/applications/{object_id}"),
            &admin,
            None,
        )
        .await;
    assert_eq!(listed["keyCredentials"][0]["keyId"], added["keyId"]);
    assert_eq!(listed["keyCredentials"].as_array().unwrap().len(), 1);
}
