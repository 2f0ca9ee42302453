//! The local server against AWS's own service models (the botocore JSON vendored in
//! `aws-models/`): for every constraint of every input member of every operation the
//! server answers, a request that breaks it gets AWS's error text over real HTTP, and the
//! same request made valid gets past validation.
//!
//! The cases come from walking the models, not from a list: required members, string and
//! blob lengths, patterns, enums, number ranges, list and map sizes, and JSON types. Valid
//! strings are generated from each member's own pattern (via `regex-syntax`), and checked
//! against it; a value breaking a pattern is found by trying characters until the pattern
//! refuses one. A shape reached again below itself (a recursive union) is not walked twice;
//! each (structure, member, constraint) is tried once per operation.

mod common;

use std::collections::HashSet;

use base64::Engine;
use bedrock_batch::local_server::ServerConfig;
use bedrock_batch::rules::Service;
use bedrock_batch::rules::service_model::{Kind, ServiceModel, Shape};
use regex_syntax::hir::{Class, Hir, HirKind};
use serde_json::{Map, Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Every operation the local server answers.
const OPERATIONS: [(Service, &str); 11] = [
    (Service::Runtime, "Converse"),
    (Service::Runtime, "ConverseStream"),
    (Service::Runtime, "InvokeModel"),
    (Service::Runtime, "InvokeModelWithResponseStream"),
    (Service::Runtime, "CountTokens"),
    (Service::Control, "CreateModelInvocationJob"),
    (Service::Control, "GetModelInvocationJob"),
    (Service::Control, "StopModelInvocationJob"),
    (Service::Control, "ListModelInvocationJobs"),
    (Service::AgentRuntime, "Retrieve"),
    (Service::AgentRuntime, "RetrieveAndGenerate"),
];

/// One step from a structure down to the member a case breaks.
#[derive(Clone, Debug)]
enum Step {
    Member(String),
    /// The first item of a list.
    Item,
    /// The value under key `k` of a map.
    Value,
}

/// What a case does to the member at its path.
#[derive(Clone, Debug)]
enum Break {
    /// Leaves a required member out.
    Missing,
    /// Sets the member to this value; AWS must answer with this rule broken.
    Value(Value, String),
    /// Sets a map to one entry whose key breaks this rule.
    Key(String, String),
    /// Sets a map to one entry whose (string) value breaks this rule.
    MapValue(String, String),
    /// Sets a value of the wrong JSON type: a SerializationException.
    Type(Value),
}

#[derive(Clone, Debug)]
struct Case {
    path: Vec<Step>,
    brk: Break,
    /// A sensitive shape on the way: AWS does not repeat the value.
    hidden: bool,
}

/// A member of a structure (or a list's items, a map's values) and what it is.
struct Slot<'a> {
    parent: &'a str,
    name: &'a str,
    target: &'a str,
    required: bool,
    /// `uri`, `querystring`, `header`, `payload` or none for the JSON body.
    location: Option<&'a str>,
}

struct Walk<'m> {
    model: &'m ServiceModel,
    cases: Vec<Case>,
    tried: HashSet<String>,
    /// Constraints that cannot be broken by a request that can be sent (a pattern every
    /// string matches, an empty path label, a header that cannot carry the value).
    unbreakable: Vec<String>,
}

impl<'m> Walk<'m> {
    fn once(&mut self, key: String) -> bool {
        self.tried.insert(key)
    }

    /// The cases of a member, and below it.
    fn member(&mut self, slot: Slot, path: Vec<Step>, stack: &mut Vec<String>, hidden: bool) {
        let Slot {
            parent,
            name,
            target,
            required,
            location,
        } = slot;
        let shape = self.model.shape(target);
        let hidden = hidden || shape.sensitive;
        let key = format!("{parent}.{name}");
        if location == Some("header") && shape.kind == Kind::Map {
            // JSON in a header (InvokeModel's request metadata): not checked.
            self.unbreakable.push(format!("{key}: a map in a header"));
            return;
        }
        if required && location == Some("uri") {
            self.unbreakable
                .push(format!("{key}: a path label cannot be left out"));
        } else if required && self.once(format!("{key} required")) {
            self.cases.push(Case {
                path: path.clone(),
                brk: Break::Missing,
                hidden,
            });
        }
        self.constraints(&key, shape, &path, hidden, location);
        if stack.iter().any(|s| s == target) || shape.document {
            return;
        }
        stack.push(target.to_string());
        match shape.kind {
            Kind::Structure => {
                for (child, member) in &shape.members.0 {
                    let mut below = path.clone();
                    below.push(Step::Member(child.clone()));
                    let required = shape.required.iter().any(|r| r == child);
                    let slot = Slot {
                        parent: target,
                        name: child,
                        target: &member.shape,
                        required,
                        location: None,
                    };
                    self.member(slot, below, stack, hidden);
                }
            }
            Kind::List if location.is_none() => {
                let item = &shape.member.as_ref().unwrap().shape;
                let mut below = path.clone();
                below.push(Step::Item);
                let slot = Slot {
                    parent: target,
                    name: "member",
                    target: item,
                    required: false,
                    location: None,
                };
                self.member(slot, below, stack, hidden);
            }
            Kind::Map => {
                let key_shape = self.model.shape(&shape.key.as_ref().unwrap().shape);
                for rule in string_breaks(key_shape) {
                    if let Some((value, rule)) = rule
                        && self.once(format!("{key} key {rule}"))
                    {
                        self.cases.push(Case {
                            path: path.clone(),
                            brk: Break::Key(value.as_str().unwrap().to_string(), rule),
                            hidden,
                        });
                    }
                }
                let value = &shape.value.as_ref().unwrap().shape;
                let value_shape = self.model.shape(value);
                // String values are reported for the whole map; other values are walked.
                if value_shape.kind == Kind::String {
                    for rule in string_breaks(value_shape) {
                        if let Some((value, rule)) = rule
                            && self.once(format!("{key} value {rule}"))
                        {
                            self.cases.push(Case {
                                path: path.clone(),
                                brk: Break::MapValue(value.as_str().unwrap().to_string(), rule),
                                hidden,
                            });
                        }
                    }
                } else {
                    let mut below = path.clone();
                    below.push(Step::Value);
                    let slot = Slot {
                        parent: target,
                        name: "value",
                        target: value,
                        required: false,
                        location: None,
                    };
                    self.member(slot, below, stack, hidden);
                }
            }
            _ => {}
        }
        stack.pop();
    }

    fn constraints(
        &mut self,
        key: &str,
        shape: &Shape,
        path: &[Step],
        hidden: bool,
        location: Option<&str>,
    ) {
        let mut breaks: Vec<Option<(Value, String)>> = Vec::new();
        let wrong_type;
        match shape.kind {
            Kind::String => {
                breaks = string_breaks(shape);
                wrong_type = Some(json!(7));
            }
            Kind::Blob => {
                let len = |n: usize| {
                    json!(base64::engine::general_purpose::STANDARD.encode(vec![b'a'; n]))
                };
                if let Some(min) = number(&shape.min).filter(|m| *m > 0.0) {
                    breaks.push(Some((len(min as usize - 1), length_rule(">=", &shape.min))));
                }
                if let Some(max) = number(&shape.max) {
                    breaks.push(Some((len(max as usize + 1), length_rule("<=", &shape.max))));
                }
                wrong_type = Some(json!(7));
            }
            Kind::Integer | Kind::Long | Kind::Float | Kind::Double => {
                let step = if matches!(shape.kind, Kind::Integer | Kind::Long) {
                    1.0
                } else {
                    0.5
                };
                let value = |x: f64| {
                    if step == 1.0 {
                        json!(x as i64)
                    } else {
                        json!(x)
                    }
                };
                if let Some(min) = number(&shape.min) {
                    breaks.push(Some((value(min - step), value_rule(">=", &shape.min))));
                }
                if let Some(max) = number(&shape.max) {
                    breaks.push(Some((value(max + step), value_rule("<=", &shape.max))));
                }
                wrong_type = Some(json!("seven"));
            }
            Kind::List | Kind::Map => {
                if let Some(min) = number(&shape.min).filter(|m| *m > 0.0) {
                    breaks.push(Some((
                        Value::from(format!("#{}", min as usize - 1)),
                        length_rule(">=", &shape.min),
                    )));
                }
                if let Some(max) = number(&shape.max) {
                    breaks.push(Some((
                        Value::from(format!("#{}", max as usize + 1)),
                        length_rule("<=", &shape.max),
                    )));
                }
                wrong_type = Some(json!("seven"));
            }
            Kind::Structure => wrong_type = Some(json!("seven")),
            Kind::Boolean => wrong_type = Some(json!("yes")),
            Kind::Timestamp => wrong_type = Some(json!(true)),
        }
        for brk in breaks {
            match brk {
                None => self
                    .unbreakable
                    .push(format!("{key}: pattern {:?}", shape.pattern)),
                Some((value, rule)) => {
                    if !self.once(format!("{key} {rule}")) {
                        continue;
                    }
                    if !sendable(location, &value) {
                        self.unbreakable
                            .push(format!("{key} ({location:?}): {rule}"));
                        continue;
                    }
                    self.cases.push(Case {
                        path: path.to_vec(),
                        brk: Break::Value(value, rule),
                        hidden,
                    });
                }
            }
        }
        // Path labels and headers carry text whatever the member's type; query strings are
        // typed by the server.
        if let Some(value) = wrong_type
            && !shape.document
            && matches!(location, None | Some("querystring"))
            && location != Some("payload")
            && !(location == Some("querystring") && shape.kind == Kind::String)
            && self.once(format!("{key} type"))
        {
            let value = if location.is_some() {
                json!("not-a-number-or-date")
            } else {
                value
            };
            self.cases.push(Case {
                path: path.to_vec(),
                brk: Break::Type(value),
                hidden,
            });
        }
    }
}

fn number(n: &Option<serde_json::Number>) -> Option<f64> {
    n.as_ref().and_then(serde_json::Number::as_f64)
}

fn length_rule(op: &str, bound: &Option<serde_json::Number>) -> String {
    let bound = bound.as_ref().unwrap();
    match op {
        ">=" => format!("Member must have length greater than or equal to {bound}"),
        _ => format!("Member must have length less than or equal to {bound}"),
    }
}

fn value_rule(op: &str, bound: &Option<serde_json::Number>) -> String {
    let bound = bound.as_ref().unwrap();
    match op {
        ">=" => format!("Member must have value greater than or equal to {bound}"),
        _ => format!("Member must have value less than or equal to {bound}"),
    }
}

/// A value that can travel where the member does.
fn sendable(location: Option<&str>, value: &Value) -> bool {
    let Some(text) = value.as_str() else {
        return true;
    };
    match location {
        Some("uri") => !text.is_empty() && !text.starts_with('#'),
        Some("header") => text.bytes().all(|b| (0x21..0x7f).contains(&b)),
        _ => true,
    }
}

/// The values that break a string shape's enum, lengths and pattern, each with the rule
/// AWS names; `None` for a pattern no string of an allowed length breaks.
fn string_breaks(shape: &Shape) -> Vec<Option<(Value, String)>> {
    let mut breaks = Vec::new();
    if let Some(values) = &shape.enumeration {
        breaks.push(Some((
            json!("NOT_IN_THE_ENUM"),
            format!(
                "Member must satisfy enum value set: [{}]",
                values.join(", ")
            ),
        )));
    }
    if let Some(min) = number(&shape.min).filter(|m| *m > 0.0) {
        breaks.push(Some((
            json!("a".repeat(min as usize - 1)),
            length_rule(">=", &shape.min),
        )));
    }
    if let Some(max) = number(&shape.max) {
        breaks.push(Some((
            json!("a".repeat(max as usize + 1)),
            length_rule("<=", &shape.max),
        )));
    }
    if let Some(pattern) = &shape.pattern {
        let rule = format!("Member must satisfy regular expression pattern: {pattern}");
        breaks.push(pattern_break(shape).map(|value| (json!(value), rule)));
    }
    breaks
}

fn full_match(pattern: &str) -> regex::Regex {
    regex::Regex::new(&format!("^(?:{pattern})$")).unwrap()
}

/// A string of an allowed length that the shape's pattern refuses.
fn pattern_break(shape: &Shape) -> Option<String> {
    let regex = full_match(shape.pattern.as_ref()?);
    let min = number(&shape.min).unwrap_or(0.0) as usize;
    let max = number(&shape.max).map_or(usize::MAX, |m| m as usize);
    let valid = valid_string(shape);
    let len = valid.chars().count().max(min).max(1).min(max);
    for c in [
        ' ', '!', '~', '=', '%', '"', '*', 'é', '#', '_', ':', '/', '.', '-', 'A', 'a', '0',
    ] {
        let mut candidates = vec![c.to_string().repeat(len)];
        if !valid.is_empty() {
            candidates.push(format!("{c}{}", valid.chars().skip(1).collect::<String>()));
            candidates.push(format!(
                "{}{c}",
                valid
                    .chars()
                    .take(valid.chars().count() - 1)
                    .collect::<String>()
            ));
        }
        for candidate in candidates {
            let n = candidate.chars().count();
            if n >= min && n <= max && !regex.is_match(&candidate) {
                return Some(candidate);
            }
        }
    }
    None
}

/// A string the shape admits: its first enum value, or text generated from its pattern with
/// a length within its bounds.
fn valid_string(shape: &Shape) -> String {
    if let Some(values) = &shape.enumeration {
        return values[0].clone();
    }
    let min = number(&shape.min).unwrap_or(0.0) as usize;
    let max = number(&shape.max).map_or(usize::MAX, |m| m as usize);
    let Some(pattern) = &shape.pattern else {
        return "a".repeat(min.max(1).min(max));
    };
    let hir = regex_syntax::ParserBuilder::new()
        .build()
        .parse(pattern)
        .unwrap();
    let regex = full_match(pattern);
    for extra in 0..12 {
        for choice in 0..8 {
            let mut out = String::new();
            generate(&hir, extra, choice, &mut out);
            let n = out.chars().count();
            if n >= min && n <= max && regex.is_match(&out) {
                return out;
            }
        }
    }
    panic!("no string generated for pattern {pattern} of length {min}..={max}");
}

/// Text a regex matches: each repetition `extra` times past its minimum (within its
/// maximum), the `choice`-th branch of each alternation, a letter or digit from each class.
fn generate(hir: &Hir, extra: u32, choice: usize, out: &mut String) {
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => {}
        HirKind::Literal(literal) => out.push_str(&String::from_utf8_lossy(&literal.0)),
        HirKind::Class(Class::Unicode(class)) => {
            let ranges: Vec<(char, char)> = class
                .ranges()
                .iter()
                .map(|r| (r.start(), r.end()))
                .collect();
            out.push(pick(&ranges));
        }
        HirKind::Class(Class::Bytes(class)) => {
            let ranges: Vec<(char, char)> = class
                .ranges()
                .iter()
                .map(|r| (r.start() as char, r.end() as char))
                .collect();
            out.push(pick(&ranges));
        }
        HirKind::Repetition(repetition) => {
            let n = repetition.min + extra;
            let n = repetition.max.map_or(n, |max| n.min(max));
            for _ in 0..n {
                generate(&repetition.sub, extra, choice, out);
            }
        }
        HirKind::Capture(capture) => generate(&capture.sub, extra, choice, out),
        HirKind::Concat(parts) => parts.iter().for_each(|h| generate(h, extra, choice, out)),
        HirKind::Alternation(branches) => {
            generate(&branches[choice % branches.len()], extra, choice, out)
        }
    }
}

fn pick(ranges: &[(char, char)]) -> char {
    for preferred in ['a', '0', 'A', 'b', '-'] {
        if ranges
            .iter()
            .any(|(lo, hi)| (*lo..=*hi).contains(&preferred))
        {
            return preferred;
        }
    }
    ranges
        .iter()
        .flat_map(|(lo, hi)| (*lo..=*hi).take(200))
        .find(|c| c.is_ascii_graphic())
        .unwrap_or(ranges[0].0)
}

/// A value the shape admits, with only its required members (a union with none).
fn valid(model: &ServiceModel, name: &str, stack: &mut Vec<String>) -> Value {
    let shape = model.shape(name);
    if shape.document {
        return json!({});
    }
    match shape.kind {
        Kind::String => json!(valid_string(shape)),
        Kind::Blob => {
            let n = number(&shape.min).unwrap_or(1.0).max(1.0) as usize;
            json!(base64::engine::general_purpose::STANDARD.encode(vec![b'a'; n]))
        }
        Kind::Boolean => json!(true),
        Kind::Integer | Kind::Long => json!(number(&shape.min).unwrap_or(1.0) as i64),
        Kind::Float | Kind::Double => json!(number(&shape.min).unwrap_or(0.5)),
        Kind::Timestamp => json!("2026-01-01T00:00:00Z"),
        Kind::List => {
            let n = number(&shape.min).unwrap_or(0.0) as usize;
            let item = &shape.member.as_ref().unwrap().shape;
            Value::Array((0..n).map(|_| valid(model, item, stack)).collect())
        }
        Kind::Map => {
            let n = number(&shape.min).unwrap_or(0.0) as usize;
            let key = valid_string(model.shape(&shape.key.as_ref().unwrap().shape));
            let value = &shape.value.as_ref().unwrap().shape;
            let mut map = Map::new();
            for i in 0..n {
                map.insert(format!("{key}{i}"), valid(model, value, stack));
            }
            Value::Object(map)
        }
        Kind::Structure => {
            let mut object = Map::new();
            if !stack.iter().any(|s| s == name) {
                stack.push(name.to_string());
                for (member, target) in &shape.members.0 {
                    if shape.required.iter().any(|r| r == member) {
                        object.insert(member.clone(), valid(model, &target.shape, stack));
                    }
                }
                stack.pop();
            }
            Value::Object(object)
        }
    }
}

/// `root` (a valid value of `shape`) with `leaf` at `path` (or the member removed), every
/// structure on the way made valid.
fn place(model: &ServiceModel, shape: &str, root: &mut Value, path: &[Step], leaf: Option<Value>) {
    let Some((step, rest)) = path.split_first() else {
        if let Some(leaf) = leaf {
            *root = leaf;
        }
        return;
    };
    let shape = model.shape(shape);
    match step {
        Step::Member(name) => {
            let target = &shape
                .members
                .0
                .iter()
                .find(|(n, _)| n == name)
                .unwrap()
                .1
                .shape;
            let object = root.as_object_mut().unwrap();
            if rest.is_empty() && leaf.is_none() {
                object.remove(name);
                return;
            }
            let child = object
                .entry(name.clone())
                .or_insert_with(|| valid(model, target, &mut Vec::new()));
            place(model, target, child, rest, leaf);
        }
        Step::Item => {
            let item = &shape.member.as_ref().unwrap().shape;
            let list = root.as_array_mut().unwrap();
            if list.is_empty() {
                list.push(valid(model, item, &mut Vec::new()));
            }
            place(model, item, &mut list[0], rest, leaf);
        }
        Step::Value => {
            let value = &shape.value.as_ref().unwrap().shape;
            let key = valid_string(model.shape(&shape.key.as_ref().unwrap().shape));
            let map = root.as_object_mut().unwrap();
            let child = map
                .entry(key)
                .or_insert_with(|| valid(model, value, &mut Vec::new()));
            place(model, value, child, rest, leaf);
        }
    }
}

/// The name of the shape at `path` below `input`.
fn shape_at(model: &ServiceModel, input: &str, path: &[Step]) -> String {
    let mut name = input.to_string();
    for step in path {
        let shape = model.shape(&name);
        name = match step {
            Step::Member(m) => shape
                .members
                .0
                .iter()
                .find(|(x, _)| x == m)
                .unwrap()
                .1
                .shape
                .clone(),
            Step::Item => shape.member.as_ref().unwrap().shape.clone(),
            Step::Value => shape.value.as_ref().unwrap().shape.clone(),
        };
    }
    name
}

/// `#N` (a list or map of N valid items) made real for the shape at `path`.
fn sized(model: &ServiceModel, input: &str, path: &[Step], value: Value) -> Value {
    let Some(n) = value
        .as_str()
        .and_then(|s| s.strip_prefix('#'))
        .and_then(|n| n.parse::<usize>().ok())
    else {
        return value;
    };
    let shape = model.shape(&shape_at(model, input, path));
    match shape.kind {
        Kind::List => {
            let item = &shape.member.as_ref().unwrap().shape;
            Value::Array(
                (0..n)
                    .map(|_| valid(model, item, &mut Vec::new()))
                    .collect(),
            )
        }
        _ => {
            let key = model.shape(&shape.key.as_ref().unwrap().shape);
            let value = &shape.value.as_ref().unwrap().shape;
            let base = valid_string(key);
            let mut map = Map::new();
            for i in 0..n {
                let mut k = format!("{base}{i}");
                if let Some(max) = number(&key.max) {
                    k = k
                        .chars()
                        .rev()
                        .take(max as usize)
                        .collect::<String>()
                        .chars()
                        .rev()
                        .collect();
                }
                map.insert(k, valid(model, value, &mut Vec::new()));
            }
            Value::Object(map)
        }
    }
}

/// The path AWS names: members by name, list items as `N.member`, map values by key.
fn aws_path(model: &ServiceModel, input: &str, path: &[Step]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut name = input.to_string();
    for step in path {
        let shape = model.shape(&name);
        match step {
            Step::Member(m) => {
                parts.push(m.clone());
                name = shape
                    .members
                    .0
                    .iter()
                    .find(|(x, _)| x == m)
                    .unwrap()
                    .1
                    .shape
                    .clone();
            }
            Step::Item => {
                parts.push("1.member".into());
                name = shape.member.as_ref().unwrap().shape.clone();
            }
            Step::Value => {
                parts.push(format!(
                    "{}.member",
                    valid_string(model.shape(&shape.key.as_ref().unwrap().shape))
                ));
                name = shape.value.as_ref().unwrap().shape.clone();
            }
        }
    }
    parts.join(".")
}

/// A request as HTTP: the operation's URI with its labels, query, headers and body.
struct Http {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn render(model: &ServiceModel, operation: &str, input: &Value) -> Http {
    let op = model.operation(operation);
    let shape = model.shape(&op.input.as_ref().unwrap().shape);
    let mut uri = op.http.request_uri.clone();
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    let mut headers = Vec::new();
    let mut body = Map::new();
    let mut raw = None;
    let object = input.as_object().unwrap();
    for (name, member) in &shape.members.0 {
        let Some(value) = object.get(name) else {
            if member.location.as_deref() == Some("uri") {
                // A label cannot be left out of a path; the server sees it as another route.
                uri = uri.replace(
                    &format!("{{{}}}", member.location_name.as_ref().unwrap()),
                    "MISSING",
                );
            }
            continue;
        };
        let text = match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        match member.location.as_deref() {
            Some("uri") => {
                let label = member.location_name.as_ref().unwrap();
                let encoded = percent_encoding::utf8_percent_encode(
                    &text,
                    percent_encoding::NON_ALPHANUMERIC,
                )
                .to_string();
                uri = uri.replace(&format!("{{{label}}}"), &encoded);
            }
            Some("querystring") => {
                query.append_pair(member.location_name.as_ref().unwrap(), &text);
            }
            Some("header") => headers.push((member.location_name.clone().unwrap(), text)),
            _ if shape.payload.as_deref() == Some(name) => {
                raw = Some(
                    base64::engine::general_purpose::STANDARD
                        .decode(value.as_str().unwrap())
                        .unwrap(),
                );
            }
            _ => {
                body.insert(name.clone(), value.clone());
            }
        }
    }
    let query = query.finish();
    let target = if query.is_empty() {
        uri
    } else {
        format!("{uri}?{query}")
    };
    let body = raw.unwrap_or_else(|| {
        if op.http.method == "GET" {
            Vec::new()
        } else {
            serde_json::to_vec(&body).unwrap()
        }
    });
    Http {
        method: op.http.method.clone(),
        target,
        headers,
        body,
    }
}

/// Sends a request; returns the status, the error type header and the body.
async fn send(url: &str, request: &Http) -> (u16, String, String) {
    let addr = url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut head = format!(
        "{} {} HTTP/1.1\r\nhost: {addr}\r\ncontent-length: {}\r\nconnection: close\r\n",
        request.method,
        request.target,
        request.body.len()
    );
    if !request
        .headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        head.push_str("content-type: application/json\r\n");
    }
    for (name, value) in &request.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&request.body).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&response[..split]).to_string();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let error_type = head
        .lines()
        .find_map(|l| l.strip_prefix("x-amzn-errortype: "))
        .unwrap_or_default()
        .split(':')
        .next()
        .unwrap_or_default()
        .to_string();
    (
        status,
        error_type,
        String::from_utf8_lossy(&response[split + 4..]).to_string(),
    )
}

fn refused_by_the_model(error_type: &str, body: &str) -> bool {
    error_type == "SerializationException" || body.contains("failed to satisfy constraint")
}

fn shown(value: &Value, hidden: bool) -> String {
    match value {
        _ if hidden => "Value".into(),
        Value::String(s) => format!("Value '{s}'"),
        other => format!("Value '{other}'"),
    }
}

#[tokio::test]
#[ignore = "slow: scripts/test --all"]
async fn every_constraint_of_every_input_member_is_refused_as_aws_refuses_it() {
    let server = common::server(ServerConfig::default()).await;
    let url = server.url();
    let mut total = 0;
    let mut unbreakable = 0;
    let mut failures = Vec::new();
    for (service, operation) in OPERATIONS {
        let model = service.model();
        let input = &model.operation(operation).input.as_ref().unwrap().shape;
        let shape = model.shape(input);
        let mut walk = Walk {
            model,
            cases: Vec::new(),
            tried: HashSet::new(),
            unbreakable: Vec::new(),
        };
        for (name, member) in &shape.members.0 {
            let required = shape.required.iter().any(|r| r == name);
            let slot = Slot {
                parent: input,
                name,
                target: &member.shape,
                required,
                location: if shape.payload.as_ref() == Some(name) {
                    Some("payload")
                } else {
                    member.location.as_deref()
                },
            };
            let path = vec![Step::Member(name.clone())];
            walk.member(slot, path, &mut vec![input.clone()], shape.sensitive);
        }
        unbreakable += walk.unbreakable.len();
        for case in &walk.cases {
            total += 1;
            let valid_root = valid(model, input, &mut Vec::new());
            // The same request made valid: the member at its path with a valid value.
            let mut good = valid_root.clone();
            let leaf_shape = shape_at(model, input, &case.path);
            let good_leaf = valid(model, &leaf_shape, &mut Vec::new());
            place(model, input, &mut good, &case.path, Some(good_leaf));
            let (status, error_type, body) = send(&url, &render(model, operation, &good)).await;
            if refused_by_the_model(&error_type, &body) {
                failures.push(format!(
                    "{operation} {:?} made valid was refused ({status} {error_type}): {body}\n  request: {good}",
                    case.path
                ));
                continue;
            }
            let mut bad = valid_root.clone();
            let path = aws_path(model, input, &case.path);
            let expected = match &case.brk {
                Break::Missing => {
                    place(model, input, &mut bad, &case.path, None);
                    Some(format!(
                        "Value null at '{path}' failed to satisfy constraint: Member must not be null"
                    ))
                }
                Break::Value(value, rule) => {
                    let value = sized(model, input, &case.path, value.clone());
                    place(model, input, &mut bad, &case.path, Some(value.clone()));
                    Some(format!(
                        "{} at '{path}' failed to satisfy constraint: {rule}",
                        shown(&value, case.hidden)
                    ))
                }
                Break::Key(key, rule) => {
                    let value_shape = model
                        .shape(&leaf_shape)
                        .value
                        .as_ref()
                        .unwrap()
                        .shape
                        .clone();
                    let mut map = Map::new();
                    map.insert(key.clone(), valid(model, &value_shape, &mut Vec::new()));
                    let map = Value::Object(map);
                    place(model, input, &mut bad, &case.path, Some(map.clone()));
                    Some(format!(
                        "{} at '{path}' failed to satisfy constraint: Map keys must satisfy constraint: [",
                        shown(&map, case.hidden)
                    ))
                    .map(|head| format!("{head}\u{0}{rule}"))
                }
                Break::MapValue(text, rule) => {
                    let key_shape = model.shape(&leaf_shape).key.as_ref().unwrap().shape.clone();
                    let mut map = Map::new();
                    map.insert(valid_string(model.shape(&key_shape)), json!(text));
                    let map = Value::Object(map);
                    place(model, input, &mut bad, &case.path, Some(map.clone()));
                    Some(format!(
                        "{} at '{path}' failed to satisfy constraint: Map value must satisfy constraint: [\u{0}{rule}",
                        shown(&map, case.hidden)
                    ))
                }
                Break::Type(value) => {
                    place(model, input, &mut bad, &case.path, Some(value.clone()));
                    None
                }
            };
            let (status, error_type, body) = send(&url, &render(model, operation, &bad)).await;
            let message = serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|v| v["message"].as_str().map(str::to_string))
                .unwrap_or_default();
            let ok = match &expected {
                None => status == 400 && error_type == "SerializationException",
                Some(sentence) => {
                    let parts: Vec<&str> = sentence.split('\u{0}').collect();
                    status == 400
                        && error_type == "ValidationException"
                        && message.contains(" validation error")
                        && parts.iter().all(|p| message.contains(p))
                }
            };
            if !ok {
                failures.push(format!(
                    "{operation} {:?} {:?}: got {status} {error_type} {}\n  expected {:?}",
                    case.path,
                    case.brk,
                    message.chars().take(600).collect::<String>(),
                    expected.map(|e| e.replace('\u{0}', " ... ")),
                ));
            }
        }
    }
    println!(
        "{total} constraints broken and made valid over HTTP; {unbreakable} not breakable by a request that can be sent"
    );
    assert!(
        failures.is_empty(),
        "{} of {total} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(total > 300, "only {total} cases: the walk lost members");
    server.shutdown().await;
}

/// The message of an SDK error (any of the three clients).
fn sdk_message<E: aws_sdk_bedrockruntime::error::ProvideErrorMetadata>(err: E) -> (String, String) {
    (
        err.code().unwrap_or_default().to_string(),
        err.message().unwrap_or_default().to_string(),
    )
}

#[tokio::test]
async fn model_driven_errors_read_the_same_through_the_rust_sdk_as_through_boto3() {
    use aws_sdk_bedrock::types::{
        ModelInvocationJobInputDataConfig, ModelInvocationJobOutputDataConfig,
        ModelInvocationJobS3InputDataConfig, ModelInvocationJobS3OutputDataConfig,
        ModelInvocationJobStatus,
    };
    use aws_sdk_bedrockagentruntime::types::{
        KnowledgeBaseQuery, KnowledgeBaseRetrievalConfiguration,
        KnowledgeBaseVectorSearchConfiguration,
    };
    use aws_sdk_bedrockruntime::config::{BehaviorVersion, Credentials, Region};

    let expected: std::collections::BTreeMap<String, String> =
        serde_json::from_str(&std::fs::read_to_string("tests/interop/model_errors.json").unwrap())
            .unwrap();
    let server = common::server(ServerConfig::default()).await;
    let url = server.url();
    let credentials = Credentials::new("AKIDLOCALTEST", "local-test-secret", None, None, "test");
    let runtime = common::client(&url);
    let bedrock = aws_sdk_bedrock::Client::from_conf(
        aws_sdk_bedrock::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(&url)
            .credentials_provider(credentials.clone())
            .build(),
    );
    let agent = aws_sdk_bedrockagentruntime::Client::from_conf(
        aws_sdk_bedrockagentruntime::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(&url)
            .credentials_provider(credentials)
            .build(),
    );
    let mut got = std::collections::BTreeMap::new();

    let err = runtime
        .converse()
        .model_id(common::CLAUDE)
        .messages(
            aws_sdk_bedrockruntime::types::Message::builder()
                .role(aws_sdk_bedrockruntime::types::ConversationRole::User)
                .content(aws_sdk_bedrockruntime::types::ContentBlock::Text(
                    "hi".into(),
                ))
                .build()
                .unwrap(),
        )
        .inference_config(
            aws_sdk_bedrockruntime::types::InferenceConfiguration::builder()
                .max_tokens(0)
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    got.insert(
        "converse_max_tokens_zero",
        sdk_message(err.into_service_error()),
    );

    let err = bedrock
        .create_model_invocation_job()
        .job_name("bad name")
        .role_arn("arn:aws:iam::123456789012:role/BatchRole")
        .model_id(common::CLAUDE)
        .input_data_config(ModelInvocationJobInputDataConfig::S3InputDataConfig(
            ModelInvocationJobS3InputDataConfig::builder()
                .s3_uri("s3://interop-batch/in/")
                .build()
                .unwrap(),
        ))
        .output_data_config(ModelInvocationJobOutputDataConfig::S3OutputDataConfig(
            ModelInvocationJobS3OutputDataConfig::builder()
                .s3_uri("s3://interop-batch/out/")
                .build()
                .unwrap(),
        ))
        .send()
        .await
        .unwrap_err();
    got.insert("create_job_bad_name", sdk_message(err.into_service_error()));

    let err = bedrock
        .list_model_invocation_jobs()
        .status_equals(ModelInvocationJobStatus::from("Done"))
        .send()
        .await
        .unwrap_err();
    got.insert(
        "list_jobs_unknown_status",
        sdk_message(err.into_service_error()),
    );

    let err = agent
        .retrieve()
        .knowledge_base_id("ABCDEFGHIJ")
        .retrieval_query(KnowledgeBaseQuery::builder().text("x").build())
        .retrieval_configuration(
            KnowledgeBaseRetrievalConfiguration::builder()
                .vector_search_configuration(
                    KnowledgeBaseVectorSearchConfiguration::builder()
                        .number_of_results(101)
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    got.insert(
        "retrieve_too_many_results",
        sdk_message(err.into_service_error()),
    );

    assert_eq!(got.len(), expected.len());
    for (name, message) in &expected {
        assert_eq!(
            got[name.as_str()],
            ("ValidationException".to_string(), message.clone()),
            "{name}"
        );
    }
    server.shutdown().await;
}
