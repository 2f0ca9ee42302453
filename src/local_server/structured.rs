//! Native structured output: Converse's `outputConfig.textFormat` validated as Bedrock
//! validates it (a `json_schema` format whose `schema` is a JSON Schema, as JSON text,
//! with an object at the top).

use serde_json::Value;

use super::api_error::ApiError;

/// The JSON Schema that `outputConfig` asks the answer to conform to, or `None` when it
/// sets no `textFormat` (only `effort`, say).
pub fn parse(output_config: &Value) -> Result<Option<Value>, ApiError> {
    let config = output_config
        .as_object()
        .ok_or_else(|| ApiError::validation("outputConfig must be an object"))?;
    let Some(format) = config.get("textFormat") else {
        return Ok(None);
    };
    let path = "outputConfig.textFormat";
    let format = format
        .as_object()
        .ok_or_else(|| ApiError::validation(format!("{path} must be an object")))?;
    match format.get("type") {
        Some(Value::String(kind)) if kind == "json_schema" => {}
        Some(other) => {
            let shown = other.as_str().map_or(other.to_string(), str::to_string);
            return Err(ApiError::constraint(
                Some(&shown),
                &format!("{path}.type"),
                "satisfy enum value set: [json_schema]",
            ));
        }
        None => return Err(ApiError::missing(&format!("{path}.type"))),
    }
    let structure = format
        .get("structure")
        .ok_or_else(|| ApiError::missing(&format!("{path}.structure")))?;
    let definition = match structure.as_object() {
        Some(members) if members.len() == 1 && members.contains_key("jsonSchema") => {
            &members["jsonSchema"]
        }
        _ => {
            return Err(ApiError::validation(format!(
                "{path}.structure must set exactly one member (jsonSchema)"
            )));
        }
    };
    let path = format!("{path}.structure.jsonSchema");
    for field in ["name", "description"] {
        if let Some(value) = definition.get(field)
            && !value.is_string()
        {
            return Err(ApiError::validation(format!(
                "{path}.{field} must be a string"
            )));
        }
    }
    let text = match definition.get("schema") {
        Some(Value::String(text)) => text,
        None => return Err(ApiError::missing(&format!("{path}.schema"))),
        Some(_) => {
            return Err(ApiError::validation(format!(
                "{path}.schema must be a string holding the JSON schema as JSON text"
            )));
        }
    };
    let schema: Value = serde_json::from_str(text).map_err(|err| {
        ApiError::validation(format!(
            "The JSON schema in {path}.schema is not valid JSON: {err}. Provide the schema as a JSON object serialized to a string."
        ))
    })?;
    let object_at_top = schema.as_object().is_some_and(|top| {
        top.get("type").and_then(Value::as_str) == Some("object")
            || (top.get("type").is_none() && top.contains_key("properties"))
    });
    if !object_at_top {
        return Err(ApiError::validation(format!(
            "The JSON schema in {path}.schema must describe an object at the top (\"type\": \"object\")."
        )));
    }
    if let Err(err) = jsonschema::validator_for(&schema) {
        return Err(ApiError::validation(format!(
            "The JSON schema in {path}.schema is not a valid JSON Schema: {err}"
        )));
    }
    Ok(Some(schema))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(schema: &str) -> Value {
        json!({"textFormat": {"type": "json_schema", "structure": {"jsonSchema": {
            "schema": schema, "name": "ticket", "description": "A support ticket"}}}})
    }

    #[test]
    fn a_json_schema_as_text_is_taken() {
        let schema = parse(&config(
            r#"{"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}"#,
        ))
        .unwrap()
        .unwrap();
        assert_eq!(schema["required"], json!(["a"]));
        assert_eq!(parse(&json!({"effort": "low"})).unwrap(), None);
    }

    #[test]
    fn violations_name_the_member() {
        let cases = [
            (
                json!({"textFormat": {"type": "xml", "structure": {}}}),
                "1 validation error detected: Value 'xml' at 'outputConfig.textFormat.type' failed to satisfy constraint: Member must satisfy enum value set: [json_schema]",
            ),
            (
                json!({"textFormat": {"structure": {}}}),
                "Value null at 'outputConfig.textFormat.type' failed to satisfy constraint: Member must not be null",
            ),
            (
                json!({"textFormat": {"type": "json_schema"}}),
                "at 'outputConfig.textFormat.structure'",
            ),
            (
                json!({"textFormat": {"type": "json_schema", "structure": {"jsonSchema": {}}}}),
                "Value null at 'outputConfig.textFormat.structure.jsonSchema.schema'",
            ),
            (
                json!({"textFormat": {"type": "json_schema", "structure": {"jsonSchema": {"schema": {"type": "object"}}}}}),
                "must be a string holding the JSON schema",
            ),
            (config("{not json"), "is not valid JSON"),
            (config(r#"{"type": "array"}"#), "an object at the top"),
            (config("[1]"), "an object at the top"),
            (
                config(r#"{"type": "object", "properties": {"a": {"type": 7}}}"#),
                "not a valid JSON Schema",
            ),
        ];
        for (body, expected) in cases {
            let err = parse(&body).unwrap_err();
            assert!(
                err.message.contains(expected),
                "{body}: {} does not contain {expected}",
                err.message
            );
        }
    }
}
