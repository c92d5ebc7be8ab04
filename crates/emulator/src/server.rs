//! Starting, running and stopping the emulator: state dir, keys, TLS listeners, the handle.
//!
//! One router serves every listener. The main listener is wherever `listen` says; the
//! optional second one on `userrealm_port` (normally 443) exists because MSAL for Python asks
//! `https://{host}/common/userrealm/…` on port 443 of the authority host. To let several
//! emulators each own a :443, give each its own loopback address (`127.0.0.0/8` is all
//! loopback on Linux): e.g. `listen = 127.0.0.7:0`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tower::Service;
use uuid::Uuid;

use crate::entra::devicecode::{self, DeviceCodeHookError};
use crate::fixture::{CertificateSource, Fixture};
use crate::keys::{RegisteredCertificate, load_or_generate_certificate};
use crate::state::{Counters, EmulatorState, Faults, lock};
use crate::tls::Tls;

/// How to start an emulator.
#[derive(Clone, Debug)]
pub struct EmulatorConfig {
    /// Main HTTPS listener; port 0 picks a free port.
    pub listen: SocketAddr,
    pub fixture: Fixture,
    /// Keys, CA and generated certificates live here and survive restarts; `None` uses a
    /// temporary directory removed at shutdown.
    pub state_dir: Option<PathBuf>,
    /// Extra listener on the same address for MSAL's user realm lookup (normally 443).
    pub userrealm_port: Option<u16>,
}

impl EmulatorConfig {
    /// The demo directory on a free loopback port, no state dir, no :443 listener.
    pub fn demo() -> EmulatorConfig {
        EmulatorConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            fixture: Fixture::demo(),
            state_dir: None,
            userrealm_port: None,
        }
    }
}

/// Entry point; see [`Emulator::start`].
pub struct Emulator;

/// A certificate the emulator generated for an app (`generate_certificate = true`).
#[derive(Clone, Debug)]
pub struct AppCertificate {
    pub client_id: String,
    pub certificate_path: PathBuf,
    pub private_key_path: PathBuf,
    /// Upper-case hex SHA-1, what MSAL's `client_credential["thumbprint"]` takes.
    pub thumbprint: String,
    pub certificate_pem: String,
    pub private_key_pem: String,
}

/// Paths and ids of the token signing keys (for the mail server's validation setup).
#[derive(Clone, Debug)]
pub struct SigningKeyInfo {
    pub app_kid: String,
    pub user_kid: String,
    pub app_pub_pem_path: PathBuf,
    pub user_pub_pem_path: PathBuf,
}

/// A started emulator. Dropping it without [`RunningEmulator::shutdown`] leaves the
/// listeners running until the runtime stops.
pub struct RunningEmulator {
    state: Arc<EmulatorState>,
    base_url: String,
    ca_pem: String,
    ca_path: PathBuf,
    userrealm_addr: Option<SocketAddr>,
    generated: HashMap<Uuid, AppCertificate>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    _temp_dir: Option<tempfile::TempDir>,
}

impl Emulator {
    pub async fn start(cfg: EmulatorConfig) -> anyhow::Result<RunningEmulator> {
        let (state_dir, temp_dir) = match cfg.state_dir {
            Some(dir) => {
                std::fs::create_dir_all(&dir).with_context(|| {
                    format!(
                        "cannot create the state dir {}; choose a writable --state-dir",
                        dir.display()
                    )
                })?;
                (dir, None)
            }
            None => {
                let t = tempfile::Builder::new()
                    .prefix("kurir-emulator-")
                    .tempdir()
                    .context("cannot create a temporary state dir; set TMPDIR to a writable directory or pass a state dir")?;
                (t.path().to_path_buf(), Some(t))
            }
        };
        let keys = crate::keys::SigningKeys::load_or_create(&state_dir)?;

        let mut app_certificates: HashMap<Uuid, Vec<RegisteredCertificate>> = HashMap::new();
        let mut generated = HashMap::new();
        for app in &cfg.fixture.apps {
            let list = app_certificates.entry(app.client_id).or_default();
            for (i, source) in app.certificates.iter().enumerate() {
                let pem = match source {
                    CertificateSource::Pem(p) => p.clone(),
                    CertificateSource::Path(p) => std::fs::read_to_string(p).with_context(|| {
                        format!("cannot read certificate {} of app {}; fix its `path` in the fixture", p.display(), app.client_id)
                    })?,
                };
                let cert = RegisteredCertificate::from_pem(&pem).with_context(|| {
                    format!("certificate {i} of app {} is not usable", app.client_id)
                })?;
                list.push(cert);
            }
            if app.generate_certificate {
                let dir = state_dir.join("apps").join(app.client_id.to_string());
                let (cert_path, key_path, g) =
                    load_or_generate_certificate(&dir, "client", &app.display_name)?;
                let cert = RegisteredCertificate::from_pem(&g.cert_pem)?;
                generated.insert(
                    app.client_id,
                    AppCertificate {
                        client_id: app.client_id.to_string(),
                        certificate_path: cert_path,
                        private_key_path: key_path,
                        thumbprint: cert.thumbprint_hex(),
                        certificate_pem: g.cert_pem.clone(),
                        private_key_pem: g.key_pem.clone(),
                    },
                );
                list.push(cert);
            }
        }

        let listener = TcpListener::bind(cfg.listen).await.with_context(|| {
            format!(
                "cannot listen on {}; choose another address/port (port 0 picks a free one)",
                cfg.listen
            )
        })?;
        let local = listener.local_addr()?;
        let tls = Tls::load_or_create(&state_dir, local.ip())?;
        let userrealm_listener = match cfg.userrealm_port {
            Some(port) => {
                let addr = SocketAddr::new(local.ip(), port);
                let l = TcpListener::bind(addr).await.map_err(|e| {
                    let hint = if e.kind() == std::io::ErrorKind::PermissionDenied {
                        "binding a port below 1024 needs root or CAP_NET_BIND_SERVICE".to_string()
                    } else {
                        format!("port {port} on {} is taken; stop what holds it, or give this emulator its own loopback address (e.g. listen on 127.0.0.7:0) so its :{port} is free", local.ip())
                    };
                    anyhow::anyhow!("cannot open the user realm listener on {addr}: {e}. MSAL for Python looks up https://HOST/common/userrealm/… on port 443 for ROPC; {hint}; or start without the user realm port if ROPC through MSAL is not needed")
                })?;
                Some(l)
            }
            None => None,
        };
        let userrealm_addr = userrealm_listener
            .as_ref()
            .map(|l| l.local_addr())
            .transpose()?;

        let graph = crate::graph::GraphState::load(&cfg.fixture, &state_dir)?;
        let state = Arc::new(EmulatorState {
            directory: std::sync::RwLock::new(Arc::new(cfg.fixture)),
            keys,
            app_certificates,
            faults: Faults::default(),
            counters: Counters::default(),
            device_codes: Default::default(),
            refresh_tokens: Default::default(),
            spent_refresh_tokens: Default::default(),
            listen: local,
            state_dir: state_dir.clone(),
            graph,
        });
        let router = crate::entra::router()
            .merge(crate::ops::router())
            .merge(crate::graph::router())
            .layer(axum::middleware::from_fn(log_request))
            .with_state(state.clone());
        let acceptor = TlsAcceptor::from(tls.server_config.clone());
        let (shutdown, rx) = watch::channel(false);
        let mut tasks = vec![tokio::spawn(serve(
            listener,
            acceptor.clone(),
            router.clone(),
            rx.clone(),
        ))];
        if let Some(l) = userrealm_listener {
            tasks.push(tokio::spawn(serve(l, acceptor, router, rx)));
        }
        let host = match local.ip() {
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        };
        let base_url = format!("https://{host}:{}", local.port());
        crate::graph::GraphState::write_discovery(&state_dir, &base_url, &tls.ca_path)?;
        tracing::info!(%base_url, userrealm = ?userrealm_addr, state_dir = %state_dir.display(), "Entra ID emulator listening");
        Ok(RunningEmulator {
            state,
            base_url,
            ca_pem: tls.ca_pem,
            ca_path: tls.ca_path,
            userrealm_addr,
            generated,
            shutdown,
            tasks,
            _temp_dir: temp_dir,
        })
    }
}

async fn log_request(req: Request, next: axum::middleware::Next) -> axum::response::Response {
    // Method and path only: bodies and headers carry secrets and tokens.
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let response = next.run(req).await;
    tracing::info!(%method, %path, status = response.status().as_u16(), "request");
    response
}

async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    router: Router,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let Ok((tcp, _peer)) = accepted else { continue };
                let acceptor = acceptor.clone();
                let router = router.clone();
                connections.spawn(async move {
                    // A client that connects and never finishes the handshake must not pin a task.
                    let Ok(Ok(tls)) = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                        let mut router = router.clone();
                        async move { router.call(req).await }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        }
    }
    connections.abort_all();
}

impl RunningEmulator {
    /// `https://IP:PORT`; an authority is `base_url + "/" + tenant`.
    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }
    /// The CA certificate (PEM) clients must trust.
    pub fn ca_pem(&self) -> String {
        self.ca_pem.clone()
    }
    pub fn ca_path(&self) -> PathBuf {
        self.ca_path.clone()
    }
    /// The shared state, for handle methods defined next to their endpoints (`graph/`).
    pub(crate) fn state(&self) -> &Arc<EmulatorState> {
        &self.state
    }
    pub fn state_dir(&self) -> PathBuf {
        self.state.state_dir.clone()
    }
    pub fn listen_addr(&self) -> SocketAddr {
        self.state.listen
    }
    /// The user realm (:443) listener's address, if one was asked for.
    pub fn userrealm_addr(&self) -> Option<SocketAddr> {
        self.userrealm_addr
    }
    /// All `POST /token` requests so far (answered or failed).
    pub fn token_requests(&self) -> u64 {
        self.state.counters.token_requests.load(Ordering::SeqCst)
    }
    /// Token requests of one client for one scope string (as sent).
    pub fn token_requests_for(&self, client_id: &str, scope: &str) -> u64 {
        lock(&self.state.counters.by_client_scope)
            .get(&(client_id.to_string(), scope.to_string()))
            .copied()
            .unwrap_or(0)
    }
    pub fn faults(&self) -> &Faults {
        &self.state.faults
    }
    pub fn approve_device_code(
        &self,
        user_code: &str,
        username: &str,
    ) -> Result<(), DeviceCodeHookError> {
        devicecode::approve(&self.state, user_code, username)
    }
    pub fn decline_device_code(&self, user_code: &str) -> Result<(), DeviceCodeHookError> {
        devicecode::decline(&self.state, user_code)
    }
    pub fn expire_device_code(&self, user_code: &str) -> Result<(), DeviceCodeHookError> {
        devicecode::expire(&self.state, user_code)
    }
    /// Revokes a user's refresh tokens (every user's with `None`); returns how many.
    pub fn revoke_refresh_tokens(&self, username: Option<&str>) -> usize {
        let fixture = self.state.fixture();
        let id = username.and_then(|u| fixture.user(u)).map(|u| u.object_id);
        if username.is_some() && id.is_none() {
            return 0;
        }
        self.state.revoke_refresh_tokens(id)
    }
    /// Clears counters, faults, device codes and refresh tokens.
    pub fn reset(&self) {
        self.state.reset();
    }
    /// The directory as it is now (the fixture, with what Graph's directory API changed).
    pub fn fixture(&self) -> Arc<Fixture> {
        self.state.fixture()
    }
    /// The certificate generated for an app with `generate_certificate = true`.
    pub fn app_certificate(&self, client_id: &str) -> Option<AppCertificate> {
        let id = Uuid::parse_str(client_id).ok()?;
        self.generated.get(&id).cloned()
    }
    /// The demo app's certificate (when serving the demo fixture).
    pub fn demo_certificate(&self) -> Option<AppCertificate> {
        self.app_certificate(crate::demo::CLIENT_ID)
    }
    pub fn signing_keys(&self) -> SigningKeyInfo {
        let k = &self.state.keys;
        SigningKeyInfo {
            app_kid: k.app.kid.clone(),
            user_kid: k.user.kid.clone(),
            app_pub_pem_path: k.app.public_pem_path.clone(),
            user_pub_pem_path: k.user.public_pem_path.clone(),
        }
    }
    /// Stops the listeners and waits for them; a temporary state dir is removed.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Resolves a path relative to a base directory (fixture files name certificates relative
/// to themselves).
pub fn resolve_relative(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}
