//! Embedding models' InvokeModel requests: Titan Text Embeddings v1 (`inputText` alone)
//! and v2 (`dimensions`, `normalize`), and Cohere Embed v3 (`texts`, `input_type`,
//! `embedding_types`), validated as each model does and answered at once with the
//! server's hashed embeddings, shaped as the family returns them.

use serde_json::{Map, Value, json};

use super::{NativeRequest, malformed};
use crate::local_server::api_error::ApiError;
use crate::local_server::embed::embed;
use crate::local_server::request_id;
use crate::local_server::text::count_tokens;
use crate::rules::model_id::Family;

pub const TITAN_V1_DIMENSIONS: usize = 1536;
pub const COHERE_DIMENSIONS: usize = 1024;
pub const COHERE_MAX_TEXTS: usize = 96;

pub(super) fn parse_titan(
    family: Family,
    request: &Map<String, Value>,
) -> Result<NativeRequest, ApiError> {
    let text = request
        .get("inputText")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed("#: required key [inputText] not found"))?;
    if text.is_empty() {
        return Err(malformed("#/inputText: expected minLength: 1, actual: 0"));
    }
    let (dimensions, normalize) = if family == Family::TitanEmbedV2 {
        let dimensions = match request.get("dimensions") {
            None => 1024,
            Some(v) => match v.as_u64() {
                Some(d @ (256 | 512 | 1024)) => d as usize,
                _ => {
                    return Err(malformed(format!(
                        "#/dimensions: {v} is not a valid enum value (256, 512, 1024)"
                    )));
                }
            },
        };
        let normalize = match request.get("normalize") {
            None => true,
            Some(v) => v.as_bool().ok_or_else(|| {
                malformed(format!("#/normalize: expected type: Boolean, found: {v}"))
            })?,
        };
        (dimensions, normalize)
    } else {
        if let Some(key) = request.keys().find(|k| *k != "inputText") {
            return Err(malformed(format!(
                "extraneous key [{key}] is not permitted"
            )));
        }
        (TITAN_V1_DIMENSIONS, false)
    };
    let input_tokens = count_tokens(text);
    let embedding = embed(text, dimensions, normalize);
    let response = if family == Family::TitanEmbedV2 {
        json!({
            "embedding": embedding,
            "embeddingsByType": {"float": embedding},
            "inputTextTokenCount": input_tokens,
        })
    } else {
        json!({"embedding": embedding, "inputTextTokenCount": input_tokens})
    };
    Ok(NativeRequest::Embedding {
        input_tokens,
        response,
    })
}

pub(super) fn parse_cohere(request: &Map<String, Value>) -> Result<NativeRequest, ApiError> {
    let texts = request
        .get("texts")
        .and_then(Value::as_array)
        .ok_or_else(|| malformed("#: required key [texts] not found"))?;
    if texts.is_empty() || texts.len() > COHERE_MAX_TEXTS {
        return Err(malformed(format!(
            "#/texts: expected between 1 and {COHERE_MAX_TEXTS} items, got {}",
            texts.len()
        )));
    }
    let texts: Vec<&str> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            t.as_str()
                .ok_or_else(|| malformed(format!("#/texts/{i}: expected type: String")))
        })
        .collect::<Result<_, _>>()?;
    match request.get("input_type").and_then(Value::as_str) {
        Some("search_document" | "search_query" | "classification" | "clustering") => {}
        _ => {
            return Err(malformed(
                "#/input_type: required, one of search_document, search_query, classification, clustering",
            ));
        }
    }
    let by_type = match request.get("embedding_types") {
        None => false,
        Some(v) if v == &json!(["float"]) => true,
        Some(v) => {
            return Err(malformed(format!(
                "#/embedding_types: {v} is not supported by the local server (use [\"float\"] or omit it)"
            )));
        }
    };
    let embeddings: Vec<Vec<f32>> = texts
        .iter()
        .map(|t| embed(t, COHERE_DIMENSIONS, true))
        .collect();
    let input_tokens = texts.iter().map(|t| count_tokens(t)).sum();
    let response = json!({
        "id": request_id(),
        "texts": texts,
        "response_type": if by_type { "embeddings_by_type" } else { "embeddings_floats" },
        "embeddings": if by_type { json!({"float": embeddings}) } else { json!(embeddings) },
    });
    Ok(NativeRequest::Embedding {
        input_tokens,
        response,
    })
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::local_server::native::parse;

    fn parse_json(family: Family, value: Value) -> Result<NativeRequest, ApiError> {
        parse(family, &serde_json::to_vec(&value).unwrap())
    }

    #[test]
    fn titan_and_cohere_embeddings() {
        let NativeRequest::Embedding {
            response,
            input_tokens,
        } = parse_json(
            Family::TitanEmbedV2,
            json!({"inputText": "hello world", "dimensions": 256, "normalize": true}),
        )
        .unwrap()
        else {
            panic!()
        };
        assert_eq!(input_tokens, 3);
        assert_eq!(response["embedding"].as_array().unwrap().len(), 256);
        assert_eq!(response["inputTextTokenCount"], 3);
        assert!(
            parse_json(
                Family::TitanEmbedV2,
                json!({"inputText": "x", "dimensions": 300})
            )
            .is_err()
        );
        let NativeRequest::Embedding { response, .. } =
            parse_json(Family::TitanEmbedV1, json!({"inputText": "hello"})).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            response["embedding"].as_array().unwrap().len(),
            TITAN_V1_DIMENSIONS
        );

        let NativeRequest::Embedding {
            response,
            input_tokens,
        } = parse_json(
            Family::CohereEmbed,
            json!({"texts": ["one", "two three"], "input_type": "search_document"}),
        )
        .unwrap()
        else {
            panic!()
        };
        assert_eq!(input_tokens, 1 + 3);
        assert_eq!(response["response_type"], "embeddings_floats");
        assert_eq!(response["embeddings"].as_array().unwrap().len(), 2);
        assert_eq!(
            response["embeddings"][1].as_array().unwrap().len(),
            COHERE_DIMENSIONS
        );
        let too_many: Vec<String> = (0..97).map(|i| format!("t{i}")).collect();
        let err = parse_json(
            Family::CohereEmbed,
            json!({"texts": too_many, "input_type": "clustering"}),
        )
        .unwrap_err();
        assert!(err.message.contains("between 1 and 96"));
        let err = parse_json(Family::CohereEmbed, json!({"texts": ["a"]})).unwrap_err();
        assert!(err.message.contains("input_type"));
    }
}
