//! The service's own configuration with the real binary: `kurir.toml` under the flags and the
//! environment, `kurir config check` (exit codes, a misspelt key named), and HTTPS for the web UI
//! with a given certificate (a real TLS client trusting it; plain HTTP gets no answer).

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

fn kurir(config: &Path, data: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kurir"));
    c.env("KURIR_CONFIG", config)
        .env_remove("KURIR_DATA_DIR")
        .env_remove("KURIR_MASTER_KEY")
        .env_remove("KURIR_DATABASE_URL")
        .env_remove("KURIR_LISTEN")
        .env_remove("KURIR_LOG")
        .current_dir(data.parent().unwrap());
    c
}

fn certificate(dir: &Path) -> (String, std::path::PathBuf, std::path::PathBuf) {
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    (cert.pem(), cert_path, key_path)
}

#[test]
fn the_config_file_applies_under_flags_and_environment_and_check_names_a_misspelt_key() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let file = tmp.path().join("kurir.toml");
    std::fs::write(
        &file,
        format!(
            "data_dir = \"{}\"\n[web]\nlisten = \"127.0.0.1:9999\"\n[smtp]\nlisten = \"off\"\n",
            data.display()
        ),
    )
    .unwrap();
    let out = kurir(&file, &data)
        .args(["config", "show", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let opt = |k: &str| {
        (
            v["options"][k]["value"].clone(),
            v["options"][k]["source"].clone(),
        )
    };
    assert_eq!(
        opt("data_dir"),
        (data.display().to_string().into(), "file".into())
    );
    assert_eq!(opt("web.listen"), ("127.0.0.1:9999".into(), "file".into()));
    // The environment beats the file, a flag beats both.
    let out = kurir(&file, &data)
        .env("KURIR_LISTEN", "127.0.0.1:9998")
        .args(["config", "show", "--json"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["options"]["web.listen"]["value"], "127.0.0.1:9998");
    assert_eq!(v["options"]["web.listen"]["source"], "environment");
    let out = kurir(&file, &data)
        .env("KURIR_LISTEN", "127.0.0.1:9998")
        .args(["config", "show", "--json", "--listen", "127.0.0.1:9997"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["options"]["web.listen"]["value"], "127.0.0.1:9997");
    assert_eq!(v["options"]["web.listen"]["source"], "flag");
    // Every command uses the file's data directory.
    let out = kurir(&file, &data)
        .args(["users", "add", "ANNA"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(data.join("kurir.db").exists());

    let out = kurir(&file, &data)
        .args(["config", "check"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("ok   database"), "{text}");

    // A certificate without its key, and a key that is not the certificate's: exit 1, said why.
    let (_, cert, _) = certificate(tmp.path());
    let other = rcgen::KeyPair::generate().unwrap();
    let wrong_key = tmp.path().join("other-key.pem");
    std::fs::write(&wrong_key, other.serialize_pem()).unwrap();
    let out = kurir(&file, &data)
        .args(["config", "check", "--tls-cert"])
        .arg(&cert)
        .arg("--tls-key")
        .arg(&wrong_key)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("FAIL web certificate") && text.contains("does not belong"),
        "{text}"
    );

    // A misspelt key: refused before anything runs, naming the key and the file.
    std::fs::write(&file, "[web]\nlisten_on = \"0.0.0.0:80\"\n").unwrap();
    let out = kurir(&file, &data)
        .args(["config", "check"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("listen_on") && err.contains("kurir.toml"),
        "{err}"
    );
    // A named file that is not there.
    let out = kurir(&tmp.path().join("missing.toml"), &data)
        .args(["config", "check"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test]
async fn the_web_ui_speaks_https_with_the_given_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (pem, cert, key) = certificate(tmp.path());
    let file = tmp.path().join("kurir.toml");
    std::fs::write(
        &file,
        format!(
            "data_dir = \"{}\"\n[web]\nlisten = \"127.0.0.1:0\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n[smtp]\nlisten = \"off\"\n",
            data.display(),
            cert.display(),
            key.display()
        ),
    )
    .unwrap();
    let mut child = kurir(&file, &data)
        .args(["serve", "--no-intake", "--no-outbox", "--no-upkeep"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    let url = v["listen"].as_str().unwrap().to_owned();
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");

    let https = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    let r = https.get(format!("{url}/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = https.get(format!("{url}/login")).send().await.unwrap();
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("Secure"),
        "cookies are Secure over HTTPS: {cookie}"
    );
    // A client that does not trust the certificate is refused; plain HTTP gets no answer.
    assert!(reqwest::get(format!("{url}/healthz")).await.is_err());
    let plain = url.replace("https://", "http://");
    let answered = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(3))
        .build()
        .unwrap()
        .get(format!("{plain}/healthz"))
        .send()
        .await;
    assert!(answered.is_err(), "plain HTTP is not served: {answered:?}");
    // Still serving after the failed handshakes.
    let r = https.get(format!("{url}/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert!(child.wait().unwrap().success());
}
