//! The tool-schema cleaner: JSON Schema as clients write it → the subset Gemini takes.
//!
//! Rules (docs/PROTOCOL.md §4):
//! - `$ref` is resolved against the root (`#/$defs/…`, `#/definitions/…`, any JSON
//!   pointer); a reference to a schema that is already being expanded (recursion), or
//!   one that cannot be resolved, becomes a permissive string.
//! - `allOf` branches are merged; `anyOf`/`oneOf` of constants become an `enum`, else
//!   the richest branch is kept (objects before arrays before scalars), and a `null`
//!   branch makes the result `nullable`.
//! - A type array becomes its first non-null type, plus `nullable` when it had `null`;
//!   `const` becomes a one-value `enum`; enum values are stringified (and the type
//!   becomes `string`).
//! - `minLength`, `maxLength`, `pattern`, `minimum`, `maximum`, `exclusiveMinimum`,
//!   `exclusiveMaximum`, `multipleOf`, `minItems`, `maxItems`, `format`, `default` and
//!   `examples` move into the description as hints; every other key outside `type,
//!   description, properties, required, items, enum, nullable` is dropped.
//! - `required` is pruned to existing properties; an object without properties gets a
//!   placeholder property; an array without items gets string items; a schema without
//!   any type information becomes a string.
//! - Nesting deeper than [`MAX_SCHEMA_DEPTH`], or more than [`MAX_SCHEMA_NODES`]
//!   schemas in all, is replaced by a permissive string. The cleaner never panics.

use serde_json::{Map, Value, json};

/// How deep schemas may nest before the rest is replaced by a permissive string.
pub const MAX_SCHEMA_DEPTH: usize = 32;

/// How many schemas one tool's parameters may expand to (after `$ref` resolution).
pub const MAX_SCHEMA_NODES: usize = 10_000;

/// The keys Gemini accepts in a schema.
pub const ALLOWED_KEYS: [&str; 7] = [
    "type",
    "description",
    "properties",
    "required",
    "items",
    "enum",
    "nullable",
];

/// Name of the property given to objects that have none.
pub const PLACEHOLDER_PROPERTY: &str = "_placeholder";

const HINT_KEYS: [&str; 13] = [
    "minLength",
    "maxLength",
    "pattern",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minItems",
    "maxItems",
    "format",
    "default",
    "examples",
];

const TYPES: [&str; 6] = ["string", "number", "integer", "boolean", "array", "object"];

/// Cleans a tool's `input_schema` into Gemini `parameters`: the root is always an
/// object schema.
pub fn clean_parameters(schema: &Value) -> Value {
    let mut out = clean_map(schema);
    out.remove("nullable");
    out.remove("enum");
    out.remove("items");
    out.insert("type".into(), Value::from("object"));
    finalize(&mut out, 0);
    Value::Object(out)
}

/// Cleans any schema (for example a response schema).
pub fn clean_schema(schema: &Value) -> Value {
    let mut out = clean_map(schema);
    finalize(&mut out, 0);
    Value::Object(out)
}

fn clean_map(schema: &Value) -> Map<String, Value> {
    let mut cleaner = Cleaner {
        root: schema,
        nodes: 0,
        refs: Vec::new(),
    };
    cleaner.clean(schema, 0)
}

struct Cleaner<'a> {
    root: &'a Value,
    nodes: usize,
    /// The `$ref`s being expanded, innermost last.
    refs: Vec<String>,
}

impl Cleaner<'_> {
    fn clean(&mut self, schema: &Value, depth: usize) -> Map<String, Value> {
        let Some(obj) = schema.as_object() else {
            // `true`, `{}`-like booleans and junk: anything goes.
            return Map::new();
        };
        if depth >= MAX_SCHEMA_DEPTH || self.nodes >= MAX_SCHEMA_NODES {
            return permissive("schema nested too deeply to describe");
        }
        self.nodes += 1;

        if let Some(reference) = obj.get("$ref").and_then(Value::as_str) {
            let mut out = self.resolve(reference, depth);
            // Keys beside `$ref` (usually a description) refine the target.
            let mut rest = obj.clone();
            rest.remove("$ref");
            if !rest.is_empty() {
                let own = self.clean(&Value::Object(rest), depth + 1);
                merge_preferring(&mut out, own);
            }
            return out;
        }

        let mut out = Map::new();
        let mut hints = Vec::new();

        // `allOf`: every branch applies; merge them into this schema.
        let mut merged_branches = Vec::new();
        if let Some(branches) = obj.get("allOf").and_then(Value::as_array) {
            for branch in branches {
                merged_branches.push(self.clean(branch, depth + 1));
            }
        }

        // `anyOf` / `oneOf`: one branch applies.
        let alternatives = obj
            .get("anyOf")
            .and_then(Value::as_array)
            .or_else(|| obj.get("oneOf").and_then(Value::as_array));
        if let Some(branches) = alternatives {
            let (chosen, nullable) = self.choose(branches, depth);
            if let Some(chosen) = chosen {
                merged_branches.push(chosen);
            }
            if nullable {
                out.insert("nullable".into(), Value::Bool(true));
            }
        }

        // `type`: a string or an array of strings.
        match obj.get("type") {
            Some(Value::String(t)) if t == "null" => {
                out.insert("nullable".into(), Value::Bool(true));
            }
            Some(Value::String(t)) if TYPES.contains(&t.as_str()) => {
                out.insert("type".into(), Value::from(t.as_str()));
            }
            Some(Value::Array(types)) => {
                let names: Vec<&str> = types.iter().filter_map(Value::as_str).collect();
                if let Some(first) = names.iter().find(|t| TYPES.contains(t)) {
                    out.insert("type".into(), Value::from(*first));
                }
                if names.contains(&"null") {
                    out.insert("nullable".into(), Value::Bool(true));
                }
                let others: Vec<&str> = names
                    .iter()
                    .copied()
                    .filter(|t| *t != "null" && TYPES.contains(t))
                    .skip(1)
                    .collect();
                if !others.is_empty() {
                    hints.push(format!("may also be: {}", others.join(", ")));
                }
            }
            _ => {}
        }
        if let Some(Value::Bool(nullable)) = obj.get("nullable")
            && *nullable
        {
            out.insert("nullable".into(), Value::Bool(true));
        }

        // `const` / `enum`.
        let values: Option<Vec<Value>> = match (obj.get("const"), obj.get("enum")) {
            (Some(c), _) => Some(vec![c.clone()]),
            (None, Some(Value::Array(e))) => Some(e.clone()),
            _ => None,
        };
        if let Some(values) = values {
            let strings = enum_strings(&values);
            if strings.iter().any(|s| s == "null") && values.iter().any(Value::is_null) {
                out.insert("nullable".into(), Value::Bool(true));
            }
            let strings: Vec<Value> = values
                .iter()
                .zip(strings)
                .filter(|(v, _)| !v.is_null())
                .map(|(_, s)| Value::String(s))
                .collect();
            if !strings.is_empty() {
                out.insert("type".into(), Value::from("string"));
                out.insert("enum".into(), Value::Array(strings));
            }
        }

        // Nested schemas.
        if let Some(Value::Object(props)) = obj.get("properties") {
            let mut cleaned = Map::new();
            for (name, prop) in props {
                cleaned.insert(name.clone(), Value::Object(self.clean(prop, depth + 1)));
            }
            out.insert("properties".into(), Value::Object(cleaned));
        }
        match obj.get("items") {
            Some(items @ Value::Object(_)) => {
                out.insert("items".into(), Value::Object(self.clean(items, depth + 1)));
            }
            Some(Value::Array(tuple)) => {
                let first = tuple.first().unwrap_or(&Value::Null);
                out.insert("items".into(), Value::Object(self.clean(first, depth + 1)));
            }
            _ => {}
        }
        if let Some(Value::Array(required)) = obj.get("required") {
            let names: Vec<Value> = required.iter().filter(|v| v.is_string()).cloned().collect();
            out.insert("required".into(), Value::Array(names));
        }

        // Description and hints.
        let description = match (obj.get("description"), obj.get("title")) {
            (Some(Value::String(d)), _) if !d.trim().is_empty() => d.trim().to_owned(),
            (_, Some(Value::String(t))) => t.trim().to_owned(),
            _ => String::new(),
        };
        for key in HINT_KEYS {
            if let Some(value) = obj.get(key) {
                hints.push(format!("{key}: {}", hint_value(value)));
            }
        }
        let description = with_hints(description, &hints);
        if !description.is_empty() {
            out.insert("description".into(), Value::String(description));
        }

        for branch in merged_branches {
            merge_preferring(&mut out, branch);
        }
        out
    }

    /// The branch an `anyOf`/`oneOf` becomes, and whether one branch allowed `null`.
    fn choose(&mut self, branches: &[Value], depth: usize) -> (Option<Map<String, Value>>, bool) {
        let mut nullable = false;
        let mut cleaned = Vec::new();
        for branch in branches {
            if is_null_schema(branch) {
                nullable = true;
                continue;
            }
            cleaned.push(self.clean(branch, depth + 1));
        }
        if cleaned.is_empty() {
            return (None, nullable);
        }
        // Every branch a constant (or enum): one enum of all of them.
        if cleaned
            .iter()
            .all(|b| b.contains_key("enum") && !b.contains_key("properties"))
        {
            let mut values = Vec::new();
            for b in &cleaned {
                if let Some(Value::Array(e)) = b.get("enum") {
                    for v in e {
                        if !values.contains(v) {
                            values.push(v.clone());
                        }
                    }
                }
            }
            let mut out = Map::new();
            out.insert("type".into(), Value::from("string"));
            out.insert("enum".into(), Value::Array(values));
            let descriptions: Vec<&str> = cleaned
                .iter()
                .filter_map(|b| b.get("description").and_then(Value::as_str))
                .collect();
            if !descriptions.is_empty() {
                out.insert("description".into(), Value::from(descriptions.join("; ")));
            }
            return (Some(out), nullable);
        }
        let mut best = 0;
        for (i, b) in cleaned.iter().enumerate() {
            if richness(b) > richness(&cleaned[best]) {
                best = i;
            }
        }
        let types: Vec<String> = cleaned
            .iter()
            .filter_map(|b| b.get("type").and_then(Value::as_str))
            .map(str::to_owned)
            .collect();
        let mut chosen = cleaned.swap_remove(best);
        if chosen.get("nullable") == Some(&Value::Bool(true)) {
            nullable = true;
        }
        let mut distinct: Vec<&str> = Vec::new();
        for t in &types {
            if !distinct.contains(&t.as_str()) {
                distinct.push(t);
            }
        }
        if distinct.len() > 1 {
            let description = chosen
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let hint = format!("one of: {}", distinct.join(", "));
            chosen.insert(
                "description".into(),
                Value::String(with_hints(description, &[hint])),
            );
        }
        (Some(chosen), nullable)
    }

    fn resolve(&mut self, reference: &str, depth: usize) -> Map<String, Value> {
        if self.refs.iter().any(|r| r == reference) {
            return permissive("recursive structure");
        }
        let Some(target) = pointer(self.root, reference) else {
            return permissive("unresolved reference");
        };
        self.refs.push(reference.to_owned());
        let out = self.clean(target, depth + 1);
        self.refs.pop();
        out
    }
}

/// Resolves a local `$ref` (`#`, `#/…` JSON pointer, or a bare `$defs` name).
fn pointer<'a>(root: &'a Value, reference: &str) -> Option<&'a Value> {
    let path = reference.strip_prefix('#')?;
    if path.is_empty() {
        return Some(root);
    }
    let path = path.strip_prefix('/')?;
    let mut node = root;
    for raw in path.split('/') {
        let token = raw.replace("~1", "/").replace("~0", "~");
        let token = percent_decode(&token);
        node = match node {
            Value::Object(map) => map.get(&token)?,
            Value::Array(items) => items.get(token.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(node)
}

fn percent_decode(s: &str) -> String {
    if !s.contains('%') {
        return s.to_owned();
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = s.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn is_null_schema(schema: &Value) -> bool {
    match schema.get("type") {
        Some(Value::String(t)) => t == "null",
        Some(Value::Array(ts)) => !ts.is_empty() && ts.iter().all(|t| t == "null"),
        _ => schema.get("const").is_some_and(Value::is_null),
    }
}

fn richness(schema: &Map<String, Value>) -> u8 {
    match schema.get("type").and_then(Value::as_str) {
        Some("object") if schema.contains_key("properties") => 4,
        Some("object") => 3,
        Some("array") => 2,
        Some(_) => 1,
        None if schema.contains_key("properties") => 4,
        None => 0,
    }
}

fn enum_strings(values: &[Value]) -> Vec<String> {
    values
        .iter()
        .map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect()
}

fn hint_value(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn with_hints(description: String, hints: &[String]) -> String {
    if hints.is_empty() {
        return description;
    }
    let hints = hints.join(", ");
    if description.is_empty() {
        format!("({hints})")
    } else {
        format!("{description} ({hints})")
    }
}

fn permissive(why: &str) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("type".into(), Value::from("string"));
    out.insert(
        "description".into(),
        Value::String(format!("JSON-encoded value ({why})")),
    );
    out
}

/// Merges `from` into `into`; what `into` already says wins, except that properties
/// and required names are united and descriptions are both kept.
fn merge_preferring(into: &mut Map<String, Value>, from: Map<String, Value>) {
    for (key, value) in from {
        match key.as_str() {
            "properties" => {
                let Value::Object(props) = value else {
                    continue;
                };
                let entry = into
                    .entry("properties")
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(existing) = entry {
                    for (name, prop) in props {
                        existing.entry(name).or_insert(prop);
                    }
                }
            }
            "required" => {
                let Value::Array(names) = value else { continue };
                let entry = into
                    .entry("required")
                    .or_insert_with(|| Value::Array(Vec::new()));
                if let Value::Array(existing) = entry {
                    for name in names {
                        if !existing.contains(&name) {
                            existing.push(name);
                        }
                    }
                }
            }
            "description" => match into.get_mut("description") {
                Some(Value::String(existing)) => {
                    if let Value::String(more) = value
                        && !existing.contains(more.as_str())
                    {
                        // Hints "(…)" follow text with a space, sentences with "; ".
                        let sep = if more.starts_with('(') { " " } else { "; " };
                        existing.push_str(sep);
                        existing.push_str(&more);
                    }
                }
                _ => {
                    into.insert(key, value);
                }
            },
            "nullable" => {
                if value == Value::Bool(true) {
                    into.insert(key, value);
                }
            }
            _ => {
                into.entry(key).or_insert(value);
            }
        }
    }
}

/// The last pass: infer missing types, prune `required`, give empty objects a
/// placeholder and arrays their items.
fn finalize(schema: &mut Map<String, Value>, depth: usize) {
    if depth > MAX_SCHEMA_DEPTH + 2 {
        *schema = permissive("schema nested too deeply to describe");
        return;
    }
    if !schema.contains_key("type") {
        let inferred = if schema.contains_key("properties") {
            "object"
        } else if schema.contains_key("items") {
            "array"
        } else {
            "string"
        };
        schema.insert("type".into(), Value::from(inferred));
    }
    let kind = schema
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("string")
        .to_owned();
    if kind != "object" {
        schema.remove("properties");
        schema.remove("required");
    }
    if kind != "array" {
        schema.remove("items");
    }
    if schema.contains_key("enum") && kind != "string" {
        schema.insert("type".into(), Value::from("string"));
    }
    match kind.as_str() {
        "object" => {
            let mut props = match schema.remove("properties") {
                Some(Value::Object(props)) => props,
                _ => Map::new(),
            };
            for prop in props.values_mut() {
                match prop {
                    Value::Object(p) => finalize(p, depth + 1),
                    other => *other = json!({"type": "string"}),
                }
            }
            if props.is_empty() {
                props.insert(
                    PLACEHOLDER_PROPERTY.into(),
                    json!({"type": "boolean", "description": "Unused; leave out."}),
                );
            }
            if let Some(Value::Array(required)) = schema.get_mut("required") {
                required.retain(|r| r.as_str().is_some_and(|r| props.contains_key(r)));
                if required.is_empty() {
                    schema.remove("required");
                }
            }
            schema.insert("properties".into(), Value::Object(props));
        }
        "array" => match schema.get_mut("items") {
            Some(Value::Object(items)) => finalize(items, depth + 1),
            _ => {
                schema.insert("items".into(), json!({"type": "string"}));
            }
        },
        _ => {}
    }
    schema.retain(|k, _| ALLOWED_KEYS.contains(&k.as_str()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;
    use proptest::prelude::*;

    #[test]
    fn resolves_refs_and_merges_all_of() {
        let schema = json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "user": {"$ref": "#/$defs/User", "description": "who"},
                "tags": {"type": "array", "items": {"$ref": "#/definitions/Tag"}, "minItems": 1}
            },
            "required": ["user", "missing"],
            "$defs": {
                "User": {"allOf": [
                    {"type": "object", "properties": {"name": {"type": "string", "minLength": 1}}, "required": ["name"]},
                    {"properties": {"age": {"type": "integer", "minimum": 0}}}
                ]}
            },
            "definitions": {"Tag": {"type": "string", "title": "Tag", "pattern": "^[a-z]+$"}}
        });
        assert_eq!(
            clean_parameters(&schema),
            json!({
                "type": "object",
                "properties": {
                    "user": {
                        "type": "object",
                        "description": "who",
                        "properties": {
                            "name": {"type": "string", "description": "(minLength: 1)"},
                            "age": {"type": "integer", "description": "(minimum: 0)"}
                        },
                        "required": ["name"]
                    },
                    "tags": {
                        "type": "array",
                        "description": "(minItems: 1)",
                        "items": {"type": "string", "description": "Tag (pattern: ^[a-z]+$)"}
                    }
                },
                "required": ["user"]
            })
        );
    }

    #[test]
    fn any_of_constants_become_an_enum_and_null_becomes_nullable() {
        let schema = json!({"type": "object", "properties": {
            "mode": {"anyOf": [{"const": "fast"}, {"const": "slow"}, {"type": "null"}]},
            "size": {"type": ["integer", "null"], "enum": [1, 2]},
            "x": {"oneOf": [{"type": "string"}, {"type": "object", "properties": {"a": {"type": "boolean"}}}]}
        }});
        assert_eq!(
            clean_parameters(&schema)["properties"],
            json!({
                "mode": {"type": "string", "enum": ["fast", "slow"], "nullable": true},
                "size": {"type": "string", "enum": ["1", "2"], "nullable": true},
                "x": {"type": "object", "description": "(one of: string, object)",
                      "properties": {"a": {"type": "boolean"}}}
            })
        );
    }

    #[test]
    fn empty_objects_get_a_placeholder_and_recursion_is_cut() {
        assert_eq!(
            clean_parameters(&json!({"type": "object", "properties": {}})),
            json!({"type": "object", "properties": {PLACEHOLDER_PROPERTY: {"type": "boolean", "description": "Unused; leave out."}}})
        );
        let tree = json!({"$ref": "#/$defs/Node", "$defs": {"Node": {"type": "object", "properties": {
            "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}}}}}});
        assert_eq!(
            clean_parameters(&tree)["properties"]["children"]["items"],
            json!({"type": "string", "description": "JSON-encoded value (recursive structure)"})
        );
    }

    #[test]
    fn deep_nesting_is_bounded() {
        let mut schema = json!({"type": "string"});
        for _ in 0..200 {
            schema = json!({"type": "object", "properties": {"a": schema}});
        }
        let out = clean_parameters(&schema);
        let mut depth = 0;
        let mut node = &out;
        while let Some(next) = node.get("properties").and_then(|p| p.get("a")) {
            node = next;
            depth += 1;
        }
        assert!(depth <= MAX_SCHEMA_DEPTH, "{depth}");
        assert_eq!(node["type"], "string");
    }

    #[test]
    fn exponential_refs_stay_within_the_node_budget() {
        let mut defs = Map::new();
        for i in 0..40 {
            defs.insert(
                format!("D{i}"),
                json!({"type": "object", "properties": {
                    "l": {"$ref": format!("#/$defs/D{}", i + 1)},
                    "r": {"$ref": format!("#/$defs/D{}", i + 1)}}}),
            );
        }
        defs.insert("D40".into(), json!({"type": "string"}));
        let schema = json!({"$ref": "#/$defs/D0", "$defs": defs});
        let out = clean_parameters(&schema);
        assert!(out.to_string().len() < 10_000_000);
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let keys = prop_oneof![
            Just("type".to_owned()),
            Just("properties".to_owned()),
            Just("items".to_owned()),
            Just("required".to_owned()),
            Just("enum".to_owned()),
            Just("const".to_owned()),
            Just("anyOf".to_owned()),
            Just("oneOf".to_owned()),
            Just("allOf".to_owned()),
            Just("$ref".to_owned()),
            Just("$defs".to_owned()),
            Just("nullable".to_owned()),
            Just("description".to_owned()),
            Just("additionalProperties".to_owned()),
            Just("minLength".to_owned()),
            "[a-z$/#]{0,6}",
        ];
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            prop_oneof![
                Just("object".to_owned()),
                Just("array".to_owned()),
                Just("string".to_owned()),
                Just("null".to_owned()),
                Just("#/$defs/a".to_owned()),
                Just("#".to_owned()),
                Just("#/properties/a".to_owned()),
                "[a-z#/%~0-9]{0,8}",
            ]
            .prop_map(Value::String),
        ];
        leaf.prop_recursive(6, 64, 6, move |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                proptest::collection::btree_map(keys.clone(), inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Checks that `schema` (a cleaned schema) has only allowed keys, all the way down.
    fn check(schema: &Value) -> Result<(), String> {
        let Value::Object(map) = schema else {
            return Err(format!("not an object: {schema}"));
        };
        for (key, value) in map {
            match key.as_str() {
                "type" => {
                    let t = value.as_str().ok_or("type not a string")?;
                    if !TYPES.contains(&t) {
                        return Err(format!("bad type {t}"));
                    }
                }
                "description" => {
                    value.as_str().ok_or("description not a string")?;
                }
                "nullable" => {
                    value.as_bool().ok_or("nullable not a bool")?;
                }
                "enum" => {
                    let values = value.as_array().ok_or("enum not an array")?;
                    if !values.iter().all(Value::is_string) {
                        return Err("enum value not a string".into());
                    }
                }
                "required" => {
                    let props = map.get("properties").and_then(Value::as_object);
                    for r in value.as_array().ok_or("required not an array")? {
                        let r = r.as_str().ok_or("required name not a string")?;
                        if !props.is_some_and(|p| p.contains_key(r)) {
                            return Err(format!("required {r} is not a property"));
                        }
                    }
                }
                "properties" => {
                    let props = value.as_object().ok_or("properties not an object")?;
                    if props.is_empty() {
                        return Err("empty properties".into());
                    }
                    for p in props.values() {
                        check(p)?;
                    }
                }
                "items" => check(value)?,
                other => return Err(format!("key {other} left in")),
            }
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn random_json_yields_only_allowed_keys(input in arb_json()) {
            let out = clean_parameters(&input);
            prop_assert_eq!(out.get("type"), Some(&Value::from("object")));
            if let Err(e) = check(&out) {
                prop_assert!(false, "{}: {} -> {}", e, input, out);
            }
            let any = clean_schema(&input);
            if let Err(e) = check(&any) {
                prop_assert!(false, "{}: {} -> {}", e, input, any);
            }
        }
    }
}
