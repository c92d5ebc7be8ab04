//! `kurir.toml` on the command line: applying the file under the flags and the environment
//! (precedence flag > `KURIR_…` > file > default), and `kurir config check|show`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::parser::ValueSource;
use clap::{ArgMatches, Subcommand};
use kurir_service::config::{Loaded, mask_url};
use serde_json::json;

use super::serve::ServeArgs;
use super::{Cli, Command, Place, open_store};

#[derive(Subcommand, Debug)]
pub enum ConfigCmd {
    /// Check the configuration `kurir serve` would run with, without starting: the file,
    /// addresses, the data directory, the web UI's certificate and key, and the database
    /// connection. Exit 0 when all is well, 1 otherwise.
    Check {
        #[arg(long)]
        json: bool,
        /// The options of `kurir serve` (flags and KURIR_… variables apply as there).
        #[command(flatten)]
        serve: Box<ServeArgs>,
    },
    /// The options in effect and where each comes from (flag, environment, file, default); a
    /// database password is shown as ***.
    Show {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        serve: Box<ServeArgs>,
    },
}

/// Whether an option was given on the command line or in the environment (then the file does
/// not apply to it).
fn given(m: &ArgMatches, id: &str) -> bool {
    matches!(
        m.try_get_raw(id).ok().and_then(|_| m.value_source(id)),
        Some(ValueSource::CommandLine | ValueSource::EnvVariable)
    )
}

/// Where the value of an option comes from, for `kurir config show`.
fn source(m: &ArgMatches, id: &str, in_file: bool) -> &'static str {
    match m.try_get_raw(id).ok().and_then(|_| m.value_source(id)) {
        Some(ValueSource::CommandLine) => "flag",
        Some(ValueSource::EnvVariable) => "environment",
        _ if in_file => "file",
        _ => "default",
    }
}

/// Loads the config file and puts its values under what the command line and the
/// environment did not set. Returns what was loaded (for `kurir config`).
pub fn apply(cli: &mut Cli, m: &ArgMatches) -> Result<Loaded, kurir_service::config::ConfigError> {
    let loaded = kurir_service::config::load(cli.config.as_deref())?;
    let f = &loaded.file;
    if !given(m, "data_dir")
        && let Some(d) = &f.data_dir
    {
        cli.data_dir = d.clone();
        cli.data_dir_explicit = true;
    }
    if !given(m, "database_url") && cli.database_url.is_none() {
        cli.database_url = f.database_url.clone();
    }
    cli.sources.insert(
        "data_dir".into(),
        source(m, "data_dir", f.data_dir.is_some()),
    );
    cli.sources.insert(
        "database_url".into(),
        source(m, "database_url", f.database_url.is_some()),
    );
    match &mut cli.command {
        Command::Serve(args) => {
            if let Some(sm) = m.subcommand_matches("serve") {
                apply_serve(args, sm, &loaded, &mut cli.sources);
            }
        }
        Command::Config(ConfigCmd::Check { serve, .. } | ConfigCmd::Show { serve, .. }) => {
            if let Some((_, sm)) = m.subcommand_matches("config").and_then(|c| c.subcommand()) {
                apply_serve(serve, sm, &loaded, &mut cli.sources);
            }
        }
        _ => {}
    }
    cli.config_file = Some(loaded.clone());
    Ok(loaded)
}

fn apply_serve(
    a: &mut ServeArgs,
    m: &ArgMatches,
    loaded: &Loaded,
    sources: &mut std::collections::BTreeMap<String, &'static str>,
) {
    let f = &loaded.file;
    macro_rules! take {
        ($id:literal, $field:expr, $value:expr) => {
            let value = $value;
            sources.insert($id.into(), source(m, $id, value.is_some()));
            if !given(m, $id)
                && let Some(v) = value
            {
                $field = v;
            }
        };
    }
    take!("listen", a.listen, f.web.listen);
    take!("tls_cert", a.tls_cert, f.web.tls_cert.clone().map(Some));
    take!("tls_key", a.tls_key, f.web.tls_key.clone().map(Some));
    take!(
        "allowed_hosts",
        a.allowed_hosts,
        f.web.allowed_hosts.clone()
    );
    take!("secure_cookies", a.secure_cookies, f.web.secure_cookies);
    take!("session_hours", a.session_hours, f.web.session_hours);
    take!("smtp_listen", a.smtp_listen, f.smtp.listen.clone());
    take!("no_intake", a.no_intake, f.service.intake.map(|on| !on));
    take!("no_outbox", a.no_outbox, f.service.outbox.map(|on| !on));
    take!("no_upkeep", a.no_upkeep, f.service.upkeep.map(|on| !on));
    take!(
        "shutdown_grace",
        a.shutdown_grace,
        f.service.shutdown_grace_secs
    );
    take!(
        "purge_every_hours",
        a.purge_every_hours,
        f.service.purge_every_hours
    );
    take!("log_json", a.log_json, f.service.log_json);
}

/// One line of `kurir config check`.
struct Check {
    what: &'static str,
    ok: bool,
    detail: String,
}

pub async fn run(
    place: &Place,
    loaded: &Loaded,
    sources: &std::collections::BTreeMap<String, &'static str>,
    cmd: ConfigCmd,
) -> anyhow::Result<ExitCode> {
    match cmd {
        ConfigCmd::Show { json, serve } => show(place, &serve, loaded, sources, json),
        ConfigCmd::Check { json, serve } => check(place, &serve, loaded, json).await,
    }
}

fn show(
    place: &Place,
    serve: &ServeArgs,
    loaded: &Loaded,
    sources: &std::collections::BTreeMap<String, &'static str>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let src = |k: &str| sources.get(k).copied().unwrap_or("default");
    let rows: Vec<(&str, String, &str)> = vec![
        (
            "data_dir",
            place.data_dir.display().to_string(),
            src("data_dir"),
        ),
        (
            "database_url",
            place
                .database_url
                .as_deref()
                .map(mask_url)
                .unwrap_or_else(|| "(none: SQLite in the data directory)".into()),
            src("database_url"),
        ),
        ("web.listen", serve.listen.to_string(), src("listen")),
        (
            "web.tls_cert",
            serve
                .tls_cert
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "(none: plain HTTP)".into()),
            src("tls_cert"),
        ),
        (
            "web.tls_key",
            serve
                .tls_key
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "(none)".into()),
            src("tls_key"),
        ),
        ("smtp.listen", serve.smtp_listen.clone(), src("smtp_listen")),
    ];
    if json {
        let v: serde_json::Map<String, serde_json::Value> = rows
            .iter()
            .map(|(k, v, s)| ((*k).to_owned(), json!({"value": v, "source": s})))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "file": loaded.path,
                "file_found": loaded.found,
                "options": v,
            }))?
        );
    } else {
        println!(
            "Config file: {} ({})",
            loaded.path.display(),
            if loaded.found {
                "read"
            } else {
                "not there: defaults"
            }
        );
        for (k, v, s) in rows {
            println!("  {k:<14} {v}  [{s}]");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn check(
    place: &Place,
    serve: &ServeArgs,
    loaded: &Loaded,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let mut checks = vec![Check {
        what: "config file",
        ok: true,
        detail: if loaded.found {
            format!("{} read", loaded.path.display())
        } else {
            format!("{} is not there; the defaults apply", loaded.path.display())
        },
    }];
    checks.push(match serve.config() {
        Ok(_) => Check {
            what: "listen addresses",
            ok: true,
            detail: format!("web {}, SMTP listener {}", serve.listen, serve.smtp_listen),
        },
        Err(e) => Check {
            what: "listen addresses",
            ok: false,
            detail: e.to_string(),
        },
    });
    checks.push(data_dir_check(&place.data_dir));
    match (&serve.tls_cert, &serve.tls_key) {
        (None, None) => checks.push(Check {
            what: "web certificate",
            ok: true,
            detail: "none: the web UI speaks plain HTTP (keep it on loopback, or put a TLS reverse proxy in front)".into(),
        }),
        (Some(cert), Some(key)) => {
            let files = kurir_web::tls::TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            };
            checks.push(match kurir_web::tls::server_config(&files) {
                Ok(_) => {
                    let until = kurir_web::tls::not_after(&files);
                    let today = time::OffsetDateTime::now_utc().date();
                    let expired = until.is_some_and(|d| d < today);
                    Check {
                        what: "web certificate",
                        ok: !expired,
                        detail: match until {
                            Some(d) if expired => format!(
                                "{} expired on {d}; replace it",
                                cert.display()
                            ),
                            Some(d) => format!(
                                "{} and its key belong together; valid until {d} ({} days)",
                                cert.display(),
                                (d - today).whole_days()
                            ),
                            None => format!("{} and its key belong together", cert.display()),
                        },
                    }
                }
                Err(e) => Check {
                    what: "web certificate",
                    ok: false,
                    detail: e.to_string(),
                },
            });
        }
        _ => checks.push(Check {
            what: "web certificate",
            ok: false,
            detail: "give both web.tls_cert and web.tls_key (or --tls-cert and --tls-key)".into(),
        }),
    }
    checks.push(match open_store(place).await {
        Ok(store) => Check {
            what: "database",
            ok: true,
            detail: format!(
                "{} opens with the master key (fingerprint {})",
                match &place.database_url {
                    Some(u) => mask_url(u),
                    None => place.data_dir.join("kurir.db").display().to_string(),
                },
                store.key_fingerprint()
            ),
        },
        Err(e) => Check {
            what: "database",
            ok: false,
            detail: format!("{e:#}"),
        },
    });
    let all_ok = checks.iter().all(|c| c.ok);
    if json {
        let list: Vec<_> = checks
            .iter()
            .map(|c| json!({"check": c.what, "ok": c.ok, "detail": c.detail}))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({"ok": all_ok, "checks": list}))?
        );
    } else {
        for c in &checks {
            println!(
                "{} {:<18} {}",
                if c.ok { "ok  " } else { "FAIL" },
                c.what,
                c.detail
            );
        }
    }
    Ok(if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The data directory exists and is writable, or can be created.
fn data_dir_check(dir: &std::path::Path) -> Check {
    let what = "data directory";
    if !dir.exists() {
        let parent = dir
            .ancestors()
            .skip(1)
            .find(|p| p.exists())
            .map(PathBuf::from)
            .unwrap_or_default();
        let writable = tempfile_in(&parent);
        return Check {
            what,
            ok: writable,
            detail: if writable {
                format!("{} does not exist yet; it will be created", dir.display())
            } else {
                format!(
                    "{} does not exist and {} is not writable for this user; create it (owned by the service's user, mode 0700)",
                    dir.display(),
                    parent.display()
                )
            },
        };
    }
    let writable = tempfile_in(dir);
    Check {
        what,
        ok: writable,
        detail: if writable {
            format!("{} is writable", dir.display())
        } else {
            format!(
                "{} is not writable for this user; give the service's user ownership of it",
                dir.display()
            )
        },
    }
}

fn tempfile_in(dir: &std::path::Path) -> bool {
    let probe = dir.join(format!(".kurir-write-test-{}", std::process::id()));
    let ok = std::fs::write(&probe, b"").is_ok();
    let _ = std::fs::remove_file(&probe);
    ok
}
