//! The live table: EmailSettings and SenderIdentities with the columns `kubectl get email -A`
//! shows — the API server's own Table of each kind (its CRD's printer columns, as kubectl asks
//! for them), NAMESPACE first — redrawn in place on a terminal and appended on change
//! otherwise, with the demo's own events printed above it.

use std::io::Write;
use std::time::Instant;

use serde_json::Value;

/// A kind the table shows.
pub struct Kind {
    /// The heading: the kind's name.
    pub title: &'static str,
    /// The collection's path across all namespaces.
    pub path: &'static str,
}

/// The two kinds of `kubectl get email` the demo waits for.
pub const KINDS: [Kind; 2] = [
    Kind {
        title: "EmailSettings",
        path: "/apis/email.ops.dev/v1alpha1/emailsettings",
    },
    Kind {
        title: "SenderIdentity",
        path: "/apis/email.ops.dev/v1alpha1/senderidentities",
    },
];

/// One kind's rows, as kubectl prints them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Table {
    /// Upper-case column names, NAMESPACE first.
    pub headers: Vec<String>,
    /// One row per object, sorted, cells as shown (`<none>` for no value).
    pub rows: Vec<Vec<String>>,
}

/// Reads `kind` as a server-side Table (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`,
/// what kubectl asks for), NAMESPACE first and the columns of priority 0 (kubectl without
/// `-o wide`).
pub async fn fetch(client: &::kube::Client, kind: &Kind) -> Result<Table, String> {
    let request = http::Request::get(format!("{}?includeObject=Metadata", kind.path))
        .header(
            http::header::ACCEPT,
            "application/json;as=Table;v=v1;g=meta.k8s.io",
        )
        .body(Vec::new())
        .map_err(|e| e.to_string())?;
    let table: Value = client
        .request(request)
        .await
        .map_err(|e| format!("{}: {e}", kind.title))?;
    let columns: Vec<(usize, String)> = table
        .get("columnDefinitions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
        .filter(|(_, c)| c.get("priority").and_then(Value::as_i64).unwrap_or(0) == 0)
        .map(|(i, c)| {
            let name = c.get("name").and_then(Value::as_str).unwrap_or_default();
            (i, name.to_ascii_uppercase())
        })
        .collect();
    let mut headers = vec!["NAMESPACE".to_string()];
    headers.extend(columns.iter().map(|(_, name)| name.clone()));
    let mut rows: Vec<Vec<String>> = table
        .get("rows")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|row| {
            let namespace = row
                .pointer("/object/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let cells = row.get("cells").and_then(Value::as_array);
            let mut out = vec![namespace];
            out.extend(
                columns
                    .iter()
                    .map(|(i, _)| match cells.and_then(|c| c.get(*i)) {
                        None | Some(Value::Null) => "<none>".to_string(),
                        Some(Value::String(s)) => s.clone(),
                        Some(other) => other.to_string(),
                    }),
            );
            out
        })
        .collect();
    rows.sort();
    Ok(Table { headers, rows })
}

/// Columns padded to their widest cell, three spaces apart (kubectl's tabwriter padding).
pub fn render(title: &str, table: &Table) -> String {
    let mut widths: Vec<usize> = table.headers.iter().map(|h| h.chars().count()).collect();
    for row in &table.rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: &[String]| {
        let mut out = String::from("  ");
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                let pad = widths.get(i).copied().unwrap_or(0) + 3;
                out.push_str(&format!("{cell:<pad$}"));
            }
        }
        out.trim_end().to_string() + "\n"
    };
    let mut out = format!("{title}\n");
    out.push_str(&line(&table.headers));
    if table.rows.is_empty() {
        out.push_str("  (none)\n");
    }
    for row in &table.rows {
        out.push_str(&line(row));
    }
    out
}

/// The table without its AGE column: what "changed" means for the appending display.
pub fn without_age(table: &Table) -> Table {
    let keep: Vec<bool> = table.headers.iter().map(|h| h != "AGE").collect();
    let pick = |cells: &[String]| {
        cells
            .iter()
            .zip(&keep)
            .filter(|(_, k)| **k)
            .map(|(c, _)| c.clone())
            .collect()
    };
    Table {
        headers: pick(&table.headers),
        rows: table.rows.iter().map(|r| pick(r)).collect(),
    }
}

/// Where the table and the events go: redrawn in place on a terminal (events scroll above
/// it), appended otherwise (the table only when something but its age changed).
pub struct Screen {
    terminal: bool,
    started: Instant,
    /// Lines of the table on screen (terminal), for erasing it.
    drawn: usize,
    /// The last table (terminal: as drawn; otherwise: without ages).
    last: String,
    shown: String,
}

impl Screen {
    /// `started`: the instant event times count from.
    pub fn new(started: Instant) -> Self {
        Self {
            terminal: std::io::IsTerminal::is_terminal(&std::io::stdout()),
            started,
            drawn: 0,
            last: String::new(),
            shown: String::new(),
        }
    }

    fn elapsed(&self) -> String {
        format!("{:>4}s", self.started.elapsed().as_secs())
    }

    fn erase(&mut self, out: &mut impl Write) {
        if self.terminal && self.drawn > 0 {
            // Up to the table's first line, then clear to the end of the screen.
            let _ = write!(out, "\x1b[{}F\x1b[J", self.drawn);
            self.drawn = 0;
        }
    }

    fn draw(&mut self, out: &mut impl Write) {
        if self.terminal && !self.shown.is_empty() {
            let _ = write!(out, "{}", self.shown);
            self.drawn = self.shown.lines().count();
        }
    }

    /// Prints one event line, timed.
    pub fn event(&mut self, line: &str) {
        let mut out = std::io::stdout().lock();
        self.erase(&mut out);
        let _ = writeln!(out, "{}  {line}", self.elapsed());
        self.draw(&mut out);
        let _ = out.flush();
    }

    /// Shows `tables`: `text` is their rendering, `key` the rendering without ages.
    pub fn tables(&mut self, text: &str, key: &str) {
        let mut out = std::io::stdout().lock();
        if self.terminal {
            if text == self.shown {
                return;
            }
            self.erase(&mut out);
            self.shown = text.to_string();
            self.draw(&mut out);
        } else {
            if key == self.last {
                return;
            }
            self.last = key.to_string();
            let _ = write!(out, "\n{}  now:\n{text}\n", self.elapsed());
        }
        let _ = out.flush();
    }

    /// Leaves the last table where it is: what follows is printed below it.
    pub fn release(&mut self) {
        self.drawn = 0;
        self.shown.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Table {
        Table {
            headers: vec![
                "NAMESPACE".into(),
                "NAME".into(),
                "READY".into(),
                "AGE".into(),
            ],
            rows: vec![
                vec![
                    "billing".into(),
                    "notifications".into(),
                    "True".into(),
                    "5s".into(),
                ],
                vec!["shop".into(), "n".into(), "<none>".into(), "12s".into()],
            ],
        }
    }

    #[test]
    fn columns_are_padded_like_kubectl_and_age_is_left_out_of_changes() {
        assert_eq!(
            render("EmailSettings", &table()),
            "EmailSettings\n  NAMESPACE   NAME            READY    AGE\n  billing     notifications   True     5s\n  shop        n               <none>   12s\n"
        );
        let mut older = table();
        older.rows[0][3] = "4s".into();
        assert_eq!(without_age(&older), without_age(&table()));
        assert_eq!(
            without_age(&table()).headers,
            ["NAMESPACE", "NAME", "READY"]
        );
    }
}
