//! JSON mode: a generation request whose `generationConfig.responseMimeType` is
//! `application/json` is answered with JSON text instead of prose.
//!
//! With `responseJsonSchema` (JSON Schema) or `responseSchema` (Gemini's OpenAPI
//! subset, types in upper or lower case) the JSON fits the schema: an object with
//! every listed property (and any `required` name not listed, as a string), an
//! array with one item (or `minItems`, at most `maxItems`), an enum's first value,
//! `const`, the first branch of `anyOf`/`oneOf` that is not just `null`, `allOf`
//! merged, `$ref` into `$defs`/`definitions` resolved, strings named after their
//! property (`"simulated reasoning"`, a top-level string is the usual reply text)
//! and shaped by `format`/`minLength`/`maxLength`, numbers inside
//! `minimum`/`maximum`, booleans `true`. Past a depth of 8 (so that recursive
//! schemas end) an object keeps only its required properties, an array only its
//! `minItems`, and a nullable value or an `anyOf` with a `null` branch is `null`.
//! `pattern` and `multipleOf` are not honoured. Without a schema the answer is `{"reply": "Simulated <model> reply
//! to: <last user text>"}`.

use serde_json::{Map, Number, Value, json};

use crate::validate::field;

/// Deepest nesting sampled before objects and arrays are left empty.
const MAX_DEPTH: usize = 8;

/// Most items an array gets, whatever its `minItems`.
const MAX_ITEMS: u64 = 64;

/// The JSON text answering a request in JSON mode, or `None` when the request does
/// not ask for JSON.
pub(crate) fn answer(
    config: Option<&Map<String, Value>>,
    model: &str,
    user_text: &str,
) -> Option<String> {
    let config = config?;
    let mime = field(config, "responseMimeType").and_then(Value::as_str)?;
    let essence = mime.split(';').next().unwrap_or_default().trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return None;
    }
    let reply = format!("Simulated {model} reply to: {user_text}");
    let schema = field(config, "responseJsonSchema")
        .or_else(|| field(config, "responseSchema"))
        .filter(|s| s.is_object());
    let value = match schema {
        Some(schema) => Sampler {
            root: schema,
            reply: &reply,
        }
        .sample(schema, "", 0),
        None => json!({ "reply": reply }),
    };
    Some(value.to_string())
}

struct Sampler<'a> {
    /// The whole schema, which `$ref`s point into.
    root: &'a Value,
    /// The prose reply, for a top-level string.
    reply: &'a str,
}

impl Sampler<'_> {
    /// A value fitting `schema`; `name` is the property (or array property) it is for.
    fn sample(&self, schema: &Value, name: &str, depth: usize) -> Value {
        let Some(schema) = schema.as_object() else {
            // `true` (anything) or `false` (nothing fits): a string either way.
            return self.string(&Map::new(), name);
        };
        if depth > MAX_DEPTH * 2 {
            return Value::Null;
        }
        if let Some(target) = schema.get("$ref").and_then(Value::as_str) {
            return match self.resolve(target) {
                Some(target) => self.sample(target, name, depth + 1),
                None => self.string(&Map::new(), name),
            };
        }
        if let Some(value) = schema.get("const") {
            return value.clone();
        }
        if let Some(first) = schema
            .get("enum")
            .and_then(Value::as_array)
            .and_then(|e| e.first())
        {
            return first.clone();
        }
        for key in ["anyOf", "oneOf", "any_of", "one_of"] {
            let Some(branches) = schema.get(key).and_then(Value::as_array) else {
                continue;
            };
            // Deep down, a branch that allows only `null` ends the recursion.
            if depth >= MAX_DEPTH && branches.iter().any(is_null_only) {
                return Value::Null;
            }
            if let Some(branch) = branches
                .iter()
                .find(|b| !is_null_only(b))
                .or_else(|| branches.first())
            {
                return self.sample(branch, name, depth + 1);
            }
        }
        if let Some(parts) = schema.get("allOf").and_then(Value::as_array) {
            let merged = self.merge(schema, parts);
            return self.sample(&Value::Object(merged), name, depth + 1);
        }
        let nullable = schema.get("nullable").and_then(Value::as_bool) == Some(true)
            || types(schema).iter().any(|t| t == "null");
        let kind = self.kind(schema);
        if depth >= MAX_DEPTH && nullable {
            return Value::Null;
        }
        match kind.as_str() {
            "object" => self.object(schema, depth),
            "array" => self.array(schema, name, depth),
            "integer" => integer(schema),
            "number" => number(schema),
            "boolean" => Value::Bool(true),
            "null" => Value::Null,
            _ => self.string(schema, name),
        }
    }

    /// The type to produce: the first non-null `type`, else guessed from the keywords.
    fn kind(&self, schema: &Map<String, Value>) -> String {
        let declared = types(schema);
        if let Some(kind) = declared.iter().find(|t| *t != "null") {
            return kind.clone();
        }
        if !declared.is_empty() {
            return "null".to_owned();
        }
        if schema.contains_key("properties")
            || schema.contains_key("required")
            || schema.contains_key("additionalProperties")
        {
            "object".to_owned()
        } else if schema.contains_key("items") || schema.contains_key("prefixItems") {
            "array".to_owned()
        } else {
            "string".to_owned()
        }
    }

    /// Every listed property; past [`MAX_DEPTH`] only the required ones (whose
    /// nullable branches then end the recursion).
    fn object(&self, schema: &Map<String, Value>, depth: usize) -> Value {
        let mut out = Map::new();
        let required: Vec<&str> = schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let properties = schema.get("properties").and_then(Value::as_object);
        if let Some(properties) = properties {
            for (name, property) in properties {
                if depth < MAX_DEPTH || required.contains(&name.as_str()) {
                    out.insert(name.clone(), self.sample(property, name, depth + 1));
                }
            }
        }
        for name in required {
            if !out.contains_key(name) {
                out.insert(name.to_owned(), json!(format!("simulated {name}")));
            }
        }
        Value::Object(out)
    }

    fn array(&self, schema: &Map<String, Value>, name: &str, depth: usize) -> Value {
        let fallback = if depth >= MAX_DEPTH { 0 } else { 1 };
        let min = count(schema, "minItems")
            .unwrap_or(fallback)
            .clamp(fallback, MAX_ITEMS);
        let max = count(schema, "maxItems").unwrap_or(u64::MAX);
        let wanted = usize::try_from(min.min(max)).unwrap_or(1);
        let prefix: Vec<&Value> = schema
            .get("prefixItems")
            .or_else(|| schema.get("items").filter(|i| i.is_array()))
            .and_then(Value::as_array)
            .map(|p| p.iter().collect())
            .unwrap_or_default();
        let items = schema.get("items").filter(|i| !i.is_array());
        let mut out = Vec::with_capacity(wanted);
        for index in 0..wanted.max(prefix.len().min(usize::try_from(max).unwrap_or(0))) {
            let item_schema = match (prefix.get(index), items) {
                (Some(schema), _) => *schema,
                (None, Some(items)) => items,
                (None, None) => &Value::Bool(true),
            };
            out.push(self.sample(item_schema, name, depth + 1));
        }
        Value::Array(out)
    }

    fn string(&self, schema: &Map<String, Value>, name: &str) -> Value {
        let format = schema.get("format").and_then(Value::as_str).unwrap_or("");
        let mut text = match format {
            "date-time" => "2026-01-01T00:00:00Z".to_owned(),
            "date" => "2026-01-01".to_owned(),
            "time" => "12:00:00".to_owned(),
            "email" => "user@example.com".to_owned(),
            "uri" | "url" | "iri" => "https://example.com/".to_owned(),
            "uuid" => "00000000-0000-4000-8000-000000000000".to_owned(),
            "hostname" => "example.com".to_owned(),
            "ipv4" => "192.0.2.1".to_owned(),
            "ipv6" => "2001:db8::1".to_owned(),
            _ if name.is_empty() => self.reply.to_owned(),
            _ => format!("simulated {name}"),
        };
        if let Some(max) = count(schema, "maxLength") {
            text = text
                .chars()
                .take(usize::try_from(max).unwrap_or(usize::MAX))
                .collect();
        }
        if let Some(min) = count(schema, "minLength") {
            let min = usize::try_from(min.min(4096)).unwrap_or(0);
            while text.chars().count() < min {
                text.push('x');
            }
        }
        Value::String(text)
    }

    /// A `$ref` inside this schema: `#`, `#/$defs/Name`, `#/definitions/Name`, any pointer.
    fn resolve(&self, target: &str) -> Option<&Value> {
        let pointer = target.strip_prefix('#')?;
        if pointer.is_empty() {
            return Some(self.root);
        }
        self.root.pointer(pointer)
    }

    /// `allOf` folded into one schema: properties and required lists joined, the
    /// first `type` kept. `$ref` parts are resolved first.
    fn merge(&self, schema: &Map<String, Value>, parts: &[Value]) -> Map<String, Value> {
        let mut merged = schema.clone();
        merged.remove("allOf");
        let mut properties = merged
            .remove("properties")
            .and_then(|p| p.as_object().cloned())
            .unwrap_or_default();
        let mut required: Vec<Value> = merged
            .remove("required")
            .and_then(|r| r.as_array().cloned())
            .unwrap_or_default();
        for part in parts {
            let part = match part.get("$ref").and_then(Value::as_str) {
                Some(target) => self.resolve(target).unwrap_or(part),
                None => part,
            };
            let Some(part) = part.as_object() else {
                continue;
            };
            for (key, value) in part {
                match key.as_str() {
                    "properties" => {
                        if let Some(more) = value.as_object() {
                            for (name, property) in more {
                                properties
                                    .entry(name.clone())
                                    .or_insert_with(|| property.clone());
                            }
                        }
                    }
                    "required" => required.extend(value.as_array().cloned().unwrap_or_default()),
                    _ => {
                        merged.entry(key.clone()).or_insert_with(|| value.clone());
                    }
                }
            }
        }
        if !properties.is_empty() {
            merged.insert("properties".to_owned(), Value::Object(properties));
        }
        if !required.is_empty() {
            merged.insert("required".to_owned(), Value::Array(required));
        }
        merged
    }
}

/// The declared types, lower case (`"STRING"` → `string`; a JSON Schema list kept in order).
fn types(schema: &Map<String, Value>) -> Vec<String> {
    match schema.get("type") {
        Some(Value::String(kind)) => vec![kind.to_ascii_lowercase()],
        Some(Value::Array(kinds)) => kinds
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_ascii_lowercase)
            .collect(),
        _ => Vec::new(),
    }
}

/// A branch that allows only `null`.
fn is_null_only(schema: &Value) -> bool {
    schema
        .as_object()
        .is_some_and(|s| types(s) == ["null"] && !s.contains_key("$ref"))
}

/// A non-negative count keyword; proto JSON sends int64 as a string (`"2"`).
fn count(schema: &Map<String, Value>, key: &str) -> Option<u64> {
    let value = schema.get(key)?;
    value
        .as_u64()
        .or_else(|| value.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
        .or_else(|| value.as_str().and_then(|s| s.trim().parse().ok()))
}

/// A numeric keyword, as a number or a numeric string.
fn bound(schema: &Map<String, Value>, key: &str) -> Option<f64> {
    let value = schema.get(key)?;
    value
        .as_f64()
        .or_else(|| value.as_str().and_then(|s| s.trim().parse().ok()))
}

/// The inclusive range a number must fall in, from `minimum`/`maximum` and the
/// exclusive bounds (draft 6+ numbers, or draft 4 booleans beside min/max).
fn range(schema: &Map<String, Value>, step: f64) -> (Option<f64>, Option<f64>) {
    let flag = |key: &str| schema.get(key).and_then(Value::as_bool) == Some(true);
    let mut low = bound(schema, "minimum").map(|m| {
        if flag("exclusiveMinimum") {
            m + step
        } else {
            m
        }
    });
    let mut high = bound(schema, "maximum").map(|m| {
        if flag("exclusiveMaximum") {
            m - step
        } else {
            m
        }
    });
    if let Some(m) = bound(schema, "exclusiveMinimum") {
        low = Some(low.map_or(m + step, |l| l.max(m + step)));
    }
    if let Some(m) = bound(schema, "exclusiveMaximum") {
        high = Some(high.map_or(m - step, |h| h.min(m - step)));
    }
    (low, high)
}

fn integer(schema: &Map<String, Value>) -> Value {
    let (low, high) = range(schema, 1.0);
    let mut value = 1.0_f64;
    if let Some(low) = low {
        value = value.max(low.ceil());
    }
    if let Some(high) = high {
        value = value.min(high.floor());
    }
    json!(value as i64)
}

fn number(schema: &Map<String, Value>) -> Value {
    let (low, high) = range(schema, 0.001);
    let value = match (low, high) {
        (Some(low), Some(high)) => (low + high) / 2.0,
        (Some(low), None) => low.max(0.5),
        (None, Some(high)) => high.min(0.5),
        (None, None) => 0.5,
    };
    Number::from_f64(value).map_or(json!(0), Value::Number)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(schema: Value) -> Value {
        let config = json!({"responseMimeType": "application/json", "responseJsonSchema": schema});
        let text = answer(config.as_object(), "m", "hi").unwrap();
        serde_json::from_str(&text).unwrap()
    }

    #[test]
    fn only_json_mime_types_answer_json() {
        let config = json!({"responseMimeType": "text/plain"});
        assert_eq!(answer(config.as_object(), "m", "hi"), None);
        assert_eq!(answer(None, "m", "hi"), None);
        let config = json!({"response_mime_type": "application/json; charset=utf-8"});
        assert_eq!(
            answer(config.as_object(), "m", "hi").as_deref(),
            Some(r#"{"reply":"Simulated m reply to: hi"}"#)
        );
    }

    #[test]
    fn the_routing_classifier_gets_its_shape() {
        let value = sample(json!({
            "type": "object",
            "properties": {
                "reasoning": {"type": "string", "description": "why"},
                "model_choice": {"type": "string", "enum": ["flash", "pro"]},
            },
            "required": ["reasoning", "model_choice"],
        }));
        assert_eq!(
            value,
            json!({"reasoning": "simulated reasoning", "model_choice": "flash"})
        );
    }

    #[test]
    fn openapi_upper_case_types_and_nullable() {
        let config = json!({"responseMimeType": "application/json", "responseSchema": {
            "type": "OBJECT",
            "properties": {
                "count": {"type": "INTEGER", "minimum": 3},
                "ratio": {"type": "NUMBER", "maximum": 0.25},
                "ok": {"type": "BOOLEAN", "nullable": true},
                "tags": {"type": "ARRAY", "items": {"type": "STRING"}, "minItems": "2"},
            },
        }});
        let text = answer(config.as_object(), "m", "hi").unwrap();
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            value,
            json!({"count": 3, "ratio": 0.25, "ok": true, "tags": ["simulated tags", "simulated tags"]})
        );
    }

    #[test]
    fn refs_branches_and_depth() {
        let value = sample(json!({
            "$defs": {"node": {"type": "object", "properties": {
                "name": {"type": ["null", "string"], "format": "email"},
                "child": {"anyOf": [{"type": "null"}, {"$ref": "#/$defs/node"}]},
            }, "required": ["name", "child"]}},
            "$ref": "#/$defs/node",
        }));
        assert_eq!(value["name"], "user@example.com");
        let mut node = &value;
        let mut depth = 0;
        while let Some(child) = node.get("child").filter(|c| c.is_object()) {
            node = child;
            depth += 1;
        }
        assert!((1..=MAX_DEPTH).contains(&depth), "depth {depth}: {value}");
        assert_eq!(node["child"], Value::Null, "{value}");
        let value = sample(json!({"type": "string", "minLength": 40, "maxLength": 45}));
        let text = value.as_str().unwrap();
        assert!(text.starts_with("Simulated m reply to: hi"), "{text}");
        assert_eq!(text.chars().count(), 40);
        assert_eq!(sample(json!({"type": "array", "maxItems": 0})), json!([]));
        assert_eq!(
            sample(json!({"allOf": [{"properties": {"a": {"const": 7}}}, {"required": ["b"]}]})),
            json!({"a": 7, "b": "simulated b"})
        );
        assert_eq!(
            sample(json!({"type": "number", "exclusiveMinimum": 1, "exclusiveMaximum": 2})),
            json!(1.5)
        );
    }
}
