//! AWS's service models as data: the botocore JSON of bedrock-runtime, bedrock (model
//! invocation jobs) and bedrock-agent-runtime, vendored in `aws-models/` by
//! `scripts/vendor-aws-models` and compiled into the binary. This module only reads them:
//! operations with their HTTP binding, shapes with their members and constraints.

use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};

/// The three services whose requests the runner sends and the local server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    /// `bedrock-runtime`: Converse, InvokeModel, their streams, CountTokens.
    Runtime,
    /// `bedrock`: the model invocation jobs of Batch Inference.
    Control,
    /// `bedrock-agent-runtime`: Retrieve and RetrieveAndGenerate.
    AgentRuntime,
}

impl Service {
    pub const ALL: [Service; 3] = [Service::Runtime, Service::Control, Service::AgentRuntime];

    /// The service's endpoint prefix, as botocore names its model directory.
    pub fn name(self) -> &'static str {
        match self {
            Service::Runtime => "bedrock-runtime",
            Service::Control => "bedrock",
            Service::AgentRuntime => "bedrock-agent-runtime",
        }
    }

    /// The parsed model (parsed once, on first use).
    pub fn model(self) -> &'static ServiceModel {
        static MODELS: OnceLock<[ServiceModel; 3]> = OnceLock::new();
        let models = MODELS.get_or_init(|| {
            Service::ALL.map(|service| {
                serde_json::from_str(service.source()).unwrap_or_else(|err| {
                    panic!("aws-models/{}.json does not parse: {err}", service.name())
                })
            })
        });
        &models[self as usize]
    }

    fn source(self) -> &'static str {
        match self {
            Service::Runtime => include_str!("../../aws-models/bedrock-runtime.json"),
            Service::Control => include_str!("../../aws-models/bedrock.json"),
            Service::AgentRuntime => include_str!("../../aws-models/bedrock-agent-runtime.json"),
        }
    }
}

/// One service model: its operations and the shapes their inputs reach.
#[derive(Debug, Deserialize)]
pub struct ServiceModel {
    pub operations: HashMap<String, Operation>,
    pub shapes: HashMap<String, Shape>,
}

impl ServiceModel {
    pub fn operation(&self, name: &str) -> &Operation {
        self.operations
            .get(name)
            .unwrap_or_else(|| panic!("aws-models has no operation {name}"))
    }

    pub fn shape(&self, name: &str) -> &Shape {
        self.shapes
            .get(name)
            .unwrap_or_else(|| panic!("aws-models has no shape {name}"))
    }
}

#[derive(Debug, Deserialize)]
pub struct Operation {
    pub name: String,
    pub http: Http,
    pub input: Option<Target>,
}

#[derive(Debug, Deserialize)]
pub struct Http {
    pub method: String,
    #[serde(rename = "requestUri")]
    pub request_uri: String,
}

/// A reference to a shape by name.
#[derive(Debug, Deserialize)]
pub struct Target {
    pub shape: String,
}

/// A structure's member: its shape and where it travels on the wire.
#[derive(Debug, Deserialize)]
pub struct Member {
    pub shape: String,
    /// `uri`, `querystring` or `header`; none for the JSON body.
    pub location: Option<String>,
    #[serde(rename = "locationName")]
    pub location_name: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    String,
    Structure,
    Blob,
    Boolean,
    List,
    Map,
    Integer,
    Long,
    Float,
    Double,
    Timestamp,
}

/// A shape with the constraints AWS checks before anything else.
#[derive(Debug, Deserialize)]
pub struct Shape {
    #[serde(rename = "type")]
    pub kind: Kind,
    #[serde(default)]
    pub members: Ordered<Member>,
    #[serde(default)]
    pub required: Vec<String>,
    pub min: Option<serde_json::Number>,
    pub max: Option<serde_json::Number>,
    pub pattern: Option<String>,
    #[serde(rename = "enum")]
    pub enumeration: Option<Vec<String>>,
    #[serde(default)]
    pub sensitive: bool,
    #[serde(default)]
    pub union: bool,
    /// A free-form JSON document: anything goes.
    #[serde(default)]
    pub document: bool,
    pub member: Option<Target>,
    pub key: Option<Target>,
    pub value: Option<Target>,
    /// The member that is the whole HTTP body (InvokeModel's `body`).
    pub payload: Option<String>,
    #[serde(skip)]
    compiled: OnceLock<Option<regex::Regex>>,
}

impl Shape {
    /// `pattern` compiled to match the whole value, as AWS (Java's `matches`) applies it.
    /// None without a pattern. Every pattern of the vendored models compiles (tested).
    pub fn regex(&self) -> Option<&regex::Regex> {
        self.compiled
            .get_or_init(|| {
                let pattern = self.pattern.as_ref()?;
                regex::Regex::new(&format!("^(?:{pattern})$")).ok()
            })
            .as_ref()
    }
}

/// A JSON object's entries in the order the model lists them (AWS reports violations in
/// that order).
#[derive(Debug)]
pub struct Ordered<T>(pub Vec<(String, T)>);

impl<T> Default for Ordered<T> {
    fn default() -> Self {
        Ordered(Vec::new())
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Ordered<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for Entries<T> {
            type Value = Ordered<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ordered<T>, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(Ordered(entries))
            }
        }
        deserializer.deserialize_map(Entries(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_model_parses_and_every_reference_resolves() {
        for service in Service::ALL {
            let model = service.model();
            assert!(!model.operations.is_empty(), "{}", service.name());
            for operation in model.operations.values() {
                if let Some(input) = &operation.input {
                    model.shape(&input.shape);
                }
            }
            for shape in model.shapes.values() {
                for (_, member) in &shape.members.0 {
                    model.shape(&member.shape);
                }
                for target in [&shape.member, &shape.key, &shape.value]
                    .into_iter()
                    .flatten()
                {
                    model.shape(&target.shape);
                }
            }
        }
    }

    #[test]
    fn every_pattern_compiles() {
        let mut count = 0;
        for service in Service::ALL {
            for (name, shape) in &service.model().shapes {
                if let Some(pattern) = &shape.pattern {
                    assert!(shape.regex().is_some(), "{name}: {pattern}");
                    count += 1;
                }
            }
        }
        assert!(count > 30, "{count} patterns");
    }

    #[test]
    fn members_keep_the_models_order() {
        let model = Service::Runtime.model();
        let converse = model.shape("ConverseRequest");
        let names: Vec<&str> = converse.members.0.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(&names[..3], ["modelId", "messages", "system"]);
    }
}
