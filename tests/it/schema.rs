//! The checked-in JSON Schemas match the config types, and every field in
//! them is documented.

use std::path::Path;

#[test]
fn checked_in_schemas_are_current() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema");
    for (name, text) in mdrelay::config::schemas() {
        let on_disk = std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        assert!(
            on_disk == text,
            "schema/{name} is stale: run `cargo run -- schema`"
        );
    }
}

/// Walk a schema and collect properties without a description.
fn undocumented(v: &serde_json::Value, path: &str, out: &mut Vec<String>) {
    if let Some(props) = v.get("properties").and_then(|p| p.as_object()) {
        for (k, p) in props {
            let documented = p.get("description").is_some()
                || p.get("$ref").is_some() && p.get("description").is_some();
            if !documented {
                out.push(format!("{path}.{k}"));
            }
            undocumented(p, &format!("{path}.{k}"), out);
        }
    }
    if let Some(defs) = v.get("$defs").and_then(|d| d.as_object()) {
        for (k, d) in defs {
            undocumented(d, &format!("$defs.{k}"), out);
        }
    }
}

#[test]
fn every_config_field_is_documented() {
    for (name, text) in mdrelay::config::schemas() {
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let mut missing = Vec::new();
        undocumented(&v, name, &mut missing);
        assert!(
            missing.is_empty(),
            "fields without a doc comment: {missing:?}"
        );
    }
}
