//! Human-readable output: effective settings as a table with sources, and problems.

use kurir_settings::{Effective, Kind, Problem, Scope, Severity, StoredValue};

/// Long values (PEM certificates) are summarised; everything else is shown whole.
fn shown(value: &Option<StoredValue>, kind: Kind) -> String {
    match value {
        None => "—".to_owned(),
        Some(StoredValue::Plain(v)) if kind == Kind::CertificatePem => {
            format!("PEM certificate ({} bytes)", v.len())
        }
        Some(v) => v.display(),
    }
}

pub fn print_effective(eff: &Effective) {
    let title = match (&eff.scope, &eff.sends_as) {
        (Scope::Webshop, Some(u)) => {
            format!(
                "Effective settings of the webshop (according to user settings: sends as user {u})"
            )
        }
        (s, _) => format!("Effective settings of {s}"),
    };
    println!("{title}");
    let rows: Vec<(String, String, String, String)> = eff
        .webshop_method
        .iter()
        .map(|(m, src)| {
            (
                "webshop_method".to_owned(),
                m.clone(),
                src.as_str().to_owned(),
                "Metod för e-post (Webbshop Administration)".to_owned(),
            )
        })
        .chain(eff.fields.iter().map(|f| {
            let source = match (&f.from, f.value.is_some()) {
                (Some(Scope::User(code)), _) => format!("user {code}"),
                (Some(Scope::Account(_)), _) => "account".to_owned(),
                (_, false) => "unset".to_owned(),
                _ => f.source.as_str().to_owned(),
            };
            (
                f.key.name.to_owned(),
                shown(&f.value, f.key.kind),
                source,
                f.key.label_sv.to_owned(),
            )
        }))
        .collect();
    let w0 = rows
        .iter()
        .map(|r| r.0.chars().count())
        .max()
        .unwrap_or(0)
        .max(3);
    let w1 = rows
        .iter()
        .map(|r| r.1.chars().count())
        .max()
        .unwrap_or(0)
        .clamp(5, 48);
    let w2 = rows
        .iter()
        .map(|r| r.2.chars().count())
        .max()
        .unwrap_or(0)
        .max(6);
    println!(
        "  {:w0$}  {:w1$}  {:w2$}  LABEL (SV)",
        "KEY", "VALUE", "SOURCE"
    );
    for (k, v, s, l) in rows {
        println!("  {k:w0$}  {v:w1$}  {s:w2$}  {l}");
    }
}

pub fn print_problems(problems: &[Problem]) {
    if problems.is_empty() {
        println!("\nNo problems found.");
        return;
    }
    let errors = problems
        .iter()
        .filter(|p| p.severity == Severity::Error)
        .count();
    println!("\n{} problem(s), {} error(s):", problems.len(), errors);
    for p in problems {
        println!("  {p}");
    }
}
