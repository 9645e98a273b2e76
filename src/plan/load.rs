//! Reading manifests for `plan`: files and directories (recursively, `*.yaml`, `*.yml`,
//! `*.json`, in name order), multi-document YAML, and `kind: List` wrappers. Every document
//! keeps its file and 1-based document index so errors and reports can point at it.

use serde_json::Value;
use std::path::{Path, PathBuf};

/// One Kubernetes object read from the inputs.
#[derive(Debug, Clone)]
pub struct Document {
    pub file: PathBuf,
    /// 1-based position of the YAML document in its file.
    pub index: usize,
    pub object: Value,
}

/// Input that cannot be planned at all (exit status 2).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}, document {index}: malformed YAML: {message}")]
    Yaml {
        path: PathBuf,
        index: usize,
        message: String,
    },
    #[error("{path}, document {index}: not a Kubernetes object: {message}")]
    NotAnObject {
        path: PathBuf,
        index: usize,
        message: String,
    },
}

/// Reads every manifest under `paths`.
pub fn load(paths: &[PathBuf]) -> Result<Vec<Document>, LoadError> {
    let mut files = vec![];
    for p in paths {
        collect_files(p, &mut files)?;
    }
    let mut docs = vec![];
    for file in files {
        let text = std::fs::read_to_string(&file).map_err(|source| LoadError::Read {
            path: file.clone(),
            source,
        })?;
        docs.extend(parse_documents(&file, &text)?);
    }
    Ok(docs)
}

fn collect_files(path: &Path, out: &mut Vec<PathBuf>) -> Result<(), LoadError> {
    let read_err = |source| LoadError::Read {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read_err)?;
    if !meta.is_dir() {
        out.push(path.to_path_buf());
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(read_err)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(read_err)?;
    entries.sort();
    for entry in entries {
        let hidden = entry
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if hidden {
            continue;
        }
        if entry.is_dir() {
            collect_files(&entry, out)?;
        } else if entry
            .extension()
            .is_some_and(|e| e == "yaml" || e == "yml" || e == "json")
        {
            out.push(entry);
        }
    }
    Ok(())
}

/// Splits a YAML stream at `---` document markers. Done by hand (rather than by the parser)
/// so a malformed document is reported with its own index.
fn split_documents(text: &str) -> Vec<String> {
    let mut docs = vec![String::new()];
    for line in text.lines() {
        let is_marker = line == "---" || line.starts_with("--- ") || line.starts_with("---\t");
        if is_marker {
            docs.push(line[3..].trim_start().to_string() + "\n");
        } else if line == "..." {
            docs.push(String::new());
        } else if let Some(current) = docs.last_mut() {
            current.push_str(line);
            current.push('\n');
        }
    }
    docs
}

fn is_blank(doc: &str) -> bool {
    doc.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#')
    })
}

/// Parses one file's documents into objects (empty documents are skipped; their position
/// still counts so the indices match what an editor shows).
pub fn parse_documents(file: &Path, text: &str) -> Result<Vec<Document>, LoadError> {
    let mut out = vec![];
    let mut index = 0;
    for doc in split_documents(text) {
        if is_blank(&doc) {
            // Leading text before the first `---` is only a document when it has content.
            if index > 0 || !out.is_empty() {
                index += 1;
            }
            continue;
        }
        index += 1;
        let value: Value = serde_saphyr::from_str(&doc).map_err(|e| LoadError::Yaml {
            path: file.to_path_buf(),
            index,
            message: e.to_string(),
        })?;
        expand(file, index, value, &mut out)?;
    }
    Ok(out)
}

fn expand(
    file: &Path,
    index: usize,
    value: Value,
    out: &mut Vec<Document>,
) -> Result<(), LoadError> {
    let not_object = |message: &str| LoadError::NotAnObject {
        path: file.to_path_buf(),
        index,
        message: message.to_string(),
    };
    match &value {
        Value::Null => return Ok(()),
        Value::Object(_) => {}
        _ => return Err(not_object("expected a mapping with apiVersion and kind")),
    }
    let kind = value.get("kind").and_then(Value::as_str);
    let api_version = value.get("apiVersion").and_then(Value::as_str);
    match (api_version, kind) {
        (Some("v1"), Some("List")) => {
            let items = value
                .get("items")
                .and_then(Value::as_array)
                .ok_or_else(|| not_object("a List needs an items array"))?;
            for item in items {
                expand(file, index, item.clone(), out)?;
            }
            Ok(())
        }
        (Some(_), Some(_)) => {
            out.push(Document {
                file: file.to_path_buf(),
                index,
                object: value,
            });
            Ok(())
        }
        _ => Err(not_object("apiVersion and kind are required")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<Document>, LoadError> {
        parse_documents(Path::new("m.yaml"), text)
    }

    #[test]
    fn documents_keep_their_index_and_blank_ones_are_skipped() {
        let docs = parse(
            "# leading comment\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: a}\n---\n---\n# only a comment\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n",
        )
        .unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!((docs[0].index, docs[1].index), (1, 4));
        assert_eq!(docs[1].object["metadata"]["name"], "b");
    }

    #[test]
    fn a_file_without_markers_is_one_document() {
        let docs = parse("apiVersion: v1\nkind: Secret\nmetadata:\n  name: a\n").unwrap();
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0].index, 1);
    }

    #[test]
    fn lists_are_expanded() {
        let docs = parse("apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Secret, metadata: {name: a}}\n- {apiVersion: v1, kind: Secret, metadata: {name: b}}\n").unwrap();
        assert_eq!(docs.len(), 2);
    }

    #[test]
    fn malformed_yaml_names_the_document() {
        let err = parse("apiVersion: v1\nkind: Secret\n---\nkind: [unclosed\n").unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("m.yaml, document 2: malformed YAML"),
            "{text}"
        );
        let err = parse("- just\n- a list\n").unwrap_err();
        assert!(
            err.to_string()
                .contains("document 1: not a Kubernetes object")
        );
        let err = parse("metadata: {name: x}\n").unwrap_err();
        assert!(err.to_string().contains("apiVersion and kind are required"));
    }
}
