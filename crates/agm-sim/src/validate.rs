//! Google's checks on what it receives, over plain `serde_json::Value` (never the
//! gateway's types, so a gateway bug cannot hide behind a shared definition).
//!
//! Two passes, like Google: first the JSON is read against the proto shape (unknown
//! field names, wrong JSON types, bad base64, two `data` fields in one part), every
//! problem listed in one 400 `Invalid JSON payload received...`; then the request's
//! meaning is checked (empty contents, roles, tool names, schema rules, function-call
//! pairing, limits), in Google's `* GenerateContentRequest.<field>: <problem>` form.

use std::collections::HashSet;

use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde_json::{Map, Value};

use crate::config::SimModel;
use crate::error::{GoogleError, Violation};

const PROTO: &str = "type.googleapis.com/google.ai.generativelanguage.v1beta";

/// Which flavour of `GenerateContentRequest` is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flavor {
    /// Cloud Code's `request` (has `sessionId`, `labels`), paths prefixed `request.`.
    CloudCode,
    /// The official Gemini API body (has an ignored `model`), paths at the top level.
    GeminiApi,
}

impl Flavor {
    fn root(self) -> &'static str {
        match self {
            Flavor::CloudCode => "request",
            Flavor::GeminiApi => "",
        }
    }
}

/// The envelope of a Cloud Code generation call, read but not yet judged.
pub(crate) struct Envelope<'a> {
    pub project: Option<&'a str>,
    pub model: Option<&'a str>,
    pub request: &'a Value,
}

/// Reads the generation envelope and its `request` (first pass).
pub(crate) fn envelope(body: &Value) -> Result<Envelope<'_>, GoogleError> {
    let object = top_level_object(body)?;
    let mut reader = Reader::default();
    let mut envelope = Envelope {
        project: None,
        model: None,
        request: &Value::Null,
    };
    for (key, value) in object {
        let path = join("", key);
        match camel(key).as_str() {
            "project" => envelope.project = reader.string("", key, &path, value),
            "model" => envelope.model = reader.string("", key, &path, value),
            "requestId" | "userAgent" | "requestType" => {
                reader.string("", key, &path, value);
            }
            "request" => {
                if let Some(request) =
                    reader.object("", key, &path, "GenerateContentRequest", value)
                {
                    reader.generate_request(&path, request, Flavor::CloudCode);
                    envelope.request = value;
                }
            }
            _ => reader.unknown("", key),
        }
    }
    reader.finish()?;
    Ok(envelope)
}

/// Reads an official-API `GenerateContentRequest` body (first pass).
pub(crate) fn gemini_request(body: &Value) -> Result<(), GoogleError> {
    let object = top_level_object(body)?;
    let mut reader = Reader::default();
    reader.generate_request("", object, Flavor::GeminiApi);
    reader.finish()
}

/// Reads Cloud Code's `countTokens` body, exactly `{"request":{"model","contents"}}`;
/// returns the model (without `models/`) and the contents.
pub(crate) fn cloud_count_tokens(body: &Value) -> Result<(Option<&str>, &Value), GoogleError> {
    let object = top_level_object(body)?;
    let mut reader = Reader::default();
    let mut model = None;
    let mut contents = &Value::Null;
    for (key, value) in object {
        let path = join("", key);
        if camel(key) != "request" {
            reader.unknown("", key);
            continue;
        }
        let Some(request) = reader.object("", key, &path, "CountTokensRequest", value) else {
            continue;
        };
        for (inner_key, inner) in request {
            let inner_path = join(&path, inner_key);
            match camel(inner_key).as_str() {
                "model" => model = reader.string(&path, inner_key, &inner_path, inner),
                "contents" => {
                    reader.contents(&path, inner_key, &inner_path, inner);
                    contents = inner;
                }
                _ => reader.unknown(&path, inner_key),
            }
        }
    }
    reader.finish()?;
    Ok((
        model.map(|m| m.strip_prefix("models/").unwrap_or(m)),
        contents,
    ))
}

/// Reads the official API's `countTokens` body: `{contents}` or
/// `{generateContentRequest}`; returns the contents.
pub(crate) fn gemini_count_tokens(body: &Value) -> Result<&Value, GoogleError> {
    let object = top_level_object(body)?;
    let mut reader = Reader::default();
    let mut contents = None;
    let mut wrapped = None;
    for (key, value) in object {
        let path = join("", key);
        match camel(key).as_str() {
            "contents" => {
                reader.contents("", key, &path, value);
                contents = Some(value);
            }
            "generateContentRequest" => {
                if let Some(request) =
                    reader.object("", key, &path, "GenerateContentRequest", value)
                {
                    reader.generate_request(&path, request, Flavor::GeminiApi);
                    wrapped = field(request, "contents");
                }
            }
            _ => reader.unknown("", key),
        }
    }
    reader.finish()?;
    match (contents, wrapped) {
        (Some(_), Some(_)) => Err(GoogleError::invalid_argument(
            "* CountTokensRequest: contents and generate_content_request cannot both be set.\n",
        )),
        (Some(contents), None) | (None, Some(contents)) => {
            count_tokens_contents(contents)?;
            Ok(contents)
        }
        (None, None) => Err(GoogleError::invalid_argument(
            "* CountTokensRequest.contents: contents is not specified\n",
        )),
    }
}

/// The contents of a countTokens call must make sense too.
pub(crate) fn count_tokens_contents(contents: &Value) -> Result<(), GoogleError> {
    let mut lines = Lines::default();
    if contents.as_array().is_none_or(Vec::is_empty) {
        lines.push("contents", "contents is not specified");
        return lines.finish();
    }
    check_roles(contents)?;
    check_contents_semantics(contents, "contents", &mut lines);
    lines.finish()
}

fn top_level_object(body: &Value) -> Result<&Map<String, Value>, GoogleError> {
    match body {
        Value::Object(object) => Ok(object),
        Value::Null => Ok(empty_object()),
        Value::String(_) => Err(GoogleError::invalid_argument(
            "Invalid JSON payload received. Unexpected token.",
        )),
        other => Err(GoogleError::invalid_argument(format!(
            "Invalid JSON payload received. Expected an object, got {}.",
            shorten(other)
        ))),
    }
}

fn empty_object() -> &'static Map<String, Value> {
    static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
    EMPTY.get_or_init(Map::new)
}

// ---------------------------------------------------------------- first pass

/// Collects first-pass (proto-reading) problems.
#[derive(Default)]
struct Reader {
    violations: Vec<Violation>,
}

impl Reader {
    fn finish(self) -> Result<(), GoogleError> {
        if self.violations.is_empty() {
            Ok(())
        } else {
            Err(GoogleError::bad_request(self.violations))
        }
    }

    fn unknown(&mut self, parent: &str, name: &str) {
        self.unknown_because(parent, name, "Cannot find field.");
    }

    fn unknown_because(&mut self, parent: &str, name: &str, reason: &str) {
        let at = if parent.is_empty() {
            String::new()
        } else {
            format!(" at '{parent}'")
        };
        self.violations.push(Violation {
            field: parent.to_owned(),
            description: format!(
                "Invalid JSON payload received. Unknown name \"{name}\"{at}: {reason}"
            ),
        });
    }

    fn invalid(&mut self, path: &str, label: &str, value: &Value) {
        self.invalid_text(path, label, &shorten(value));
    }

    fn invalid_text(&mut self, path: &str, label: &str, shown: &str) {
        self.violations.push(Violation {
            field: path.to_owned(),
            description: format!("Invalid value at '{path}' ({label}), {shown}"),
        });
    }

    /// A value of the wrong JSON kind: lists and objects are parse errors, scalars
    /// "invalid values".
    fn mismatch(&mut self, parent: &str, name: &str, path: &str, label: &str, value: &Value) {
        match value {
            Value::Array(_) => {
                self.unknown_because(
                    parent,
                    name,
                    "Proto field is not repeating, cannot start list.",
                );
            }
            Value::Object(_) => {
                self.unknown_because(parent, name, "Starting an object on a scalar field.");
            }
            _ => self.invalid(path, label, value),
        }
    }

    fn object<'a>(
        &mut self,
        parent: &str,
        name: &str,
        path: &str,
        message: &str,
        value: &'a Value,
    ) -> Option<&'a Map<String, Value>> {
        match value {
            Value::Object(object) => Some(object),
            Value::Null => None,
            Value::Array(_) => {
                self.unknown_because(
                    parent,
                    name,
                    "Proto field is not repeating, cannot start list.",
                );
                None
            }
            other => {
                self.invalid(path, &format!("{PROTO}.{message}"), other);
                None
            }
        }
    }

    fn list<'a>(&mut self, path: &str, label: &str, value: &'a Value) -> Option<&'a Vec<Value>> {
        match value {
            Value::Array(items) => Some(items),
            Value::Null => None,
            other => {
                self.invalid(path, label, other);
                None
            }
        }
    }

    fn string<'a>(
        &mut self,
        parent: &str,
        name: &str,
        path: &str,
        value: &'a Value,
    ) -> Option<&'a str> {
        match value {
            Value::String(text) => Some(text),
            Value::Null => None,
            other => {
                self.mismatch(parent, name, path, "TYPE_STRING", other);
                None
            }
        }
    }

    fn boolean(&mut self, parent: &str, name: &str, path: &str, value: &Value) -> Option<bool> {
        match value {
            Value::Bool(flag) => Some(*flag),
            Value::Null => None,
            other => {
                self.mismatch(parent, name, path, "TYPE_BOOL", other);
                None
            }
        }
    }

    /// A float; proto JSON also takes numbers written as strings.
    fn number(&mut self, parent: &str, name: &str, path: &str, value: &Value) -> Option<f64> {
        let parsed = match value {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse().ok(),
            Value::Null => return None,
            _ => None,
        };
        if parsed.is_none() {
            self.mismatch(parent, name, path, "TYPE_FLOAT", value);
        }
        parsed
    }

    /// An integer; proto JSON also takes integers written as strings.
    fn integer(&mut self, parent: &str, name: &str, path: &str, value: &Value) -> Option<i64> {
        let parsed = match value {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse().ok(),
            Value::Null => return None,
            _ => None,
        };
        if parsed.is_none() {
            self.mismatch(parent, name, path, "TYPE_INT32", value);
        }
        parsed
    }

    fn bytes(&mut self, parent: &str, name: &str, path: &str, value: &Value) {
        if let Some(text) = self.string(parent, name, path, value)
            && decode_base64(text).is_none()
        {
            self.invalid_text(
                path,
                "TYPE_BYTES",
                &format!("Base64 decoding failed for \"{}\"", cut(text)),
            );
        }
    }

    fn enumeration(
        &mut self,
        parent: &str,
        name: &str,
        path: &str,
        label: &str,
        allowed: &[&str],
        value: &Value,
    ) {
        match value {
            Value::String(text) if allowed.iter().any(|a| a.eq_ignore_ascii_case(text)) => {}
            Value::Null => {}
            Value::String(_) => self.invalid(path, &format!("{PROTO}.{label}"), value),
            other => self.mismatch(parent, name, path, &format!("{PROTO}.{label}"), other),
        }
    }

    fn strings(&mut self, path: &str, value: &Value) {
        if let Some(items) = self.list(path, "TYPE_STRING", value) {
            for (index, item) in items.iter().enumerate() {
                let item_path = format!("{path}[{index}]");
                if !item.is_string() {
                    self.invalid(&item_path, "TYPE_STRING", item);
                }
            }
        }
    }

    fn struct_value(&mut self, parent: &str, name: &str, path: &str, value: &Value) {
        match value {
            Value::Object(_) | Value::Null => {}
            Value::Array(_) => {
                self.unknown_because(
                    parent,
                    name,
                    "Proto field is not repeating, cannot start list.",
                );
            }
            other => self.invalid(path, "type.googleapis.com/google.protobuf.Struct", other),
        }
    }

    fn generate_request(&mut self, path: &str, request: &Map<String, Value>, flavor: Flavor) {
        for (key, value) in request {
            let field_path = join(path, key);
            match (camel(key).as_str(), flavor) {
                ("contents", _) => self.contents(path, key, &field_path, value),
                ("systemInstruction", _) => {
                    if let Some(content) = self.object(path, key, &field_path, "Content", value) {
                        self.content(&field_path, content);
                    }
                }
                ("tools", _) => {
                    if let Some(tools) = self.list(&field_path, &format!("{PROTO}.Tool"), value) {
                        for (index, tool) in tools.iter().enumerate() {
                            let tool_path = format!("{field_path}[{index}]");
                            if let Some(tool) =
                                self.object(&field_path, key, &tool_path, "Tool", tool)
                            {
                                self.tool(&tool_path, tool);
                            }
                        }
                    }
                }
                ("toolConfig", _) => {
                    if let Some(config) = self.object(path, key, &field_path, "ToolConfig", value) {
                        self.tool_config(&field_path, config);
                    }
                }
                ("generationConfig", _) => {
                    if let Some(config) =
                        self.object(path, key, &field_path, "GenerationConfig", value)
                    {
                        self.generation_config(&field_path, config);
                    }
                }
                ("safetySettings", _) => {
                    let label = format!("{PROTO}.SafetySetting");
                    if let Some(settings) = self.list(&field_path, &label, value) {
                        for (index, setting) in settings.iter().enumerate() {
                            let setting_path = format!("{field_path}[{index}]");
                            if let Some(setting) = self.object(
                                &field_path,
                                key,
                                &setting_path,
                                "SafetySetting",
                                setting,
                            ) {
                                for (k, v) in setting {
                                    let p = join(&setting_path, k);
                                    match camel(k).as_str() {
                                        "category" | "threshold" | "method" => {
                                            self.string(&setting_path, k, &p, v);
                                        }
                                        _ => self.unknown(&setting_path, k),
                                    }
                                }
                            }
                        }
                    }
                }
                ("cachedContent", _)
                | ("sessionId", Flavor::CloudCode)
                | ("model", Flavor::GeminiApi) => {
                    self.string(path, key, &field_path, value);
                }
                ("labels", Flavor::CloudCode) => {
                    if let Some(labels) = self.object(path, key, &field_path, "Labels", value) {
                        for (index, (_, label)) in labels.iter().enumerate() {
                            if !label.is_string() {
                                self.invalid(
                                    &format!("{field_path}[{index}].value"),
                                    "TYPE_STRING",
                                    label,
                                );
                            }
                        }
                    }
                }
                _ => self.unknown(path, key),
            }
        }
    }

    fn contents(&mut self, parent: &str, name: &str, path: &str, value: &Value) {
        if let Some(contents) = self.list(path, &format!("{PROTO}.Content"), value) {
            for (index, content) in contents.iter().enumerate() {
                let content_path = format!("{path}[{index}]");
                if let Some(content) = self.object(parent, name, &content_path, "Content", content)
                {
                    self.content(&content_path, content);
                }
            }
        }
    }

    fn content(&mut self, path: &str, content: &Map<String, Value>) {
        for (key, value) in content {
            let field_path = join(path, key);
            match camel(key).as_str() {
                "role" => {
                    self.string(path, key, &field_path, value);
                }
                "parts" => {
                    if let Some(parts) = self.list(&field_path, &format!("{PROTO}.Part"), value) {
                        for (index, part) in parts.iter().enumerate() {
                            let part_path = format!("{field_path}[{index}]");
                            if let Some(part) =
                                self.object(&field_path, key, &part_path, "Part", part)
                            {
                                self.part(&part_path, part);
                            }
                        }
                    }
                }
                _ => self.unknown(path, key),
            }
        }
    }

    fn part(&mut self, path: &str, part: &Map<String, Value>) {
        let mut data_field: Option<String> = None;
        for (key, value) in part {
            let field_path = join(path, key);
            let name = camel(key);
            let is_data = DATA_FIELDS.contains(&name.as_str());
            if is_data && !value.is_null() {
                if data_field.is_some() {
                    self.violations.push(Violation {
                        field: path.to_owned(),
                        description: format!(
                            "Invalid JSON payload received. Oneof field 'data' is already set. Cannot set '{name}'"
                        ),
                    });
                }
                data_field = Some(name.clone());
            }
            match name.as_str() {
                "text" => {
                    self.string(path, key, &field_path, value);
                }
                "thought" => {
                    self.boolean(path, key, &field_path, value);
                }
                "thoughtSignature" => self.bytes(path, key, &field_path, value),
                "inlineData" => {
                    if let Some(blob) = self.object(path, key, &field_path, "Blob", value) {
                        for (k, v) in blob {
                            let p = join(&field_path, k);
                            match camel(k).as_str() {
                                "mimeType" => {
                                    self.string(&field_path, k, &p, v);
                                }
                                "data" => self.bytes(&field_path, k, &p, v),
                                _ => self.unknown(&field_path, k),
                            }
                        }
                    }
                }
                "fileData" => {
                    if let Some(file) = self.object(path, key, &field_path, "FileData", value) {
                        for (k, v) in file {
                            let p = join(&field_path, k);
                            match camel(k).as_str() {
                                "mimeType" | "fileUri" | "displayName" => {
                                    self.string(&field_path, k, &p, v);
                                }
                                _ => self.unknown(&field_path, k),
                            }
                        }
                    }
                }
                "functionCall" => {
                    if let Some(call) = self.object(path, key, &field_path, "FunctionCall", value) {
                        for (k, v) in call {
                            let p = join(&field_path, k);
                            match camel(k).as_str() {
                                "name" | "id" => {
                                    self.string(&field_path, k, &p, v);
                                }
                                "args" => self.struct_value(&field_path, k, &p, v),
                                _ => self.unknown(&field_path, k),
                            }
                        }
                    }
                }
                "functionResponse" => {
                    if let Some(response) =
                        self.object(path, key, &field_path, "FunctionResponse", value)
                    {
                        for (k, v) in response {
                            let p = join(&field_path, k);
                            match camel(k).as_str() {
                                "name" | "id" => {
                                    self.string(&field_path, k, &p, v);
                                }
                                "response" => self.struct_value(&field_path, k, &p, v),
                                "willContinue" => {
                                    self.boolean(&field_path, k, &p, v);
                                }
                                _ => self.unknown(&field_path, k),
                            }
                        }
                    }
                }
                "executableCode" | "codeExecutionResult" => {
                    self.object(path, key, &field_path, "Part", value);
                }
                _ => self.unknown(path, key),
            }
        }
    }

    fn tool(&mut self, path: &str, tool: &Map<String, Value>) {
        for (key, value) in tool {
            let field_path = join(path, key);
            match camel(key).as_str() {
                "functionDeclarations" => {
                    let label = format!("{PROTO}.FunctionDeclaration");
                    if let Some(declarations) = self.list(&field_path, &label, value) {
                        for (index, declaration) in declarations.iter().enumerate() {
                            let declaration_path = format!("{field_path}[{index}]");
                            if let Some(declaration) = self.object(
                                &field_path,
                                key,
                                &declaration_path,
                                "FunctionDeclaration",
                                declaration,
                            ) {
                                self.function_declaration(&declaration_path, declaration);
                            }
                        }
                    }
                }
                "googleSearch" | "googleSearchRetrieval" | "codeExecution" | "urlContext" => {
                    self.object(path, key, &field_path, "Tool", value);
                }
                _ => self.unknown(path, key),
            }
        }
    }

    fn function_declaration(&mut self, path: &str, declaration: &Map<String, Value>) {
        for (key, value) in declaration {
            let field_path = join(path, key);
            match camel(key).as_str() {
                "name" | "description" | "behavior" => {
                    self.string(path, key, &field_path, value);
                }
                "parameters" | "response" => {
                    if let Some(schema) = self.object(path, key, &field_path, "Schema", value) {
                        self.schema(&field_path, schema);
                    }
                }
                "parametersJsonSchema" | "responseJsonSchema" => {}
                _ => self.unknown(path, key),
            }
        }
    }

    /// Gemini's schema subset: `type, format, description, nullable, enum,
    /// properties, required, items, anyOf` and nothing else.
    fn schema(&mut self, path: &str, schema: &Map<String, Value>) {
        for (key, value) in schema {
            let field_path = join(path, key);
            match camel(key).as_str() {
                "type" => self.enumeration(path, key, &field_path, "Type", SCHEMA_TYPES, value),
                "format" | "description" => {
                    self.string(path, key, &field_path, value);
                }
                "nullable" => {
                    self.boolean(path, key, &field_path, value);
                }
                "enum" | "required" => self.strings(&field_path, value),
                "items" => {
                    if let Some(items) = self.object(path, key, &field_path, "Schema", value) {
                        self.schema(&field_path, items);
                    }
                }
                "anyOf" => {
                    if let Some(branches) =
                        self.list(&field_path, &format!("{PROTO}.Schema"), value)
                    {
                        for (index, branch) in branches.iter().enumerate() {
                            let branch_path = format!("{field_path}[{index}]");
                            if let Some(branch) =
                                self.object(&field_path, key, &branch_path, "Schema", branch)
                            {
                                self.schema(&branch_path, branch);
                            }
                        }
                    }
                }
                "properties" => {
                    if let Some(properties) =
                        self.object(path, key, &field_path, "Schema.PropertiesEntry", value)
                    {
                        for (index, (_, property)) in properties.iter().enumerate() {
                            let property_path = format!("{field_path}[{index}].value");
                            if let Some(property) =
                                self.object(&field_path, key, &property_path, "Schema", property)
                            {
                                self.schema(&property_path, property);
                            }
                        }
                    }
                }
                _ => self.unknown(path, key),
            }
        }
    }

    fn tool_config(&mut self, path: &str, config: &Map<String, Value>) {
        for (key, value) in config {
            let field_path = join(path, key);
            match camel(key).as_str() {
                "functionCallingConfig" => {
                    let Some(calling) =
                        self.object(path, key, &field_path, "FunctionCallingConfig", value)
                    else {
                        continue;
                    };
                    for (k, v) in calling {
                        let p = join(&field_path, k);
                        match camel(k).as_str() {
                            "mode" => self.enumeration(
                                &field_path,
                                k,
                                &p,
                                "FunctionCallingConfig.Mode",
                                &["MODE_UNSPECIFIED", "AUTO", "ANY", "NONE", "VALIDATED"],
                                v,
                            ),
                            "allowedFunctionNames" => self.strings(&p, v),
                            _ => self.unknown(&field_path, k),
                        }
                    }
                }
                "retrievalConfig" => {
                    self.object(path, key, &field_path, "RetrievalConfig", value);
                }
                _ => self.unknown(path, key),
            }
        }
    }

    fn generation_config(&mut self, path: &str, config: &Map<String, Value>) {
        for (key, value) in config {
            let field_path = join(path, key);
            match camel(key).as_str() {
                "temperature" | "topP" | "presencePenalty" | "frequencyPenalty" => {
                    self.number(path, key, &field_path, value);
                }
                "topK" | "maxOutputTokens" | "candidateCount" | "seed" => {
                    self.integer(path, key, &field_path, value);
                }
                "stopSequences" | "responseModalities" => self.strings(&field_path, value),
                "responseMimeType" => {
                    self.string(path, key, &field_path, value);
                }
                "responseSchema" => {
                    if let Some(schema) = self.object(path, key, &field_path, "Schema", value) {
                        self.schema(&field_path, schema);
                    }
                }
                "responseJsonSchema" => {}
                "thinkingConfig" => {
                    let Some(thinking) =
                        self.object(path, key, &field_path, "ThinkingConfig", value)
                    else {
                        continue;
                    };
                    for (k, v) in thinking {
                        let p = join(&field_path, k);
                        match camel(k).as_str() {
                            "includeThoughts" => {
                                self.boolean(&field_path, k, &p, v);
                            }
                            "thinkingBudget" => {
                                self.integer(&field_path, k, &p, v);
                            }
                            "thinkingLevel" => self.enumeration(
                                &field_path,
                                k,
                                &p,
                                "ThinkingConfig.ThinkingLevel",
                                &[
                                    "THINKING_LEVEL_UNSPECIFIED",
                                    "MINIMAL",
                                    "LOW",
                                    "MEDIUM",
                                    "HIGH",
                                ],
                                v,
                            ),
                            _ => self.unknown(&field_path, k),
                        }
                    }
                }
                _ => self.unknown(path, key),
            }
        }
    }
}

const DATA_FIELDS: &[&str] = &[
    "text",
    "inlineData",
    "functionCall",
    "functionResponse",
    "fileData",
    "executableCode",
    "codeExecutionResult",
];

const SCHEMA_TYPES: &[&str] = &[
    "TYPE_UNSPECIFIED",
    "STRING",
    "NUMBER",
    "INTEGER",
    "BOOLEAN",
    "ARRAY",
    "OBJECT",
];

// ---------------------------------------------------------------- second pass

/// Collects `* GenerateContentRequest.<field>: <problem>` lines.
#[derive(Default)]
struct Lines {
    lines: Vec<String>,
}

impl Lines {
    fn push(&mut self, field: &str, problem: &str) {
        let field = field.strip_prefix("request.").unwrap_or(field);
        let dot = if field.is_empty() { "" } else { "." };
        self.lines
            .push(format!("* GenerateContentRequest{dot}{field}: {problem}\n"));
    }

    fn finish(self) -> Result<(), GoogleError> {
        if self.lines.is_empty() {
            Ok(())
        } else {
            Err(GoogleError::invalid_argument(self.lines.concat()))
        }
    }
}

/// Checks what a (first-pass clean) generation request means, for `model`.
pub(crate) fn generate_semantics(
    request: &Value,
    flavor: Flavor,
    model: &SimModel,
) -> Result<(), GoogleError> {
    let root = flavor.root();
    let empty = Map::new();
    let object = request.as_object().unwrap_or(&empty);
    let mut lines = Lines::default();

    let contents = field(object, "contents").unwrap_or(&Value::Null);
    let contents_path = join(root, "contents");
    if contents.as_array().is_none_or(Vec::is_empty) {
        lines.push(&contents_path, "contents is not specified");
        return lines.finish();
    }
    check_roles(contents)?;
    check_contents_semantics(contents, &contents_path, &mut lines);
    if let Some(system) = field(object, "systemInstruction") {
        let parts = system.as_object().and_then(|s| field(s, "parts"));
        if parts.and_then(Value::as_array).is_none_or(Vec::is_empty) {
            lines.push(
                &format!("{}.parts", join(root, "systemInstruction")),
                "contents.parts must not be empty.",
            );
        }
    }
    if let Some(tools) = field(object, "tools").and_then(Value::as_array) {
        check_tools(tools, &join(root, "tools"), &mut lines);
    }
    lines.finish()?;

    check_turns(contents, model)?;
    check_signatures(contents, model)?;
    if let Some(config) = field(object, "generationConfig").and_then(Value::as_object) {
        check_generation_config(config, model)?;
    }
    let prompt_tokens = crate::generate::estimate_tokens(&request.to_string());
    if prompt_tokens > model.max_tokens {
        let message = if is_claude(&model.id) {
            format!(
                "Prompt is too long: {prompt_tokens} tokens > {} maximum",
                model.max_tokens
            )
        } else {
            format!(
                "The input token count ({prompt_tokens}) exceeds the maximum number of tokens allowed ({}).",
                model.max_tokens
            )
        };
        return Err(GoogleError::invalid_argument(message));
    }
    Ok(())
}

fn check_roles(contents: &Value) -> Result<(), GoogleError> {
    for content in contents.as_array().into_iter().flatten() {
        match content.get("role").and_then(Value::as_str) {
            None | Some("user" | "model") => {}
            Some(_) => {
                return Err(GoogleError::invalid_argument(
                    "Please use a valid role: user, model.",
                ));
            }
        }
    }
    Ok(())
}

fn check_contents_semantics(contents: &Value, path: &str, out: &mut Lines) {
    for (index, content) in contents.as_array().into_iter().flatten().enumerate() {
        let content_path = format!("{path}[{index}]");
        let parts = content
            .as_object()
            .and_then(|c| field(c, "parts"))
            .and_then(Value::as_array);
        let Some(parts) = parts.filter(|p| !p.is_empty()) else {
            out.push(
                &format!("{content_path}.parts"),
                "contents.parts must not be empty.",
            );
            continue;
        };
        for (part_index, part) in parts.iter().enumerate() {
            let part_path = format!("{content_path}.parts[{part_index}]");
            let Some(part) = part.as_object() else {
                continue;
            };
            let data = DATA_FIELDS
                .iter()
                .find(|name| field(part, name).is_some_and(|v| !v.is_null()));
            match data {
                None => out.push(
                    &format!("{part_path}.data"),
                    "required oneof field 'data' must have one initialized field",
                ),
                Some(&"text") => {
                    let empty = field(part, "text").and_then(Value::as_str) == Some("");
                    let signed = field(part, "thoughtSignature").is_some();
                    if empty && !signed {
                        out.push(
                            &format!("{part_path}.text"),
                            "Unable to submit request because it has an empty text parameter. \
                             Add a value to the parameter and try again.",
                        );
                    }
                }
                Some(&"functionCall") | Some(&"functionResponse") => {
                    let name = field(part, data.map_or("", |d| d))
                        .and_then(|call| call.get("name"))
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    if name.is_empty() {
                        let which = snake(data.map_or("", |d| d));
                        out.push(
                            &format!("{part_path}.{which}.name"),
                            "Name cannot be empty.",
                        );
                    }
                }
                Some(_) => {}
            }
        }
    }
}

fn check_tools(tools: &[Value], path: &str, lines: &mut Lines) {
    let mut seen = HashSet::new();
    for (index, tool) in tools.iter().enumerate() {
        let Some(tool) = tool.as_object() else {
            continue;
        };
        let Some(declarations) = field(tool, "functionDeclarations").and_then(Value::as_array)
        else {
            continue;
        };
        for (d_index, declaration) in declarations.iter().enumerate() {
            let declaration_path = format!("{path}[{index}].function_declarations[{d_index}]");
            let Some(declaration) = declaration.as_object() else {
                continue;
            };
            let name = field(declaration, "name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if name.is_empty() {
                lines.push(&format!("{declaration_path}.name"), "Name cannot be empty.");
            } else if !valid_function_name(name) {
                lines.push(
                    &format!("{declaration_path}.name"),
                    "Invalid function name. Must start with a letter or an underscore. Must be \
                     alphameric (a-z, A-Z, 0-9), underscores (_), dots (.), colons (:), or dashes \
                     (-), with a maximum length of 64.",
                );
            } else if !seen.insert(name.to_owned()) {
                lines.push(
                    &format!("{declaration_path}.name"),
                    &format!("Duplicate function declaration found: {name}"),
                );
            }
            if let Some(parameters) = field(declaration, "parameters").and_then(Value::as_object) {
                check_schema(parameters, &format!("{declaration_path}.parameters"), lines);
            }
        }
    }
}

/// `^[A-Za-z_][A-Za-z0-9_.:-]{0,63}$`.
pub(crate) fn valid_function_name(name: &str) -> bool {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    first_ok
        && name.len() <= 64
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-'))
}

fn check_schema(schema: &Map<String, Value>, path: &str, lines: &mut Lines) {
    let is_object = field(schema, "type")
        .and_then(Value::as_str)
        .is_some_and(|t| t.eq_ignore_ascii_case("OBJECT"));
    let properties = field(schema, "properties").and_then(Value::as_object);
    if is_object && properties.is_none_or(Map::is_empty) {
        lines.push(
            &format!("{path}.properties"),
            "should be non-empty for OBJECT type",
        );
    }
    if let Some(required) = field(schema, "required").and_then(Value::as_array) {
        for (index, name) in required.iter().enumerate() {
            let defined = name
                .as_str()
                .is_some_and(|n| properties.is_some_and(|p| p.contains_key(n)));
            if !defined {
                lines.push(
                    &format!("{path}.required[{index}]"),
                    "property is not defined",
                );
            }
        }
    }
    for (index, (_, property)) in properties.into_iter().flatten().enumerate() {
        if let Some(property) = property.as_object() {
            check_schema(
                property,
                &format!("{path}.properties[{index}].value"),
                lines,
            );
        }
    }
    if let Some(items) = field(schema, "items").and_then(Value::as_object) {
        check_schema(items, &format!("{path}.items"), lines);
    }
    for (index, branch) in field(schema, "anyOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        if let Some(branch) = branch.as_object() {
            check_schema(branch, &format!("{path}.any_of[{index}]"), lines);
        }
    }
}

/// Function calls and responses must pair up turn by turn (and, for Claude, by id).
fn check_turns(contents: &Value, model: &SimModel) -> Result<(), GoogleError> {
    let contents: Vec<&Value> = contents.as_array().into_iter().flatten().collect();
    let role = |c: &Value| {
        c.get("role")
            .and_then(Value::as_str)
            .unwrap_or("user")
            .to_owned()
    };
    let parts_named = |c: &Value, name: &str| -> Vec<Value> {
        c.get("parts")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|p| p.as_object().and_then(|p| field(p, name)).cloned())
            .collect()
    };
    for (index, content) in contents.iter().enumerate() {
        let calls = parts_named(content, "functionCall");
        let responses = parts_named(content, "functionResponse");
        if !calls.is_empty() {
            let previous = index.checked_sub(1).and_then(|i| contents.get(i));
            let after_user = previous.is_some_and(|p| role(p) == "user");
            if role(content) == "model" && !after_user {
                return Err(GoogleError::invalid_argument(
                    "Please ensure that function call turn comes immediately after a user turn or after a function response turn.",
                ));
            }
            if let Some(next) = contents.get(index + 1) {
                let answered = parts_named(next, "functionResponse");
                if answered.len() != calls.len() {
                    return Err(GoogleError::invalid_argument(
                        "Please ensure that the number of function response parts is equal to the number of function call parts of the function call turn.",
                    ));
                }
                if is_claude(&model.id) {
                    let answered_ids: HashSet<&str> = answered
                        .iter()
                        .filter_map(|r| r.get("id").and_then(Value::as_str))
                        .collect();
                    let missing: Vec<&str> = calls
                        .iter()
                        .filter_map(|c| c.get("id").and_then(Value::as_str))
                        .filter(|id| !answered_ids.is_empty() && !answered_ids.contains(id))
                        .collect();
                    if !missing.is_empty() {
                        return Err(GoogleError::invalid_argument(format!(
                            "messages.{}: `tool_use` ids were found without `tool_result` blocks immediately after: {}. Each `tool_use` block must have a corresponding `tool_result` block in the next message.",
                            index,
                            missing.join(", ")
                        )));
                    }
                }
            }
        }
        if !responses.is_empty() {
            let previous = index.checked_sub(1).and_then(|i| contents.get(i));
            let after_call = previous.is_some_and(|p| !parts_named(p, "functionCall").is_empty());
            if !after_call {
                return Err(GoogleError::invalid_argument(
                    "Please ensure that function response turn comes immediately after a function call turn.",
                ));
            }
        }
    }
    Ok(())
}

/// A thought signature minted by the sim for one model family, replayed to another; and
/// Gemini 3's rule that the first `functionCall` of every model turn carries a
/// `thoughtSignature` (the documented dummy `skip_thought_signature_validator` counts).
fn check_signatures(contents: &Value, model: &SimModel) -> Result<(), GoogleError> {
    let family = crate::generate::model_family(&model.id);
    if model.id.starts_with("gemini-3") {
        for (index, content) in contents.as_array().into_iter().flatten().enumerate() {
            if content.get("role").and_then(Value::as_str) != Some("model") {
                continue;
            }
            let first_call = content
                .get("parts")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
                .find(|(_, p)| {
                    p.as_object()
                        .and_then(|p| field(p, "functionCall"))
                        .is_some()
                });
            if let Some((position, part)) = first_call {
                let signed = part
                    .as_object()
                    .and_then(|p| field(p, "thoughtSignature"))
                    .and_then(Value::as_str)
                    .is_some_and(|s| !s.is_empty());
                if !signed {
                    return Err(GoogleError::invalid_argument(format!(
                        "Function call is missing a thought_signature in functionCall parts. \
                         This is required for tools to work correctly, and missing \
                         thought_signature may lead to degraded model performance. Additional \
                         data, content {index}, position {position}. Please refer to \
                         https://ai.google.dev/gemini-api/docs/thought-signatures for more details."
                    )));
                }
            }
        }
    }
    for (index, content) in contents.as_array().into_iter().flatten().enumerate() {
        for part in content
            .get("parts")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(signature) = part
                .as_object()
                .and_then(|p| field(p, "thoughtSignature"))
                .and_then(Value::as_str)
            else {
                continue;
            };
            let Some(signed_for) = crate::generate::signature_family(signature) else {
                continue;
            };
            if signed_for != family {
                let message = if is_claude(&model.id) {
                    format!("messages.{index}.content.0: Invalid `signature` in `thinking` block")
                } else {
                    "Corrupted thought signature.".to_owned()
                };
                return Err(GoogleError::invalid_argument(message));
            }
        }
    }
    Ok(())
}

fn check_generation_config(
    config: &Map<String, Value>,
    model: &SimModel,
) -> Result<(), GoogleError> {
    let number = |name: &str| {
        field(config, name).and_then(|v| match v {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        })
    };
    let out_of_range = |name: &str, value: f64, low: &str, high: &str| {
        GoogleError::invalid_argument(format!(
            "Unable to submit request because it has a {name} value of {value} but the supported \
             range is from {low} (inclusive) to {high} (exclusive). Update the value and try again."
        ))
    };
    if let Some(max) = number("maxOutputTokens")
        && (max < 1.0 || max > model.max_output_tokens as f64)
    {
        return Err(out_of_range(
            "maxOutputTokens",
            max,
            "1",
            &(model.max_output_tokens + 1).to_string(),
        ));
    }
    if let Some(temperature) = number("temperature")
        && !(0.0..=2.0).contains(&temperature)
    {
        return Err(out_of_range("temperature", temperature, "0", "2.0001"));
    }
    if let Some(top_p) = number("topP")
        && !(0.0..=1.0).contains(&top_p)
    {
        return Err(out_of_range("topP", top_p, "0", "1.0001"));
    }
    let budget = field(config, "thinkingConfig")
        .and_then(Value::as_object)
        .and_then(|t| field(t, "thinkingBudget"))
        .and_then(|v| {
            v.as_f64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        });
    if let (true, Some(budget), Some(max)) =
        (is_claude(&model.id), budget, number("maxOutputTokens"))
        && budget > 0.0
        && budget >= max
    {
        return Err(GoogleError::invalid_argument(
            "`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our \
                 documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking#max-tokens-and-context-window-size",
        ));
    }
    Ok(())
}

pub(crate) fn is_claude(model: &str) -> bool {
    model.starts_with("claude")
}

// ---------------------------------------------------------------- helpers

/// A field by its lowerCamel name, or by its snake_case name (proto JSON takes both).
pub(crate) fn field<'a>(object: &'a Map<String, Value>, camel_name: &str) -> Option<&'a Value> {
    object
        .get(camel_name)
        .or_else(|| object.get(&snake(camel_name)))
}

/// `system_instruction` → `systemInstruction` (other names unchanged).
fn camel(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '_' && !out.is_empty() {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// `systemInstruction` → `system_instruction`.
fn snake(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// `parent.snake_name` (Google names fields in paths by their proto names).
fn join(parent: &str, key: &str) -> String {
    let name = snake(&camel(key));
    if parent.is_empty() {
        name
    } else {
        format!("{parent}.{name}")
    }
}

/// Decodes base64 the way proto JSON reads `bytes`: standard or URL-safe alphabet,
/// padding optional, stray trailing bits ignored.
pub(crate) fn decode_base64(text: &str) -> Option<Vec<u8>> {
    const LENIENT: GeneralPurposeConfig = GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent);
    const STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);
    const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT);
    STANDARD
        .decode(text)
        .ok()
        .or_else(|| URL_SAFE.decode(text).ok())
}

fn cut(text: &str) -> String {
    const MAX: usize = 80;
    if text.chars().count() <= MAX {
        text.to_owned()
    } else {
        let head: String = text.chars().take(MAX).collect();
        format!("{head}...")
    }
}

/// A value as Google quotes it in "Invalid value" messages.
fn shorten(value: &Value) -> String {
    match value {
        Value::String(text) => format!("\"{}\"", cut(text)),
        other => cut(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn model() -> SimModel {
        SimModel::new("gemini-3-flash", "Gemini 3 Flash", 1_000_000, 65_536)
    }

    fn envelope_of(request: Value) -> Value {
        json!({"project": "p", "model": "gemini-3-flash", "request": request})
    }

    fn first_pass_error(body: Value) -> String {
        match envelope(&body) {
            Err(e) => e.message,
            Ok(_) => panic!("accepted {body}"),
        }
    }

    fn semantic_error(request: Value) -> String {
        generate_semantics(&request, Flavor::CloudCode, &model())
            .expect_err("should be refused")
            .message
    }

    #[test]
    fn gemini_3_wants_the_first_function_call_of_a_turn_signed() {
        let request = |signature: Option<&str>| {
            let mut call = json!({"functionCall": {"name": "f", "args": {}, "id": "t1"}});
            if let Some(s) = signature {
                call["thoughtSignature"] = json!(s);
            }
            json!([
                {"role": "user", "parts": [{"text": "hi"}]},
                {"role": "model", "parts": [{"text": "calling"}, call,
                    {"functionCall": {"name": "f", "args": {}, "id": "t2"}}]},
            ])
        };
        let gemini3 = SimModel::new("gemini-3-flash", "Gemini 3 Flash", 1_000, 100);
        let err = check_signatures(&request(None), &gemini3).unwrap_err();
        assert!(
            err.message
                .starts_with("Function call is missing a thought_signature"),
            "{}",
            err.message
        );
        assert!(
            err.message.contains("content 1, position 1"),
            "{}",
            err.message
        );
        check_signatures(&request(Some("skip_thought_signature_validator")), &gemini3).unwrap();
        let older = SimModel::new("gemini-2.5-flash", "Gemini 2.5 Flash", 1_000, 100);
        check_signatures(&request(None), &older).unwrap();
    }

    #[test]
    fn names_convert() {
        assert_eq!(camel("system_instruction"), "systemInstruction");
        assert_eq!(snake("systemInstruction"), "system_instruction");
        assert_eq!(camel("$schema"), "$schema");
        assert_eq!(
            join("request", "functionDeclarations"),
            "request.function_declarations"
        );
    }

    #[test]
    fn accepts_a_full_request() {
        let body = envelope_of(json!({
            "contents": [
                {"role": "user", "parts": [{"text": "hi"}]},
                {"role": "model", "parts": [
                    {"text": "thinking", "thought": true, "thoughtSignature": "c2ln"},
                    {"functionCall": {"name": "read_file", "args": {"path": "a"}, "id": "t1"},
                     "thoughtSignature": "c2ln"}]},
                {"role": "user", "parts": [{"functionResponse": {"name": "read_file", "response": {"ok": true}, "id": "t1"}}]},
            ],
            "system_instruction": {"role": "user", "parts": [{"text": "be brief"}]},
            "tools": [{"functionDeclarations": [{"name": "read_file", "description": "d", "parameters": {
                "type": "object", "properties": {"path": {"type": "STRING", "enum": ["a"]}}, "required": ["path"]}}]}],
            "toolConfig": {"functionCallingConfig": {"mode": "AUTO"}},
            "generationConfig": {"temperature": 0.5, "maxOutputTokens": 1000, "thinkingConfig": {"includeThoughts": true, "thinkingBudget": 100}},
            "sessionId": "s",
        }));
        let read = envelope(&body).unwrap();
        assert_eq!(read.project, Some("p"));
        generate_semantics(read.request, Flavor::CloudCode, &model()).unwrap();
    }

    #[test]
    fn unknown_names_are_listed_with_their_paths() {
        let message = first_pass_error(
            json!({"project": "p", "model": "m", "foo": 1, "request": {"contents": [], "bar": 2}}),
        );
        assert!(
            message.contains(r#"Unknown name "foo": Cannot find field."#),
            "{message}"
        );
        assert!(
            message.contains(r#"Unknown name "bar" at 'request': Cannot find field."#),
            "{message}"
        );
    }

    #[test]
    fn schema_extras_are_refused_where_google_refuses_them() {
        let message = first_pass_error(envelope_of(json!({
            "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
            "tools": [{"functionDeclarations": [{"name": "f", "parameters": {
                "type": "object", "additionalProperties": false,
                "properties": {"x": {"type": "string", "const": "a"}}}}]}],
        })));
        assert!(message.contains(
            r#"Unknown name "additionalProperties" at 'request.tools[0].function_declarations[0].parameters': Cannot find field."#
        ), "{message}");
        assert!(message.contains(
            r#"Unknown name "const" at 'request.tools[0].function_declarations[0].parameters.properties[0].value'"#
        ), "{message}");
    }

    #[test]
    fn wrong_kinds_are_invalid_values() {
        let message = first_pass_error(envelope_of(json!({
            "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
            "systemInstruction": "be brief",
        })));
        assert!(
            message.starts_with("Invalid value at 'request.system_instruction'"),
            "{message}"
        );
        let message = first_pass_error(envelope_of(json!({
            "contents": [{"role": "user", "parts": [{"text": "hi", "inlineData": {"mimeType": "image/png", "data": "!!"}}]}],
        })));
        assert!(
            message.contains("Oneof field 'data' is already set"),
            "{message}"
        );
        assert!(message.contains("Base64 decoding failed"), "{message}");
        let message = first_pass_error(envelope_of(json!({
            "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
            "tools": [{"functionDeclarations": [{"name": "f", "parameters": {"type": ["string", "null"]}}]}],
        })));
        assert!(
            message.contains("Proto field is not repeating"),
            "{message}"
        );
    }

    #[test]
    fn meaning_is_checked() {
        assert!(semantic_error(json!({"contents": []})).contains("contents is not specified"));
        assert_eq!(
            semantic_error(json!({"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]})),
            "Please use a valid role: user, model."
        );
        assert!(
            semantic_error(json!({"contents": [{"role": "user", "parts": []}]}))
                .contains("contents[0].parts: contents.parts must not be empty.")
        );
        let message = semantic_error(json!({
            "contents": [{"role": "user", "parts": [{"text": "x"}]}],
            "tools": [{"functionDeclarations": [
                {"name": "1bad", "parameters": {"type": "object", "properties": {}}},
                {"name": "ok", "parameters": {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["b"]}},
            ]}],
        }));
        assert!(message.contains("Invalid function name"), "{message}");
        assert!(
            message.contains("should be non-empty for OBJECT type"),
            "{message}"
        );
        assert!(
            message.contains("parameters.required[0]: property is not defined"),
            "{message}"
        );
        let message = semantic_error(json!({"contents": [
            {"role": "user", "parts": [{"text": "x"}]},
            {"role": "model", "parts": [{"functionCall": {"name": "a", "args": {}}}, {"functionCall": {"name": "b", "args": {}}}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "a", "response": {}}}]},
        ]}));
        assert!(
            message.contains("number of function response parts"),
            "{message}"
        );
        let message = semantic_error(json!({
            "contents": [{"role": "user", "parts": [{"text": "x"}]}],
            "generationConfig": {"maxOutputTokens": 100000},
        }));
        assert!(
            message.contains("maxOutputTokens value of 100000"),
            "{message}"
        );
    }

    #[test]
    fn base64_is_read_leniently() {
        for ok in [
            "c2ln",
            "c2lnbg",
            "c2lnbg==",
            "skip_thought_signature_validator",
            "signature-1",
            "a+b/",
            "a-b_",
        ] {
            assert!(decode_base64(ok).is_some(), "{ok}");
        }
        for bad in ["has space", "x", "!!!!", "a+b_"] {
            assert!(decode_base64(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn function_names() {
        assert!(valid_function_name("mcp__server__tool"));
        assert!(valid_function_name("_x.y-z:1"));
        assert!(!valid_function_name("9lives"));
        assert!(!valid_function_name("has space"));
        assert!(!valid_function_name(&"a".repeat(65)));
        assert!(valid_function_name(&"a".repeat(64)));
    }
}
