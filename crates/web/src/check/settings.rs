//! Step 1: the settings are complete (no validation error) and the method is Exchange Online.

use kurir_settings::{Method, Severity};

use super::texts::fill;
use super::{Ctx, Run};
use crate::i18n::Lang;

pub(super) fn step(run: &mut Run, ctx: &Ctx<'_>) {
    let t = run.t;
    let lang = run.lang;
    let errors: Vec<_> = ctx
        .snap
        .validate(ctx.scope, time::OffsetDateTime::now_utc().date())
        .into_iter()
        .filter(|p| p.severity == Severity::Error)
        .collect();
    let method = ctx.eff.method();
    if !errors.is_empty() {
        let (detail, fix): (Vec<&str>, Vec<&str>) = errors
            .iter()
            .map(|p| match lang {
                Lang::Sv => (p.message_sv.as_str(), p.fix_sv.as_str()),
                Lang::En => (p.message.as_str(), p.fix.as_str()),
            })
            .unzip();
        run.fail("settings", detail.join(" "), &fix.join(" · "));
    } else if method != Method::ExchangeOnline {
        let detail = fill(t.not_exchange, &[("method", &method.to_string())]);
        run.fail("settings", detail, t.not_exchange_fix);
    } else {
        let flow = ctx.eff.auth_flow().to_string();
        run.ok("settings", fill(t.settings_ok, &[("flow", &flow)]));
    }
}
