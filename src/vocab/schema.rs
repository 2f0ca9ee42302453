//! The output schema of `--schema`: a JSON Schema read once, checked to be a valid schema
//! with an object at the top (a tool's input is always an object), compiled once, and used
//! for every answer. The runner sends it as Bedrock's native structured output
//! (`outputConfig.textFormat`) or as the input schema of one forced tool ([`SchemaRoute`]);
//! answers are checked against it here either way.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// The name of the one tool a `--schema` run offers; the model is forced to call it.
pub const TOOL_NAME: &str = "record_output";
/// What the tool is for, as the model reads it.
pub const TOOL_DESCRIPTION: &str =
    "Record the answer for this input. Always call this tool with every field filled in.";

/// What native structured output is for, as the model reads it.
pub const NATIVE_DESCRIPTION: &str = "The answer for this input, with every field filled in.";

/// How `--schema` reaches the model (`--schema-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SchemaMode {
    /// Native where the model offers it, else the forced tool.
    Auto,
    /// Bedrock's structured output: `outputConfig.textFormat` with the JSON schema.
    Native,
    /// One tool with the schema as its input, and a forced tool choice.
    Tool,
}

/// How one run sends its schema, decided from `--schema-mode`, the model and the route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SchemaRoute {
    Native,
    Tool,
}

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("cannot read the schema {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the schema {path} is not valid JSON: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error(
        "the schema {path} must describe an object at the top (\"type\": \"object\"): a tool's input is always an object"
    )]
    NotObject { path: PathBuf },
    #[error("the schema {path} is not a valid JSON Schema: {reason} (at {pointer})")]
    Invalid {
        path: PathBuf,
        pointer: String,
        reason: String,
    },
}

/// The first way an answer breaks the schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// JSON pointer into the answer ("" is the whole answer).
    pub pointer: String,
    pub reason: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = if self.pointer.is_empty() {
            "/"
        } else {
            &self.pointer
        };
        write!(f, "at {at}: {}", self.reason)
    }
}

/// A compiled output schema.
pub struct OutputSchema {
    json: Value,
    /// The schema as sent, for the input estimate and the run's fingerprint.
    text: String,
    /// The file as written: `export` takes the order of its properties from it.
    source: Vec<u8>,
    validator: jsonschema::Validator,
}

impl std::fmt::Debug for OutputSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutputSchema")
            .field("json", &self.json)
            .finish_non_exhaustive()
    }
}

impl OutputSchema {
    pub fn read(path: &Path) -> Result<OutputSchema, SchemaError> {
        let bytes = std::fs::read(path).map_err(|source| SchemaError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let json: Value = serde_json::from_slice(&bytes).map_err(|source| SchemaError::Json {
            path: path.to_path_buf(),
            source,
        })?;
        let mut schema = OutputSchema::new(json).map_err(|err| match err {
            Rejected::NotObject => SchemaError::NotObject {
                path: path.to_path_buf(),
            },
            Rejected::Invalid { pointer, reason } => SchemaError::Invalid {
                path: path.to_path_buf(),
                pointer,
                reason,
            },
        })?;
        schema.source = bytes;
        Ok(schema)
    }

    fn new(json: Value) -> Result<OutputSchema, Rejected> {
        let top_is_object = json.as_object().is_some_and(|top| {
            top.get("type").and_then(Value::as_str) == Some("object")
                || (top.get("type").is_none() && top.contains_key("properties"))
        });
        if !top_is_object {
            return Err(Rejected::NotObject);
        }
        let validator = jsonschema::validator_for(&json).map_err(|err| Rejected::Invalid {
            pointer: pointer_or_root(err.instance_path().to_string()),
            reason: err.to_string(),
        })?;
        let text = serde_json::to_string(&json).unwrap_or_default();
        Ok(OutputSchema {
            source: text.clone().into_bytes(),
            json,
            text,
            validator,
        })
    }

    pub fn json(&self) -> &Value {
        &self.json
    }

    /// The schema file's bytes as the user wrote them.
    pub fn source(&self) -> &[u8] {
        &self.source
    }

    /// The schema as compact JSON text: what native structured output sends.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The first thing in the schema that Bedrock's native structured output refuses (with
    /// a 400 before any generation), as `keyword at /pointer`; `None` when it takes the
    /// schema. AWS's list: no numeric bounds (`minimum`, `maximum`, their exclusive forms,
    /// `multipleOf`), no string lengths (`minLength`, `maxLength`), `additionalProperties`
    /// only `false`, `minItems` only 0 or 1, and `$ref` only inside the schema.
    pub fn native_obstacle(&self) -> Option<String> {
        fn walk(value: &Value, pointer: &str) -> Option<String> {
            match value {
                Value::Object(map) => {
                    for (key, inner) in map {
                        let here =
                            format!("{pointer}/{}", key.replace('~', "~0").replace('/', "~1"));
                        // Under `properties` (and the like) the keys are names, not keywords.
                        let names = ["/properties", "/$defs", "/definitions"]
                            .iter()
                            .any(|parent| pointer.ends_with(parent));
                        let refused = !names
                            && match key.as_str() {
                                "minimum" | "maximum" | "exclusiveMinimum" | "exclusiveMaximum"
                                | "multipleOf" | "minLength" | "maxLength" => true,
                                "additionalProperties" => inner != &Value::Bool(false),
                                "minItems" => inner.as_u64().is_none_or(|n| n > 1),
                                "$ref" => inner.as_str().is_none_or(|r| !r.starts_with('#')),
                                _ => false,
                            };
                        if refused {
                            return Some(format!("{key} at {pointer}/"));
                        }
                        if let Some(found) = walk(inner, &here) {
                            return Some(found);
                        }
                    }
                    None
                }
                Value::Array(items) => items
                    .iter()
                    .enumerate()
                    .find_map(|(i, item)| walk(item, &format!("{pointer}/{i}"))),
                _ => None,
            }
        }
        walk(&self.json, "")
    }

    /// The schema's length in characters as the request carries it.
    pub fn chars(&self) -> usize {
        self.text.chars().count()
    }

    /// A stable fingerprint of the schema, so a resume with another schema is refused.
    pub fn fingerprint(&self) -> String {
        format!("{:016x}", xxhash_rust::xxh3::xxh3_64(self.text.as_bytes()))
    }

    /// The first violation of `answer`, if any.
    pub fn check(&self, answer: &Value) -> Result<(), Violation> {
        self.validator.validate(answer).map_err(|err| Violation {
            pointer: err.instance_path().to_string(),
            reason: err.to_string(),
        })
    }
}

enum Rejected {
    NotObject,
    Invalid { pointer: String, reason: String },
}

fn pointer_or_root(pointer: String) -> String {
    if pointer.is_empty() {
        "/".into()
    } else {
        pointer
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tickets() -> OutputSchema {
        OutputSchema::new(json!({
            "type": "object",
            "properties": {
                "category": {"type": "string", "enum": ["billing", "bug", "other"]},
                "urgency": {"type": "integer", "minimum": 1, "maximum": 5}
            },
            "required": ["category", "urgency"]
        }))
        .map_err(|_| "rejected")
        .unwrap()
    }

    #[test]
    fn valid_answer_passes() {
        assert_eq!(
            tickets().check(&json!({"category": "bug", "urgency": 3})),
            Ok(())
        );
    }

    #[test]
    fn violation_names_pointer_and_reason() {
        let violation = tickets()
            .check(&json!({"category": "bug", "urgency": 9}))
            .unwrap_err();
        assert_eq!(violation.pointer, "/urgency");
        assert!(violation.reason.contains('9'), "{violation}");
        let missing = tickets().check(&json!({"category": "bug"})).unwrap_err();
        assert!(missing.reason.contains("urgency"), "{missing}");
    }

    #[test]
    fn native_obstacles_are_named_with_where_they_are() {
        let schema = |json: Value| OutputSchema::new(json).ok().unwrap();
        let plain = schema(serde_json::json!({"type": "object", "properties": {
            "category": {"type": "string", "enum": ["a", "b"]},
            "minimum": {"type": "integer"},
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1}
        }, "required": ["category"], "additionalProperties": false}));
        assert_eq!(plain.native_obstacle(), None);
        let bounded = schema(serde_json::json!({"type": "object", "properties": {
            "urgency": {"type": "integer", "minimum": 1}}}));
        assert_eq!(
            bounded.native_obstacle().as_deref(),
            Some("minimum at /properties/urgency/")
        );
        let open = schema(serde_json::json!({"type": "object", "additionalProperties": true}));
        assert_eq!(
            open.native_obstacle().as_deref(),
            Some("additionalProperties at /")
        );
    }

    #[test]
    fn rejects_non_object_and_invalid_schemas() {
        assert!(matches!(
            OutputSchema::new(json!({"type": "string"})),
            Err(Rejected::NotObject)
        ));
        assert!(matches!(
            OutputSchema::new(json!([1, 2])),
            Err(Rejected::NotObject)
        ));
        assert!(matches!(
            OutputSchema::new(json!({"type": "object", "properties": {"a": {"type": "strin"}}})),
            Err(Rejected::Invalid { .. })
        ));
        assert!(matches!(
            OutputSchema::new(json!({"type": "object", "required": "a"})),
            Err(Rejected::Invalid { .. })
        ));
    }
}
