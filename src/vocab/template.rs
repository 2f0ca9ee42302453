//! Prompt templates: text with `{field}` placeholders filled from a record's fields
//! (`{{` and `}}` stand for literal braces). Parsed once, rendered per record.

use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(String),
    Field(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pieces: Vec<Piece>,
}

/// Why a template cannot be parsed: where a brace is unbalanced (`at`: the 1-based
/// character).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error(
        "the template has an unclosed '{{' at character {at}: write {{field}} for a field, {{{{ for a literal brace"
    )]
    Unclosed { at: usize },
    #[error("the template has an empty placeholder {{}} at character {at}")]
    EmptyPlaceholder { at: usize },
    #[error("the template has an unmatched '}}' at character {at}: write }}}} for a literal brace")]
    Unmatched { at: usize },
}

/// Why a record could not fill the template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingField {
    pub field: String,
}

impl Template {
    /// Parses `text`; the error says where a brace is unbalanced.
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut chars = text.char_indices().peekable();
        while let Some((at, c)) = chars.next() {
            match c {
                '{' if chars.peek().map(|(_, c)| *c) == Some('{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek().map(|(_, c)| *c) == Some('}') => {
                    chars.next();
                    literal.push('}');
                }
                '{' => {
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some((_, '}')) => break,
                            Some((_, '{')) | None => {
                                return Err(TemplateError::Unclosed { at: at + 1 });
                            }
                            Some((_, c)) => name.push(c),
                        }
                    }
                    let name = name.trim().to_string();
                    if name.is_empty() {
                        return Err(TemplateError::EmptyPlaceholder { at: at + 1 });
                    }
                    if !literal.is_empty() {
                        pieces.push(Piece::Literal(std::mem::take(&mut literal)));
                    }
                    pieces.push(Piece::Field(name));
                }
                '}' => {
                    return Err(TemplateError::Unmatched { at: at + 1 });
                }
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal));
        }
        Ok(Template { pieces })
    }

    /// The field names the template uses, in order of first use.
    pub fn fields(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for piece in &self.pieces {
            if let Piece::Field(name) = piece
                && !names.contains(&name.as_str())
            {
                names.push(name);
            }
        }
        names
    }

    /// Fills the template from `fields`. Strings are inserted as they are, other values as
    /// JSON; a missing or null field is an error.
    pub fn render(&self, fields: &Map<String, Value>) -> Result<String, MissingField> {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Literal(text) => out.push_str(text),
                Piece::Field(name) => match fields.get(name) {
                    None | Some(Value::Null) => {
                        return Err(MissingField {
                            field: name.clone(),
                        });
                    }
                    Some(Value::String(s)) => out.push_str(s),
                    Some(other) => out.push_str(&other.to_string()),
                },
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn renders_fields_and_escapes() {
        let t = Template::parse("Summarize {title} ({ year }):\n\n{body} {{literal}}").unwrap();
        assert_eq!(t.fields(), vec!["title", "year", "body"]);
        let out = t
            .render(&fields(
                json!({"title": "Q3", "year": 2024, "body": "text"}),
            ))
            .unwrap();
        assert_eq!(out, "Summarize Q3 (2024):\n\ntext {literal}");
    }

    #[test]
    fn missing_and_null_fields_fail() {
        let t = Template::parse("{text}").unwrap();
        assert_eq!(
            t.render(&fields(json!({"body": "x"}))).unwrap_err().field,
            "text"
        );
        assert!(t.render(&fields(json!({"text": null}))).is_err());
    }

    #[test]
    fn unbalanced_braces_are_reported() {
        assert!(
            Template::parse("{open")
                .unwrap_err()
                .to_string()
                .contains("unclosed")
        );
        assert!(
            Template::parse("close}")
                .unwrap_err()
                .to_string()
                .contains("unmatched")
        );
        assert!(
            Template::parse("{}")
                .unwrap_err()
                .to_string()
                .contains("empty")
        );
        assert_eq!(
            Template::parse("plain").unwrap().fields(),
            Vec::<&str>::new()
        );
    }

    #[test]
    fn parse_errors_read_word_for_word() {
        let said = |text: &str| Template::parse(text).unwrap_err().to_string();
        assert_eq!(
            said("ab {open"),
            "the template has an unclosed '{' at character 4: write {field} for a field, {{ for a literal brace"
        );
        assert_eq!(
            said("a}"),
            "the template has an unmatched '}' at character 2: write }} for a literal brace"
        );
        assert_eq!(
            said("x {} y"),
            "the template has an empty placeholder {} at character 3"
        );
    }
}
