//! Tool use on the local server: `toolConfig` and `toolChoice` validated as Bedrock
//! validates them, and the fake model's tool input: a value that conforms to the tool's
//! input schema, derived from the prompt text so the same request gets the same answer
//! (or, under the schema-violation fault, a value that breaks it).

use serde_json::{Map, Value, json};
use xxhash_rust::xxh3::xxh3_64_with_seed;

use super::api_error::ApiError;

const MAX_TOOL_NAME: usize = 64;

/// A tool the model is made to call, and the input schema its answer must conform to.
#[derive(Debug, Clone)]
pub struct ForcedTool {
    pub name: String,
    pub schema: Value,
}

fn invalid_name(name: &str) -> bool {
    name.is_empty()
        || name.len() > MAX_TOOL_NAME
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Validates `toolConfig`, passing each tool to `absorb` (tools are input tokens), and
/// returns the tool the model must call, if the choice forces one.
pub fn parse(
    config: &Value,
    absorb: &mut dyn FnMut(&Value),
) -> Result<Option<ForcedTool>, ApiError> {
    let tools = config
        .get("tools")
        .and_then(Value::as_array)
        .filter(|tools| !tools.is_empty())
        .ok_or_else(|| {
            ApiError::validation("toolConfig.tools is required and must hold at least one tool")
        })?;
    let mut specs: Vec<(&str, &Value)> = Vec::new();
    for (i, tool) in tools.iter().enumerate() {
        let path = format!("toolConfig.tools.{i}");
        let object = tool.as_object().filter(|o| o.len() == 1).ok_or_else(|| {
            ApiError::validation(format!(
                "{path} must set exactly one member (toolSpec, cachePoint)"
            ))
        })?;
        if object.contains_key("cachePoint") {
            absorb(tool);
            continue;
        }
        let spec = object.get("toolSpec").ok_or_else(|| {
            ApiError::validation(format!("{path} must be a toolSpec or a cachePoint"))
        })?;
        let name = spec.get("name").and_then(Value::as_str).unwrap_or("");
        if invalid_name(name) {
            return Err(ApiError::validation(format!(
                "Value '{name}' at '{path}.member.toolSpec.name' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_-]+ and have length between 1 and {MAX_TOOL_NAME}"
            )));
        }
        if specs.iter().any(|(seen, _)| *seen == name) {
            return Err(ApiError::validation(format!(
                "The toolConfig field contains duplicate tool names: {name}"
            )));
        }
        let schema = spec
            .get("inputSchema")
            .and_then(|s| s.get("json"))
            .filter(|s| s.is_object())
            .ok_or_else(|| {
                ApiError::validation(format!(
                    "{path}.toolSpec.inputSchema.json is required and must be a JSON Schema object"
                ))
            })?;
        if schema.get("type").and_then(Value::as_str) != Some("object") {
            return Err(ApiError::validation(format!(
                "{path}.toolSpec.inputSchema.json must have \"type\": \"object\" at the top"
            )));
        }
        absorb(tool);
        specs.push((name, schema));
    }
    if specs.is_empty() {
        return Err(ApiError::validation(
            "toolConfig.tools must hold at least one toolSpec",
        ));
    }
    let Some(choice) = config.get("toolChoice") else {
        return Ok(None);
    };
    let (kind, value) = choice
        .as_object()
        .filter(|o| o.len() == 1)
        .and_then(|o| o.iter().next())
        .ok_or_else(|| {
            ApiError::validation(
                "toolConfig.toolChoice must set exactly one member (auto, any, tool)",
            )
        })?;
    let forced = |(name, schema): (&str, &Value)| ForcedTool {
        name: name.to_string(),
        schema: schema.clone(),
    };
    match kind.as_str() {
        "auto" => Ok(None),
        "any" => Ok(specs.first().copied().map(forced)),
        "tool" => {
            let name = value.get("name").and_then(Value::as_str).unwrap_or("");
            specs
                .iter()
                .copied()
                .find(|(spec, _)| *spec == name)
                .map(forced)
                .map(Some)
                .ok_or_else(|| {
                    ApiError::validation(format!(
                        "toolConfig.toolChoice.tool.name {name:?} does not name a tool in toolConfig.tools"
                    ))
                })
        }
        other => Err(ApiError::validation(format!(
            "toolConfig.toolChoice.{other} is not a tool choice; use auto, any or tool"
        ))),
    }
}

/// A value conforming to `schema`, derived from `text`: the same text gives the same value.
pub fn conforming(schema: &Value, text: &str) -> Value {
    let words: Vec<&str> = text.split_whitespace().collect();
    Generator {
        words: &words,
        text,
    }
    .value(schema, "")
}

/// `conforming`, then broken: a required field dropped, or the first field of the wrong
/// type, so a validator finds a violation.
pub fn violating(schema: &Value, text: &str) -> Value {
    let mut value = conforming(schema, text);
    let Some(object) = value.as_object_mut() else {
        return json!("not an object");
    };
    let required = schema
        .get("required")
        .and_then(Value::as_array)
        .and_then(|r| r.first())
        .and_then(Value::as_str);
    if let Some(name) = required {
        object.remove(name);
    } else if let Some((name, property)) = schema
        .get("properties")
        .and_then(Value::as_object)
        .and_then(|p| p.iter().next())
    {
        let wrong = match property.get("type").and_then(Value::as_str) {
            Some("string") => json!(12345),
            _ => json!({"unexpected": "shape"}),
        };
        object.insert(name.clone(), wrong);
    }
    value
}

struct Generator<'a> {
    words: &'a [&'a str],
    text: &'a str,
}

impl Generator<'_> {
    /// A number in `0..n` drawn from the text and where in the answer it goes.
    fn pick(&self, path: &str, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        (xxh3_64_with_seed(self.text.as_bytes(), xxh3_64_with_seed(path.as_bytes(), 7)) % n as u64)
            as usize
    }

    fn value(&self, schema: &Value, path: &str) -> Value {
        if let Some(constant) = schema.get("const") {
            return constant.clone();
        }
        if let Some(options) = schema.get("enum").and_then(Value::as_array)
            && !options.is_empty()
        {
            return options[self.pick(path, options.len())].clone();
        }
        for union in ["anyOf", "oneOf"] {
            if let Some(first) = schema
                .get(union)
                .and_then(Value::as_array)
                .and_then(|a| a.first())
            {
                return self.value(first, path);
            }
        }
        let kind = match schema.get("type") {
            Some(Value::String(kind)) => kind.as_str(),
            Some(Value::Array(kinds)) => kinds
                .iter()
                .filter_map(Value::as_str)
                .find(|k| *k != "null")
                .unwrap_or("null"),
            _ if schema.get("properties").is_some() => "object",
            _ => "string",
        };
        match kind {
            "object" => self.object(schema, path),
            "array" => {
                let min = schema.get("minItems").and_then(Value::as_u64).unwrap_or(1);
                let max = schema.get("maxItems").and_then(Value::as_u64).unwrap_or(3);
                let count = min.max(1.min(max));
                let items = schema.get("items").cloned().unwrap_or(json!({}));
                Value::Array(
                    (0..count)
                        .map(|i| self.value(&items, &format!("{path}/{i}")))
                        .collect(),
                )
            }
            "integer" | "number" => {
                let min = schema.get("minimum").and_then(Value::as_f64).unwrap_or(0.0);
                let max = schema
                    .get("maximum")
                    .and_then(Value::as_f64)
                    .unwrap_or(min + 100.0);
                if kind == "number" {
                    // A point between the bounds, on a grid of a thousandth of the range.
                    let share = self.pick(path, 1001) as f64 / 1000.0;
                    return json!(min + (max - min).max(0.0) * share);
                }
                let span = (max.floor() - min.ceil()).max(0.0) as usize;
                json!(min.ceil() as i64 + self.pick(path, span + 1) as i64)
            }
            "boolean" => json!(self.pick(path, 2) == 1),
            "null" => Value::Null,
            _ => self.string(schema, path),
        }
    }

    fn object(&self, schema: &Value, path: &str) -> Value {
        let mut object = Map::new();
        if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
            for (name, property) in properties {
                object.insert(
                    name.clone(),
                    self.value(property, &format!("{path}/{name}")),
                );
            }
        }
        Value::Object(object)
    }

    /// A run of the prompt's words, within the length bounds.
    fn string(&self, schema: &Value, path: &str) -> Value {
        let min = schema.get("minLength").and_then(Value::as_u64).unwrap_or(0) as usize;
        let max = schema
            .get("maxLength")
            .and_then(Value::as_u64)
            .map_or(usize::MAX, |m| m as usize);
        let mut text = if self.words.is_empty() {
            "n/a".to_string()
        } else {
            let start = self.pick(path, self.words.len());
            let end = (start + 8).min(self.words.len());
            self.words[start..end].join(" ")
        };
        if text.chars().count() > max {
            text = text.chars().take(max).collect();
        }
        while text.chars().count() < min {
            text.push('x');
        }
        Value::String(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "category": {"type": "string", "enum": ["billing", "bug", "other"]},
                "urgency": {"type": "integer", "minimum": 1, "maximum": 5},
                "summary": {"type": "string", "maxLength": 20},
                "tags": {"type": "array", "items": {"type": "string"}},
                "refund": {"type": "boolean"},
                "score": {"type": "number", "minimum": 0.25, "maximum": 0.75}
            },
            "required": ["category", "urgency", "summary"]
        })
    }

    #[test]
    fn conforming_answers_validate_and_repeat() {
        let validator = jsonschema::validator_for(&schema()).unwrap();
        for text in ["My invoice is wrong twice", "The app crashes on start", ""] {
            let answer = conforming(&schema(), text);
            assert!(validator.is_valid(&answer), "{answer}");
            assert_eq!(answer, conforming(&schema(), text));
        }
    }

    #[test]
    fn violating_answers_do_not_validate() {
        let validator = jsonschema::validator_for(&schema()).unwrap();
        assert!(!validator.is_valid(&violating(&schema(), "The app crashes")));
    }

    #[test]
    fn tool_choice_must_name_a_tool() {
        let spec = json!({"toolSpec": {"name": "extract", "inputSchema": {"json": schema()}}});
        let mut absorb = |_: &Value| {};
        let forced = parse(
            &json!({"tools": [spec], "toolChoice": {"tool": {"name": "extract"}}}),
            &mut absorb,
        )
        .unwrap();
        assert_eq!(forced.map(|t| t.name).as_deref(), Some("extract"));
        assert!(
            parse(
                &json!({"tools": [spec], "toolChoice": {"auto": {}}}),
                &mut absorb
            )
            .unwrap()
            .is_none()
        );
        for bad in [
            json!({"tools": [spec], "toolChoice": {"tool": {"name": "other"}}}),
            json!({"tools": []}),
            json!({"tools": [{"toolSpec": {"name": "has space", "inputSchema": {"json": schema()}}}]}),
            json!({"tools": [{"toolSpec": {"name": "x"}}]}),
            json!({"tools": [spec, spec]}),
        ] {
            assert!(parse(&bad, &mut absorb).is_err(), "{bad}");
        }
    }
}
