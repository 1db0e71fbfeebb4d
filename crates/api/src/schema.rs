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
