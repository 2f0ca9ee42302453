//! Structured output, both ways Bedrock offers it: natively (`outputConfig.textFormat`
//! with the JSON schema, the answer's text a JSON document), or as a forced tool call (the
//! one tool whose input schema is `--schema` and the `toolChoice` that names it, for models
//! without native structured output). Either answer is read back as JSON and checked
//! against the schema.

use std::collections::HashMap;

use aws_sdk_bedrockruntime::types::{
    JsonSchemaDefinition, OutputConfig, OutputFormat, OutputFormatStructure, OutputFormatType,
    SpecificToolChoice, Tool, ToolChoice, ToolConfiguration, ToolInputSchema, ToolSpecification,
};
use aws_smithy_types::{Document, Number};
use serde_json::Value;

use crate::vocab::RequestSettings;
use crate::vocab::schema::{
    NATIVE_DESCRIPTION, OutputSchema, SchemaRoute, TOOL_DESCRIPTION, TOOL_NAME,
};
use crate::vocab::{CallError, ErrorKind};

fn build_error(err: aws_sdk_bedrockruntime::error::BuildError) -> CallError {
    CallError::new(ErrorKind::Other, err.to_string())
}

/// The tool configuration of every call of a `--schema` run.
pub fn configuration(schema: &OutputSchema) -> Result<ToolConfiguration, CallError> {
    let spec = ToolSpecification::builder()
        .name(TOOL_NAME)
        .description(TOOL_DESCRIPTION)
        .input_schema(ToolInputSchema::Json(to_document(schema.json())))
        .build()
        .map_err(build_error)?;
    let choice = SpecificToolChoice::builder()
        .name(TOOL_NAME)
        .build()
        .map_err(build_error)?;
    ToolConfiguration::builder()
        .tools(Tool::ToolSpec(spec))
        .tool_choice(ToolChoice::Tool(choice))
        .build()
        .map_err(build_error)
}

/// Bedrock's native structured output for `schema`: `outputConfig.textFormat` of type
/// `json_schema`, the schema travelling as JSON text.
pub fn output_config(schema: &OutputSchema) -> Result<OutputConfig, CallError> {
    let definition = JsonSchemaDefinition::builder()
        .schema(schema.text())
        .name(TOOL_NAME)
        .description(NATIVE_DESCRIPTION)
        .build()
        .map_err(build_error)?;
    let format = OutputFormat::builder()
        .r#type(OutputFormatType::JsonSchema)
        .structure(OutputFormatStructure::JsonSchema(definition))
        .build()
        .map_err(build_error)?;
    Ok(OutputConfig::builder().text_format(format).build())
}

/// The schema-checked `data` of an answer under `options` (`None` without `--schema`): the
/// forced tool's input, or the JSON text of a native structured answer.
pub fn data(
    options: &RequestSettings,
    tool_input: Option<Value>,
    text: &str,
) -> Result<Option<Value>, CallError> {
    let Some(schema) = &options.schema else {
        return Ok(None);
    };
    let answer = match options.schema_route {
        SchemaRoute::Tool => tool_input,
        SchemaRoute::Native => Some(native_answer(text)?),
    };
    checked(schema, answer).map(Some)
}

/// The JSON document a native structured answer holds as its text.
fn native_answer(text: &str) -> Result<Value, CallError> {
    serde_json::from_str(text.trim()).map_err(|err| {
        CallError::new(
            ErrorKind::SchemaMismatch,
            format!("the structured answer is not valid JSON: {err}"),
        )
    })
}

/// The answer of a `--schema` call (the tool input, or the native answer's JSON), checked
/// against the schema: no answer or one that breaks the schema is a `schema_mismatch` (the
/// pool tries once more).
pub fn checked(schema: &OutputSchema, input: Option<Value>) -> Result<Value, CallError> {
    let input = input.ok_or_else(|| {
        CallError::new(
            ErrorKind::SchemaMismatch,
            format!("the model answered without calling the {TOOL_NAME} tool"),
        )
    })?;
    schema.check(&input).map_err(|violation| {
        CallError::new(
            ErrorKind::SchemaMismatch,
            format!("the answer does not match --schema {violation}"),
        )
    })?;
    Ok(input)
}

/// Parses a streamed tool input (the concatenated `toolUse` deltas).
pub fn streamed_input(partial_json: &str) -> Result<Value, CallError> {
    serde_json::from_str(partial_json).map_err(|err| {
        CallError::new(
            ErrorKind::SchemaMismatch,
            format!("the streamed tool input is not valid JSON: {err}"),
        )
    })
}

pub fn to_document(value: &Value) -> Document {
    match value {
        Value::Null => Document::Null,
        Value::Bool(b) => Document::Bool(*b),
        Value::Number(n) => Document::Number(if let Some(u) = n.as_u64() {
            Number::PosInt(u)
        } else if let Some(i) = n.as_i64() {
            Number::NegInt(i)
        } else {
            Number::Float(n.as_f64().unwrap_or(0.0))
        }),
        Value::String(s) => Document::String(s.clone()),
        Value::Array(items) => Document::Array(items.iter().map(to_document).collect()),
        Value::Object(map) => Document::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), to_document(v)))
                .collect::<HashMap<_, _>>(),
        ),
    }
}

pub fn from_document(document: &Document) -> Value {
    match document {
        Document::Null => Value::Null,
        Document::Bool(b) => Value::Bool(*b),
        Document::Number(Number::PosInt(u)) => Value::from(*u),
        Document::Number(Number::NegInt(i)) => Value::from(*i),
        Document::Number(Number::Float(f)) => {
            serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number)
        }
        Document::String(s) => Value::String(s.clone()),
        Document::Array(items) => Value::Array(items.iter().map(from_document).collect()),
        Document::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), from_document(v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn documents_round_trip() {
        let value = json!({"a": [1, -2, 2.5, "x", true, null], "b": {"c": "d"}});
        assert_eq!(from_document(&to_document(&value)), value);
    }
}
