//! Rendering a plan as a table (for people), JSON (the stable interface) or YAML.

use super::Report;
use std::fmt::Write;

/// Output format of `plan`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Yaml,
}

/// Renders the report.
pub fn render(report: &Report, format: Format) -> String {
    match format {
        Format::Json => serde_json::to_string_pretty(report).unwrap_or_default() + "\n",
        Format::Yaml => serde_saphyr::to_string(report).unwrap_or_default(),
        Format::Table => table(report),
    }
}

/// A header and rows as left-aligned columns two spaces apart, as kubectl prints tables.
pub fn columns<const N: usize>(header: [&str; N], rows: &[[String; N]]) -> String {
    let header = header.map(String::from);
    let widths: Vec<usize> = (0..N)
        .map(|i| {
            rows.iter()
                .chain([&header])
                .map(|r| r[i].len())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in [&header].into_iter().chain(rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", cells.join("  ").trim_end());
    }
    out
}

fn table(report: &Report) -> String {
    let rows: Vec<[String; 5]> = report
        .objects
        .iter()
        .map(|o| {
            [
                o.kind.clone(),
                o.namespace.clone(),
                o.name.clone(),
                if o.accepted { "Accepted" } else { "Rejected" }.to_string(),
                o.reason.clone(),
            ]
        })
        .collect();
    let mut out = columns(["KIND", "NAMESPACE", "NAME", "RESULT", "REASON"], &rows);
    for o in &report.objects {
        let _ = writeln!(
            out,
            "\n{} {}/{} ({})",
            o.kind, o.namespace, o.name, o.source
        );
        if !o.accepted {
            let _ = writeln!(out, "  rejected: {}: {}", o.reason, o.message);
        }
        for a in &o.actions {
            let _ = writeln!(out, "  - {a}");
        }
        for r in &o.dns_records {
            let _ = writeln!(
                out,
                "  dns: {} {} {:?} ({})",
                r.name, r.type_, r.value, r.purpose
            );
        }
        for n in &o.notes {
            let _ = writeln!(out, "  note: {n}");
        }
    }
    if !report.ignored.is_empty() {
        out.push('\n');
        for i in &report.ignored {
            let name = match &i.namespace {
                Some(ns) => format!("{ns}/{}", i.name),
                None => i.name.clone(),
            };
            let _ = writeln!(out, "ignored: {} {name} ({}): {}", i.kind, i.source, i.note);
        }
    }
    let rejected = report.objects.iter().filter(|o| !o.accepted).count();
    let _ = writeln!(
        out,
        "\n{} object(s): {} accepted, {} rejected, {} ignored",
        report.objects.len(),
        report.objects.len() - rejected,
        rejected,
        report.ignored.len()
    );
    out
}
