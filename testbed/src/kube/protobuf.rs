//! Decoding of the Kubernetes protobuf envelope for the few built-in kinds typed clients
//! create: `kubectl create namespace|secret|configmap` send
//! `application/vnd.kubernetes.protobuf` bodies (the magic `k8s\0`, then a
//! `runtime.Unknown` holding `typeMeta` and the object's bytes). Only the fields these
//! kinds and `ObjectMeta` carry on create are decoded; the result is the object's JSON.

use base64::Engine;
use serde_json::{Map, Value, json};

/// One protobuf field: number and payload.
enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

fn varint(buf: &[u8], pos: &mut usize) -> Result<u64, String> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *buf.get(*pos).ok_or("truncated varint")?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("varint too long".into())
}

fn fields(buf: &[u8]) -> Result<Vec<(u64, Field<'_>)>, String> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let key = varint(buf, &mut pos)?;
        let (number, wire) = (key >> 3, key & 7);
        let field = match wire {
            0 => Field::Varint(varint(buf, &mut pos)?),
            2 => {
                let len = usize::try_from(varint(buf, &mut pos)?).map_err(|e| e.to_string())?;
                let end = pos
                    .checked_add(len)
                    .filter(|e| *e <= buf.len())
                    .ok_or("truncated field")?;
                let bytes = &buf[pos..end];
                pos = end;
                Field::Bytes(bytes)
            }
            1 => {
                pos += 8;
                Field::Varint(0)
            }
            5 => {
                pos += 4;
                Field::Varint(0)
            }
            other => return Err(format!("unsupported wire type {other}")),
        };
        out.push((number, field));
    }
    Ok(out)
}

fn text(bytes: &[u8]) -> Result<String, String> {
    String::from_utf8(bytes.to_vec()).map_err(|e| e.to_string())
}

/// A `map<string, string>` (or `map<string, bytes>` as base64) entry.
fn map_entry(bytes: &[u8], base64_values: bool) -> Result<(String, Value), String> {
    let (mut key, mut value) = (String::new(), Value::String(String::new()));
    for (n, f) in fields(bytes)? {
        match (n, f) {
            (1, Field::Bytes(b)) => key = text(b)?,
            (2, Field::Bytes(b)) if base64_values => {
                value = json!(base64::engine::general_purpose::STANDARD.encode(b))
            }
            (2, Field::Bytes(b)) => value = json!(text(b)?),
            _ => {}
        }
    }
    Ok((key, value))
}

fn insert_entry(obj: &mut Map<String, Value>, name: &str, entry: (String, Value)) {
    if let Value::Object(m) = obj.entry(name).or_insert_with(|| json!({})) {
        m.insert(entry.0, entry.1);
    }
}

fn push(obj: &mut Map<String, Value>, name: &str, item: Value) {
    if let Value::Array(a) = obj.entry(name).or_insert_with(|| json!([])) {
        a.push(item);
    }
}

fn owner_reference(bytes: &[u8]) -> Result<Value, String> {
    let mut r = Map::new();
    for (n, f) in fields(bytes)? {
        match (n, f) {
            (1, Field::Bytes(b)) => r.insert("kind".into(), json!(text(b)?)),
            (3, Field::Bytes(b)) => r.insert("name".into(), json!(text(b)?)),
            (4, Field::Bytes(b)) => r.insert("uid".into(), json!(text(b)?)),
            (5, Field::Bytes(b)) => r.insert("apiVersion".into(), json!(text(b)?)),
            (6, Field::Varint(v)) => r.insert("controller".into(), json!(v != 0)),
            (7, Field::Varint(v)) => r.insert("blockOwnerDeletion".into(), json!(v != 0)),
            _ => None,
        };
    }
    Ok(Value::Object(r))
}

fn object_meta(bytes: &[u8]) -> Result<Value, String> {
    let mut m = Map::new();
    // Protobuf writes unset strings as empty ones; JSON leaves them out.
    let set = |m: &mut Map<String, Value>, name: &str, b: &[u8]| -> Result<(), String> {
        let t = text(b)?;
        if !t.is_empty() {
            m.insert(name.into(), json!(t));
        }
        Ok(())
    };
    for (n, f) in fields(bytes)? {
        match (n, f) {
            (1, Field::Bytes(b)) => set(&mut m, "name", b)?,
            (2, Field::Bytes(b)) => set(&mut m, "generateName", b)?,
            (3, Field::Bytes(b)) => set(&mut m, "namespace", b)?,
            (6, Field::Bytes(b)) => set(&mut m, "resourceVersion", b)?,
            (11, Field::Bytes(b)) => insert_entry(&mut m, "labels", map_entry(b, false)?),
            (12, Field::Bytes(b)) => insert_entry(&mut m, "annotations", map_entry(b, false)?),
            (13, Field::Bytes(b)) => push(&mut m, "ownerReferences", owner_reference(b)?),
            (14, Field::Bytes(b)) => push(&mut m, "finalizers", json!(text(b)?)),
            _ => {}
        }
    }
    Ok(Value::Object(m))
}

/// The JSON of a `Secret`, `ConfigMap` or `Namespace` in protobuf.
fn object(kind: &str, bytes: &[u8]) -> Result<Value, String> {
    let mut o = Map::new();
    for (n, f) in fields(bytes)? {
        let Field::Bytes(b) = f else {
            if let (Field::Varint(v), "Secret", 5) | (Field::Varint(v), "ConfigMap", 4) =
                (f, kind, n)
            {
                o.insert("immutable".into(), json!(v != 0));
            }
            continue;
        };
        match (kind, n) {
            (_, 1) => {
                o.insert("metadata".into(), object_meta(b)?);
            }
            ("Secret", 2) | ("ConfigMap", 3) => {
                let name = if kind == "Secret" {
                    "data"
                } else {
                    "binaryData"
                };
                insert_entry(&mut o, name, map_entry(b, true)?);
            }
            ("Secret", 3) if !b.is_empty() => {
                o.insert("type".into(), json!(text(b)?));
            }
            ("Secret", 4) => insert_entry(&mut o, "stringData", map_entry(b, false)?),
            ("ConfigMap", 2) => insert_entry(&mut o, "data", map_entry(b, false)?),
            ("Namespace", 2) => {
                let mut spec = Map::new();
                for (sn, sf) in fields(b)? {
                    if let (1, Field::Bytes(fb)) = (sn, sf) {
                        push(&mut spec, "finalizers", json!(text(fb)?));
                    }
                }
                o.insert("spec".into(), Value::Object(spec));
            }
            _ => {}
        }
    }
    Ok(Value::Object(o))
}

/// Decode a `application/vnd.kubernetes.protobuf` body of a supported kind into JSON.
pub fn decode(body: &[u8]) -> Result<Value, String> {
    let envelope = body
        .strip_prefix(b"k8s\0")
        .ok_or("missing the k8s protobuf magic prefix")?;
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), None);
    for (n, f) in fields(envelope)? {
        match (n, f) {
            (1, Field::Bytes(type_meta)) => {
                for (tn, tf) in fields(type_meta)? {
                    match (tn, tf) {
                        (1, Field::Bytes(b)) => api_version = text(b)?,
                        (2, Field::Bytes(b)) => kind = text(b)?,
                        _ => {}
                    }
                }
            }
            (2, Field::Bytes(b)) => raw = Some(b),
            _ => {}
        }
    }
    if !matches!(kind.as_str(), "Secret" | "ConfigMap" | "Namespace") || api_version != "v1" {
        return Err(format!(
            "protobuf bodies are only understood for v1 Secret, ConfigMap and Namespace, not {api_version} {kind}"
        ));
    }
    let mut obj = object(&kind, raw.unwrap_or_default())?;
    obj["apiVersion"] = json!(api_version);
    obj["kind"] = json!(kind);
    Ok(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(number: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![(number << 3) | 2, payload.len() as u8];
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn decodes_a_secret_envelope() {
        let meta = [
            field(1, b"s1"),
            field(3, b"ns"),
            field(11, &[field(1, b"app"), field(2, b"web")].concat()),
        ]
        .concat();
        let secret = [
            field(1, &meta),
            field(2, &[field(1, b"password"), field(2, b"hunter2")].concat()),
            field(3, b"Opaque"),
        ]
        .concat();
        let type_meta = [field(1, b"v1"), field(2, b"Secret")].concat();
        let body = [b"k8s\0".to_vec(), field(1, &type_meta), field(2, &secret)].concat();
        let obj = decode(&body).expect("decodes");
        assert_eq!(
            obj,
            json!({
                "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {"name": "s1", "namespace": "ns", "labels": {"app": "web"}},
                "data": {"password": "aHVudGVyMg=="}
            })
        );
        assert!(decode(b"{}").is_err());
    }
}
