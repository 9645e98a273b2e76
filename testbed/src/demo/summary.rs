//! The summary printed once every example is Ready: how long each took, the SES calls it cost,
//! the DNS records published for it, and where to look next.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use super::admin::Published;
use super::progress::{Progress, seconds};

/// Everything the summary reports.
pub struct Facts<'a> {
    /// What was waited for, and when each became Ready.
    pub progress: &'a Progress,
    /// SES calls by operation and outcome (`Success` or the error code).
    pub ses_calls: BTreeMap<String, BTreeMap<String, u64>>,
    /// The records the demo published, in order.
    pub records: &'a [Published],
    /// What the statuses say now: (owner `NAMESPACE/NAME`, type, name) → `published`.
    pub published_flags: &'a BTreeMap<(String, String, String), bool>,
    /// Verification links clicked: (region, address).
    pub clicked: &'a [(String, String)],
    /// Logins each demo mail server accepted and refused.
    pub logins: BTreeMap<String, (u64, u64)>,
    /// The demo's directory (log, kubeconfig, env).
    pub dir: &'a Path,
    /// The whole demo's time so far.
    pub total: Duration,
    /// Everything keeps running afterwards (`--keep`).
    pub keep: bool,
}

/// The summary's text.
pub fn render(f: &Facts) -> String {
    let p = f.progress;
    let slowest = p.ready_after.values().max().copied().unwrap_or_default();
    let mut out = format!(
        "All {} example objects are Ready, {} after the operator started ({} in all).\n",
        p.wanted.len(),
        seconds(slowest),
        seconds(f.total)
    );

    out.push_str("\nTime to Ready (since the operator started)\n");
    let width = p
        .wanted
        .keys()
        .map(|w| w.to_string().len())
        .max()
        .unwrap_or(0);
    let mut by_time: Vec<_> = p.ready_after.iter().collect();
    by_time.sort_by_key(|(w, d)| (**d, (*w).clone()));
    for (wanted, after) in by_time {
        let shown = wanted.to_string();
        out.push_str(&format!("  {shown:<width$}   {:>5}\n", seconds(*after)));
    }

    let total: u64 = f.ses_calls.values().flat_map(|o| o.values()).sum();
    let operations: Vec<String> = f
        .ses_calls
        .iter()
        .map(|(op, outcomes)| format!("{op} {}", outcomes.values().sum::<u64>()))
        .collect();
    let mut failures: BTreeMap<&str, u64> = BTreeMap::new();
    for outcomes in f.ses_calls.values() {
        for (outcome, n) in outcomes.iter().filter(|(o, _)| o.as_str() != "Success") {
            *failures.entry(outcome.as_str()).or_default() += n;
        }
    }
    out.push_str(&format!(
        "\nSES calls: {total} — {}\n",
        operations.join(", ")
    ));
    if failures.is_empty() {
        out.push_str("  all answered with success\n");
    } else {
        let failed: Vec<String> = failures.iter().map(|(o, n)| format!("{o} {n}")).collect();
        out.push_str(&format!("  not successful: {}\n", failed.join(", ")));
    }

    let says = |r: &Published| {
        f.published_flags
            .get(&(r.owner.clone(), r.type_.clone(), r.name.clone()))
            .copied()
    };
    let confirmed = f.records.iter().filter(|r| says(r) == Some(true)).count();
    out.push_str(&format!(
        "\nDNS records the statuses asked for, published by the demo ({}; their status says published: true for {confirmed})\n",
        f.records.len(),
    ));
    let widths =
        |get: fn(&Published) -> &str| f.records.iter().map(|r| get(r).len()).max().unwrap_or(0);
    let (wt, wn, wv, wp) = (
        widths(|r| &r.type_),
        widths(|r| &r.name),
        widths(|r| &r.value),
        widths(|r| &r.purpose),
    );
    let wo = f.records.iter().map(|r| r.owner.len()).max().unwrap_or(0);
    for r in f.records {
        let flag = match says(r) {
            Some(true) => "published: true",
            Some(false) => "published: false (the operator looks again at its next check)",
            None => "no longer asked for",
        };
        out.push_str(&format!(
            "  {:<wt$}   {:<wn$}   {:<wv$}   {:<wp$}   {:<wo$}   {flag}\n",
            r.type_, r.name, r.value, r.purpose, r.owner
        ));
    }
    for (region, address) in f.clicked {
        out.push_str(&format!(
            "  (and {address} clicked its verification link from SES in {region})\n"
        ));
    }

    let logins: Vec<String> = f
        .logins
        .iter()
        .map(|(host, (ok, refused))| match refused {
            0 => format!("{host} {ok}"),
            r => format!("{host} {ok} (refused {r})"),
        })
        .collect();
    out.push_str(&format!(
        "\nLogins at the demo's mail servers: {}\n",
        logins.join(", ")
    ));

    let dir = std::path::absolute(f.dir).unwrap_or_else(|_| f.dir.to_path_buf());
    out.push_str(&format!(
        "\nWhere to look next\n  operator log   {}\n  kubeconfig     {}\n  environment    source {}   (SES, DNS and control API endpoints)\n",
        dir.join("operator.log").display(),
        dir.join("kubeconfig").display(),
        dir.join("env").display(),
    ));
    if !f.keep {
        out.push_str("  keep it all running to explore with kubectl: add --keep\n");
    }
    out
}
