//! The constraints a value of a shape must satisfy (enum, length, pattern, value range),
//! each broken one as AWS words the rule: `Member must have length less than or equal to
//! 1000`. Lengths of strings count characters; a pattern must match the whole string.

use crate::rules::service_model::Shape;

/// The rules a string breaks: enum, length (in characters), pattern (the whole string).
pub(super) fn string_rules(shape: &Shape, text: &str) -> Vec<String> {
    let mut rules = Vec::new();
    if let Some(values) = &shape.enumeration
        && !values.iter().any(|v| v == text)
    {
        rules.push(format!(
            "Member must satisfy enum value set: [{}]",
            values.join(", ")
        ));
    }
    rules.extend(length_rules(shape, text.chars().count()));
    if let (Some(pattern), Some(regex)) = (&shape.pattern, shape.regex())
        && !regex.is_match(text)
    {
        rules.push(format!(
            "Member must satisfy regular expression pattern: {pattern}"
        ));
    }
    rules
}

pub(super) fn length_rules(shape: &Shape, len: usize) -> Vec<String> {
    let mut rules = Vec::new();
    if let Some(min) = &shape.min
        && (len as f64) < min.as_f64().unwrap_or(0.0)
    {
        rules.push(format!(
            "Member must have length greater than or equal to {min}"
        ));
    }
    if let Some(max) = &shape.max
        && (len as f64) > max.as_f64().unwrap_or(f64::INFINITY)
    {
        rules.push(format!(
            "Member must have length less than or equal to {max}"
        ));
    }
    rules
}

/// The rules a number breaks: `min` and `max`, both inclusive.
pub(super) fn range_rules(shape: &Shape, x: f64) -> Vec<String> {
    let mut rules = Vec::new();
    if let Some(min) = &shape.min
        && x < min.as_f64().unwrap_or(f64::NEG_INFINITY)
    {
        rules.push(format!(
            "Member must have value greater than or equal to {min}"
        ));
    }
    if let Some(max) = &shape.max
        && x > max.as_f64().unwrap_or(f64::INFINITY)
    {
        rules.push(format!(
            "Member must have value less than or equal to {max}"
        ));
    }
    rules
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::tests::{converse, validation};

    #[test]
    fn one_violation_reads_as_aws_writes_it() {
        let body = json!({
            "messages": [{"role": "user", "content": [{"text": "hi"}]}],
            "inferenceConfig": {"maxTokens": 0},
        });
        assert_eq!(
            validation(converse(body)),
            "1 validation error detected: Value '0' at 'inferenceConfig.maxTokens' failed to \
             satisfy constraint: Member must have value greater than or equal to 1"
        );
    }

    #[test]
    fn enums_list_their_values() {
        let body = json!({"messages": [{"role": "robot", "content": []}]});
        assert_eq!(
            validation(converse(body)),
            "1 validation error detected: Value 'robot' at 'messages.1.member.role' failed to \
             satisfy constraint: Member must satisfy enum value set: [user, assistant, system]"
        );
    }
}
