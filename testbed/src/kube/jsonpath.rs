//! The JSONPath subset `additionalPrinterColumns` use: `.a.b`, `.a[0]`, `.a[*].b` and
//! filters like `.status.conditions[?(@.type=="Ready")].status`.

use serde_json::Value;

#[derive(Debug)]
enum Step {
    Field(String),
    Index(usize),
    All,
    Filter(Vec<String>, String),
}

fn parse(path: &str) -> Option<Vec<Step>> {
    let p = path.trim().trim_start_matches('{').trim_end_matches('}');
    let mut steps = Vec::new();
    let mut rest = p.strip_prefix('$').unwrap_or(p);
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            if end > 0 {
                steps.push(Step::Field(r[..end].to_string()));
            }
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let close = r.find(']')?;
            let inner = &r[..close];
            // A filter may contain ']' only inside quotes; conditions never do in practice.
            if let Some(f) = inner.strip_prefix("?(").and_then(|f| f.strip_suffix(')')) {
                let (lhs, rhs) = f.split_once("==")?;
                let field: Vec<String> = lhs
                    .trim()
                    .trim_start_matches('@')
                    .split('.')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect();
                let value = rhs
                    .trim()
                    .trim_matches(|c| c == '"' || c == '\'')
                    .to_string();
                steps.push(Step::Filter(field, value));
            } else if inner == "*" {
                steps.push(Step::All);
            } else if let Ok(i) = inner.parse() {
                steps.push(Step::Index(i));
            } else {
                steps.push(Step::Field(
                    inner.trim_matches(|c| c == '"' || c == '\'').to_string(),
                ));
            }
            rest = &r[close + 1..];
        } else {
            return None;
        }
    }
    Some(steps)
}

/// All values `path` selects in `obj` (empty when it selects nothing or does not parse).
pub fn select(obj: &Value, path: &str) -> Vec<Value> {
    let Some(steps) = parse(path) else {
        return Vec::new();
    };
    let mut current = vec![obj.clone()];
    for step in steps {
        let mut next = Vec::new();
        for v in current {
            match &step {
                Step::Field(f) => next.extend(v.get(f.as_str()).cloned()),
                Step::Index(i) => next.extend(v.get(*i).cloned()),
                Step::All => next.extend(v.as_array().cloned().unwrap_or_default()),
                Step::Filter(field, want) => {
                    for item in v.as_array().cloned().unwrap_or_default() {
                        let got = field
                            .iter()
                            .try_fold(&item, |cur, seg| cur.get(seg.as_str()));
                        let matches = match got {
                            Some(Value::String(s)) => s == want,
                            Some(other) => {
                                serde_json::from_str::<Value>(want).ok().as_ref() == Some(other)
                            }
                            None => false,
                        };
                        if matches {
                            next.push(item);
                        }
                    }
                }
            }
        }
        current = next;
    }
    current
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn selects_fields_indexes_and_filters() {
        let obj = json!({"spec": {"a": [1, 2]}, "status": {"conditions": [{"type": "X", "status": "False"}, {"type": "Ready", "status": "True"}]}});
        assert_eq!(select(&obj, ".spec.a[1]"), vec![json!(2)]);
        assert_eq!(
            select(&obj, ".status.conditions[?(@.type==\"Ready\")].status"),
            vec![json!("True")]
        );
        assert_eq!(
            select(&obj, ".status.conditions[*].type"),
            vec![json!("X"), json!("Ready")]
        );
        assert!(select(&obj, ".missing.x").is_empty());
    }
}
