//! What the demo waits for — every EmailSettings and SenderIdentity it applied — how far each
//! has got (its `Ready` condition, and kstatus' `Stalled`), and the reports at the end: the
//! summary when all are Ready, the stuck objects otherwise.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ::kube::api::DynamicObject;
use serde_json::Value;

/// An example object the demo waits for.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Wanted {
    /// EmailSettings or SenderIdentity.
    pub kind: String,
    /// Its namespace (`default` when the manifest names none).
    pub namespace: String,
    /// Its name.
    pub name: String,
}

impl std::fmt::Display for Wanted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// What an object's conditions say.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Readiness {
    /// The object exists and has a `Ready` condition.
    pub reported: bool,
    /// `Ready` is `True`.
    pub ready: bool,
    /// The `Ready` condition's reason and message.
    pub reason: String,
    /// The `Ready` condition's message.
    pub message: String,
    /// kstatus `Stalled`: nothing happens until someone changes something.
    pub stalled: bool,
}

impl Readiness {
    /// From an object's `status.conditions`.
    pub fn of(object: &DynamicObject) -> Self {
        let conditions = object
            .data
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let find = |t: &str| {
            conditions
                .iter()
                .find(|c| c.get("type").and_then(Value::as_str) == Some(t))
        };
        let text = |c: &Value, f: &str| {
            c.get(f)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let is_true = |c: &Value| c.get("status").and_then(Value::as_str) == Some("True");
        match find("Ready") {
            None => Self::default(),
            Some(ready) => Self {
                reported: true,
                ready: is_true(ready),
                reason: text(ready, "reason"),
                message: text(ready, "message"),
                stalled: find("Stalled").is_some_and(is_true),
            },
        }
    }
}

/// Every wanted object's readiness, and when each first became Ready.
pub struct Progress {
    /// Every object waited for, and what its conditions say now.
    pub wanted: BTreeMap<Wanted, Readiness>,
    /// When each became Ready, counted from `since`.
    pub ready_after: BTreeMap<Wanted, Duration>,
    since: Instant,
    changed: Instant,
}

impl Progress {
    /// Waits for `wanted`; times count from `since` (the operator's start).
    pub fn new(wanted: Vec<Wanted>, since: Instant) -> Self {
        Self {
            wanted: wanted
                .into_iter()
                .map(|w| (w, Readiness::default()))
                .collect(),
            ready_after: BTreeMap::new(),
            since,
            changed: Instant::now(),
        }
    }

    /// Takes in the objects of one kind as listed now; returns those that just became Ready.
    pub fn update(&mut self, kind: &str, objects: &[DynamicObject]) -> Vec<Wanted> {
        let mut now_ready = vec![];
        for (wanted, readiness) in self.wanted.iter_mut().filter(|(w, _)| w.kind == kind) {
            let current = objects
                .iter()
                .find(|o| {
                    o.metadata.namespace.as_deref() == Some(wanted.namespace.as_str())
                        && o.metadata.name.as_deref() == Some(wanted.name.as_str())
                })
                .map(Readiness::of)
                .unwrap_or_default();
            if current != *readiness {
                self.changed = Instant::now();
                if current.ready && !self.ready_after.contains_key(wanted) {
                    self.ready_after
                        .insert(wanted.clone(), self.since.elapsed());
                    now_ready.push(wanted.clone());
                }
                *readiness = current;
            }
        }
        now_ready
    }

    /// Every wanted object is Ready now.
    pub fn all_ready(&self) -> bool {
        self.wanted.values().all(|r| r.ready)
    }

    /// Nothing will move without someone: each object that is not Ready is Stalled, and none
    /// changed for `quiet`.
    pub fn settled(&self, quiet: Duration) -> bool {
        !self.all_ready()
            && self.wanted.values().all(|r| r.ready || r.stalled)
            && self.changed.elapsed() >= quiet
    }

    /// The objects that are not Ready, with why.
    pub fn stuck(&self) -> Vec<(&Wanted, &Readiness)> {
        self.wanted.iter().filter(|(_, r)| !r.ready).collect()
    }
}

/// Seconds, as `12s` or `2m05s`.
pub fn seconds(d: Duration) -> String {
    let s = d.as_secs();
    if s < 120 {
        format!("{s}s")
    } else {
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

/// The lines naming each stuck object with its Ready condition's reason and message.
pub fn stuck_report(progress: &Progress, waited: Duration) -> String {
    let stuck = progress.stuck();
    let mut out = format!(
        "{} of {} example objects are not Ready after {}:\n",
        stuck.len(),
        progress.wanted.len(),
        seconds(waited)
    );
    for (wanted, readiness) in stuck {
        let why = if !readiness.reported {
            "no Ready condition yet (not reconciled)".to_string()
        } else {
            let stalled = if readiness.stalled { " (Stalled)" } else { "" };
            format!("{}{stalled}: {}", readiness.reason, readiness.message)
        };
        out.push_str(&format!("  {wanted}: {why}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(name: &str, conditions: Value) -> DynamicObject {
        let mut o: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "email.ops.dev/v1alpha1", "kind": "EmailSettings",
            "metadata": {"name": name, "namespace": "billing"},
        }))
        .expect("object");
        o.data = json!({"status": {"conditions": conditions}});
        o
    }

    fn wanted(name: &str) -> Wanted {
        Wanted {
            kind: "EmailSettings".into(),
            namespace: "billing".into(),
            name: name.into(),
        }
    }

    #[test]
    fn ready_stalled_and_stuck_objects_are_told_apart() {
        let mut progress = Progress::new(vec![wanted("a"), wanted("b")], Instant::now());
        assert!(!progress.all_ready());
        let a = object(
            "a",
            json!([{"type": "Ready", "status": "True", "reason": "Published", "message": "ok"}]),
        );
        let b = object(
            "b",
            json!([
                {"type": "Ready", "status": "False", "reason": "BadCredentials", "message": "Authentication failed: Bad username / password"},
                {"type": "Stalled", "status": "True", "reason": "BadCredentials", "message": "…"}
            ]),
        );
        assert_eq!(progress.update("EmailSettings", &[a, b]), [wanted("a")]);
        assert!(!progress.all_ready());
        assert!(progress.settled(Duration::ZERO));
        assert!(
            !progress.settled(Duration::from_secs(60)),
            "not quiet long enough"
        );
        let report = stuck_report(&progress, Duration::from_secs(61));
        assert!(report.starts_with("1 of 2 example objects are not Ready after 61s"));
        assert!(report.contains(
            "EmailSettings billing/b: BadCredentials (Stalled): Authentication failed: Bad username / password"
        ));
        assert!(!report.contains("billing/a"));
    }

    #[test]
    fn an_object_without_status_is_neither_ready_nor_settled() {
        let mut progress = Progress::new(vec![wanted("a")], Instant::now());
        assert!(progress.update("EmailSettings", &[]).is_empty());
        assert!(!progress.settled(Duration::ZERO));
        assert!(stuck_report(&progress, Duration::from_secs(5)).contains("no Ready condition yet"));
        assert_eq!(seconds(Duration::from_secs(125)), "2m05s");
    }
}
