//! Hand-written schema fragments for fields schemars cannot describe on its own.

use schemars::{Schema, SchemaGenerator, json_schema};

/// A free-form JSON object kept verbatim by the API server (`x-kubernetes-preserve-unknown-fields`).
pub fn free_form_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// A string-to-string map (labels, annotations).
pub fn string_map(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "additionalProperties": { "type": "string" },
    })
}

/// A string-to-string map of at most 64 entries (labels, annotations, node selectors the API server checks with
/// CEL rules: the bound keeps their cost within the server's budget).
pub fn bounded_string_map(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "maxProperties": 64,
        "additionalProperties": { "type": "string", "maxLength": 4096 },
    })
}

/// Drops the descriptions nested inside a schema, keeping the field's own: for the second and third copies of a
/// type (`steps[].podTemplate`, `status.resolvedSteps`). The upstream texts of `Volume`, `Affinity` and the security
/// contexts are large; three copies made the CRD 460 KB of JSON. `kubectl explain` describes them once, under
/// `spec.podTemplate`.
pub fn without_nested_descriptions(schema: &mut Schema) {
    strip_below(schema, "description");
}

/// Drops the CEL rules (`x-kubernetes-validations`) inside a schema: for status fields that copy a spec type.
/// Only the operator writes status, and rules nested in a status list multiply the CRD's CEL cost estimate past
/// the API server's budget.
pub fn without_validations(schema: &mut Schema) {
    strip_below(schema, "x-kubernetes-validations");
    if let Some(map) = schema.as_object_mut() {
        map.remove("x-kubernetes-validations");
    }
}

/// Removes `key` from every schema nested below the top one (which keeps its own).
fn strip_below(schema: &mut Schema, key: &str) {
    fn strip(value: &mut serde_json::Value, key: &str) {
        match value {
            serde_json::Value::Object(map) => {
                map.remove(key);
                map.values_mut().for_each(|v| strip(v, key));
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(|v| strip(v, key)),
            _ => {}
        }
    }
    if let Some(map) = schema.as_object_mut() {
        for (name, value) in map.iter_mut() {
            if name != key {
                strip(value, key);
            }
        }
    }
}
