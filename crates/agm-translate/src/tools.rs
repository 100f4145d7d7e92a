//! Tool names and tool-call ids.
//!
//! Gemini takes function names matching `^[A-Za-z_][A-Za-z0-9_-]{0,63}$`; clients send
//! longer or odder ones (MCP tools are `mcp__server__tool`, with dots, spaces, …).
//! [`ToolNameMap`] gives every such name a safe, unique stand-in for one request and
//! maps the stand-ins in the answer back. The stand-in is derived from the name (a
//! sanitised, truncated prefix and a hash suffix), so the same name gets the same
//! stand-in in every request of a conversation.
//!
//! OpenAI's tool namespaces (Codex's `multi_agent_v1`, its MCP servers) group tools
//! whose calls go back to the client as a name *and* a namespace. Such a tool is
//! registered by both ([`ToolNameMap::to_upstream_namespaced`]): it is sent upstream
//! as `<namespace>__<name>` (Codex's own flat spelling), or a stand-in derived from
//! it when that is no valid name or is taken, and [`ToolNameMap::namespace_of`] gives
//! the namespace back with the name.
//!
//! Gemini may also omit `functionCall.id`; [`ToolIdMinter`] makes `toolu_…` (Anthropic)
//! and `call_…` (OpenAI) ids that are unique per answer and reproducible from a seed.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

/// Longest function name Gemini accepts.
pub const MAX_TOOL_NAME_LEN: usize = 64;

/// True when Gemini accepts `name` as a function name unchanged.
pub fn is_valid_tool_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    match bytes.first() {
        Some(&first) if first.is_ascii_alphabetic() || first == b'_' => {}
        _ => return false,
    }
    bytes.len() <= MAX_TOOL_NAME_LEN
        && bytes
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The per-request, two-way map between client tool names and the names sent upstream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolNameMap {
    to_upstream: HashMap<String, String>,
    /// Namespaced tools: `(namespace, name)` → upstream name.
    namespaced: HashMap<(String, String), String>,
    /// Upstream name → the client's name (a namespaced tool's name within its
    /// namespace).
    to_client: HashMap<String, String>,
    /// Upstream name → the namespace of a namespaced tool.
    namespace: HashMap<String, String>,
}

impl ToolNameMap {
    /// An empty map.
    pub fn new() -> ToolNameMap {
        ToolNameMap::default()
    }

    /// The name to send upstream for the client's `name`, registering it. Valid names
    /// are kept as they are.
    pub fn to_upstream(&mut self, name: &str) -> String {
        if let Some(safe) = self.to_upstream.get(name) {
            return safe.clone();
        }
        let mut safe = if is_valid_tool_name(name) {
            name.to_owned()
        } else {
            derived_name(name, 0)
        };
        // A stand-in could in theory equal another tool's real name, or another
        // stand-in: take the next derivation until it is free.
        let mut attempt = 0u32;
        while self.taken(&safe, None, name) {
            attempt += 1;
            safe = derived_name(name, attempt);
        }
        self.to_upstream.insert(name.to_owned(), safe.clone());
        self.to_client.insert(safe.clone(), name.to_owned());
        safe
    }

    /// The name to send upstream for the tool `name` of the client's `namespace`,
    /// registering it: `<namespace>__<name>` when Gemini takes that and no other tool
    /// has it, else a stand-in derived from it and from both names.
    pub fn to_upstream_namespaced(&mut self, namespace: &str, name: &str) -> String {
        let key = (namespace.to_owned(), name.to_owned());
        if let Some(safe) = self.namespaced.get(&key) {
            return safe.clone();
        }
        let flat = flat_name(namespace, name);
        let identity = format!("{namespace}\0{name}");
        let mut attempt = 0u32;
        let mut safe = if is_valid_tool_name(&flat) {
            flat.clone()
        } else {
            derived_from(&flat, &identity, attempt)
        };
        while self.taken(&safe, Some(namespace), name) {
            attempt += 1;
            safe = derived_from(&flat, &identity, attempt);
        }
        self.namespaced.insert(key, safe.clone());
        self.to_client.insert(safe.clone(), name.to_owned());
        self.namespace.insert(safe.clone(), namespace.to_owned());
        safe
    }

    /// True when `upstream` already stands for a tool other than `name` (of
    /// `namespace`, for a namespaced tool).
    fn taken(&self, upstream: &str, namespace: Option<&str>, name: &str) -> bool {
        self.to_client.get(upstream).is_some_and(|owner| {
            owner != name || self.namespace.get(upstream).map(String::as_str) != namespace
        })
    }

    /// The namespace of the tool an upstream name stands for, when it is a namespaced
    /// tool (its name is [`ToolNameMap::to_client`]).
    pub fn namespace_of(&self, upstream: &str) -> Option<&str> {
        self.namespace.get(upstream).map(String::as_str)
    }

    /// The upstream name already registered for the tool `name` of `namespace`.
    pub fn namespaced_upstream_name(&self, namespace: &str, name: &str) -> Option<&str> {
        self.namespaced
            .get(&(namespace.to_owned(), name.to_owned()))
            .map(String::as_str)
    }

    /// The client's name for a name the upstream used; unknown names are returned as
    /// they are.
    pub fn to_client<'a>(&'a self, upstream: &'a str) -> &'a str {
        self.to_client
            .get(upstream)
            .map_or(upstream, String::as_str)
    }

    /// The upstream name already registered for the client's `name`, if any.
    pub fn upstream_name(&self, name: &str) -> Option<&str> {
        self.to_upstream.get(name).map(String::as_str)
    }

    /// Every registered `(client name, upstream name)` pair, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.to_upstream
            .iter()
            .map(|(client, upstream)| (client.as_str(), upstream.as_str()))
    }

    /// True when no name had to be changed (and no tool is namespaced).
    pub fn is_identity(&self) -> bool {
        self.namespaced.is_empty() && self.to_upstream.iter().all(|(k, v)| k == v)
    }
}

/// `prefix_hash`: `name` with every character outside `[A-Za-z0-9_-]` replaced by `_`,
/// cut so that `_` and an 8-hex-digit hash of the original fit in 64 characters.
fn derived_name(name: &str, attempt: u32) -> String {
    derived_from(name, name, attempt)
}

/// Codex's flat spelling of a namespaced tool: the namespace and the name joined by
/// `__`, underscores at the join trimmed (`mcp__github` + `create_issue` →
/// `mcp__github__create_issue`).
fn flat_name(namespace: &str, name: &str) -> String {
    format!(
        "{}__{}",
        namespace.trim_end_matches('_'),
        name.trim_start_matches('_')
    )
}

/// [`derived_name`]'s stand-in with its prefix from `name` and its hash of `identity`
/// (a namespaced tool's namespace and name).
fn derived_from(name: &str, identity: &str, attempt: u32) -> String {
    let mut hasher = Sha256::new();
    hasher.update(identity.as_bytes());
    if attempt > 0 {
        hasher.update(attempt.to_le_bytes());
    }
    let digest = hasher.finalize();
    let suffix = hex(&digest[..4]);
    let mut safe = String::with_capacity(MAX_TOOL_NAME_LEN);
    for c in name.chars() {
        if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
            safe.push(c);
        } else {
            safe.push('_');
        }
    }
    if !safe.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        safe.insert(0, '_');
    }
    safe.truncate(MAX_TOOL_NAME_LEN - 1 - suffix.len());
    safe.push('_');
    safe.push_str(&suffix);
    safe
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

/// Makes `toolu_…` ids for function calls that came without one, and message ids.
///
/// Ids are derived from a seed (the server passes something unique per request, e.g.
/// its request id), the upstream `responseId` and a counter, so they are unique per
/// answer and the same in tests on every run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolIdMinter {
    seed: String,
    count: u64,
}

impl ToolIdMinter {
    /// A minter for one answer.
    pub fn new(seed: impl Into<String>) -> ToolIdMinter {
        ToolIdMinter {
            seed: seed.into(),
            count: 0,
        }
    }

    /// The next tool-use id: `toolu_` and 24 hex digits.
    pub fn next_tool_id(&mut self) -> String {
        self.count += 1;
        format!("toolu_{}", self.derive("tool", self.count))
    }

    /// The next OpenAI tool-call id: `call_` and 24 hex digits.
    pub fn next_call_id(&mut self) -> String {
        self.next_id("call")
    }

    /// The next id with the given prefix: `<prefix>_` and 24 hex digits (OpenAI's
    /// item ids: `msg`, `fc`, `rs`).
    pub fn next_id(&mut self, prefix: &str) -> String {
        self.count += 1;
        format!("{prefix}_{}", self.derive(prefix, self.count))
    }

    /// A message id for the answer: `msg_` and the upstream `responseId` when it is
    /// usable, else 24 hex digits from the seed.
    pub fn message_id(&self, response_id: Option<&str>) -> String {
        self.answer_id("msg_", response_id)
    }

    /// An id for the whole answer: `prefix` and the upstream `responseId` when it is
    /// usable, else 24 hex digits from the seed (`chatcmpl-`, `resp_`).
    pub fn answer_id(&self, prefix: &str, response_id: Option<&str>) -> String {
        match response_id {
            Some(id)
                if !id.is_empty()
                    && id
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') =>
            {
                format!("{prefix}{id}")
            }
            _ => {
                let kind = prefix.trim_end_matches(['_', '-']);
                format!("{prefix}{}", self.derive(kind, 0))
            }
        }
    }

    fn derive(&self, kind: &str, n: u64) -> String {
        let mut hasher = Sha256::new();
        hasher.update(self.seed.as_bytes());
        hasher.update([0]);
        hasher.update(kind.as_bytes());
        hasher.update(n.to_le_bytes());
        hex(&hasher.finalize()[..12])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn valid_names_are_kept() {
        let mut map = ToolNameMap::new();
        assert_eq!(map.to_upstream("Bash"), "Bash");
        assert_eq!(
            map.to_upstream("mcp__github__create_issue"),
            "mcp__github__create_issue"
        );
        assert!(map.is_identity());
    }

    #[test]
    fn odd_and_long_names_get_safe_stand_ins_and_come_back() {
        let mut map = ToolNameMap::new();
        let dotted = "mcp__my.server__search docs";
        let long = format!("mcp__{}__tool", "x".repeat(80));
        let a = map.to_upstream(dotted);
        let b = map.to_upstream(&long);
        assert!(is_valid_tool_name(&a), "{a}");
        assert!(is_valid_tool_name(&b), "{b}");
        assert!(a.starts_with("mcp__my_server__search_docs_"), "{a}");
        assert_eq!(b.len(), 64);
        assert_eq!(map.to_client(&a), dotted);
        assert_eq!(map.to_client(&b), long);
        assert_eq!(map.to_client("unknown"), "unknown");
        assert_eq!(map.to_upstream(dotted), a, "stable within a request");
        assert_eq!(
            ToolNameMap::new().to_upstream(dotted),
            a,
            "stable across requests"
        );
        assert_eq!(map.to_upstream("9lives"), derived_name("9lives", 0));
        assert!(map.to_upstream("9lives").starts_with("_9lives_"));
    }

    #[test]
    fn a_stand_in_never_takes_a_real_name() {
        let odd = "a.b";
        let stand_in = derived_name(odd, 0);
        let mut map = ToolNameMap::new();
        assert_eq!(map.to_upstream(&stand_in), stand_in);
        let other = map.to_upstream(odd);
        assert_ne!(other, stand_in);
        assert_eq!(map.to_client(&other), odd);
        assert_eq!(map.to_client(&stand_in), stand_in);
    }

    #[test]
    fn namespaced_tools_go_up_flat_and_come_back_with_their_namespace() {
        let mut map = ToolNameMap::new();
        let spawn = map.to_upstream_namespaced("multi_agent_v1", "spawn_agent");
        assert_eq!(spawn, "multi_agent_v1__spawn_agent");
        assert_eq!(map.to_client(&spawn), "spawn_agent");
        assert_eq!(map.namespace_of(&spawn), Some("multi_agent_v1"));
        assert_eq!(
            map.namespaced_upstream_name("multi_agent_v1", "spawn_agent"),
            Some(spawn.as_str())
        );
        assert!(!map.is_identity());
        // Codex's MCP namespaces end in `__` or not; the join is one `__` either way.
        assert_eq!(
            map.to_upstream_namespaced("mcp__github__", "create_issue"),
            "mcp__github__create_issue"
        );
        // The same name in two namespaces, and a plain tool of that name: three tools.
        let other = map.to_upstream_namespaced("collab", "spawn_agent");
        let plain = map.to_upstream("spawn_agent");
        assert_eq!(
            (other.as_str(), plain.as_str()),
            ("collab__spawn_agent", "spawn_agent")
        );
        assert_eq!(map.namespace_of(&plain), None);
        assert_eq!(map.namespace_of(&other), Some("collab"));
        // Stable within a request and across requests.
        assert_eq!(
            map.to_upstream_namespaced("multi_agent_v1", "spawn_agent"),
            spawn
        );
        assert_eq!(
            ToolNameMap::new().to_upstream_namespaced("multi_agent_v1", "spawn_agent"),
            spawn
        );
    }

    #[test]
    fn namespaced_names_that_collide_or_are_odd_get_stand_ins() {
        let mut map = ToolNameMap::new();
        // `a` + `b__c` and `a__b` + `c` are both `a__b__c` when flat.
        let first = map.to_upstream_namespaced("a", "b__c");
        let second = map.to_upstream_namespaced("a__b", "c");
        assert_eq!(first, "a__b__c");
        assert_ne!(second, first);
        assert!(second.starts_with("a__b__c_"), "{second}");
        // A plain tool with that flat name gets a stand-in too.
        let plain = map.to_upstream("a__b__c");
        assert!(plain != first && plain != second, "{plain}");
        for (upstream, namespace, name) in [
            (&first, Some("a"), "b__c"),
            (&second, Some("a__b"), "c"),
            (&plain, None, "a__b__c"),
        ] {
            assert!(is_valid_tool_name(upstream), "{upstream}");
            assert_eq!(map.to_client(upstream), name);
            assert_eq!(map.namespace_of(upstream), namespace);
        }
        // Dotted and long MCP names.
        let dotted = map.to_upstream_namespaced("mcp__my.server", "search.docs");
        assert!(
            dotted.starts_with("mcp__my_server__search_docs_"),
            "{dotted}"
        );
        let long = map.to_upstream_namespaced(&"n".repeat(50), &"t".repeat(50));
        assert_eq!(long.len(), MAX_TOOL_NAME_LEN);
        assert!(is_valid_tool_name(&long));
        assert_eq!(map.to_client(&dotted), "search.docs");
        assert_eq!(map.namespace_of(&dotted), Some("mcp__my.server"));
    }

    #[test]
    fn minted_ids_are_unique_and_reproducible() {
        let mut a = ToolIdMinter::new("req-1");
        let mut b = ToolIdMinter::new("req-1");
        let first = a.next_tool_id();
        assert!(first.starts_with("toolu_") && first.len() == 30, "{first}");
        assert_ne!(first, a.next_tool_id());
        assert_eq!(first, b.next_tool_id());
        assert_ne!(first, ToolIdMinter::new("req-2").next_tool_id());
        assert_eq!(a.message_id(Some("abc-1")), "msg_abc-1");
        assert_eq!(a.answer_id("chatcmpl-", Some("r1")), "chatcmpl-r1");
        assert!(a.answer_id("resp_", None).starts_with("resp_"));
        let call = a.next_call_id();
        assert!(call.starts_with("call_") && call.len() == 29, "{call}");
        assert_ne!(a.next_id("fc"), a.next_id("fc"));
        assert!(a.message_id(Some("a b")).starts_with("msg_"));
    }

    proptest! {
        #[test]
        fn names_map_losslessly(names in proptest::collection::vec(any::<String>(), 1..8)) {
            let mut map = ToolNameMap::new();
            let safe: Vec<String> = names.iter().map(|n| map.to_upstream(n)).collect();
            for (name, safe) in names.iter().zip(&safe) {
                prop_assert!(is_valid_tool_name(safe), "{:?}", safe);
                prop_assert_eq!(map.to_client(safe), name.as_str());
            }
            for (i, a) in names.iter().enumerate() {
                for (j, b) in names.iter().enumerate() {
                    if a != b {
                        prop_assert_ne!(&safe[i], &safe[j]);
                    }
                }
            }
        }
    }
}
