//! Which endpoint a method and path address.

use axum::http::Method;

use crate::SimMethod;

/// The official Gemini API call a path names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum GeminiCall {
    Generate(String),
    Stream(String),
    CountTokens(String),
    List,
    Get(String),
}

/// A parsed route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    Token,
    Authorize,
    UserInfo,
    LoadCodeAssist,
    OnboardUser,
    GetOperation(String),
    FetchAvailableModels,
    RetrieveUserQuotaSummary,
    GenerateContent,
    StreamGenerateContent,
    CountTokens,
    Gemini { version: String, call: GeminiCall },
    Unknown,
}

impl Route {
    /// Parses a method and a path (without the query).
    pub fn parse(method: &Method, path: &str) -> Route {
        let get = method == Method::GET;
        let post = method == Method::POST;
        match path {
            "/token" | "/o/oauth2/token" | "/oauth2/v4/token" if post => return Route::Token,
            "/o/oauth2/v2/auth" | "/o/oauth2/auth" if get => return Route::Authorize,
            "/oauth2/v2/userinfo" | "/oauth2/v1/userinfo" | "/v1/userinfo" if get => {
                return Route::UserInfo;
            }
            _ => {}
        }
        if let Some(rpc) = path.strip_prefix("/v1internal:") {
            if !post {
                return Route::Unknown;
            }
            return match rpc {
                "loadCodeAssist" => Route::LoadCodeAssist,
                "onboardUser" => Route::OnboardUser,
                "fetchAvailableModels" => Route::FetchAvailableModels,
                "retrieveUserQuotaSummary" => Route::RetrieveUserQuotaSummary,
                "generateContent" => Route::GenerateContent,
                "streamGenerateContent" => Route::StreamGenerateContent,
                "countTokens" => Route::CountTokens,
                _ => Route::Unknown,
            };
        }
        if let Some(name) = path.strip_prefix("/v1internal/") {
            return if get && name.starts_with("operations/") {
                Route::GetOperation(name.trim_start_matches("operations/").to_owned())
            } else {
                Route::Unknown
            };
        }
        for version in ["v1beta", "v1"] {
            let Some(rest) = path
                .strip_prefix('/')
                .and_then(|p| p.strip_prefix(version))
                .and_then(|p| p.strip_prefix("/models"))
            else {
                continue;
            };
            let call = if rest.is_empty() || rest == "/" {
                get.then_some(GeminiCall::List)
            } else if let Some(rest) = rest.strip_prefix('/') {
                match rest.rsplit_once(':') {
                    Some((model, action)) if post && !model.is_empty() => match action {
                        "generateContent" => Some(GeminiCall::Generate(model.to_owned())),
                        "streamGenerateContent" => Some(GeminiCall::Stream(model.to_owned())),
                        "countTokens" => Some(GeminiCall::CountTokens(model.to_owned())),
                        _ => None,
                    },
                    None if get && !rest.contains('/') => Some(GeminiCall::Get(rest.to_owned())),
                    _ => None,
                }
            } else {
                None
            };
            return match call {
                Some(call) => Route::Gemini {
                    version: version.to_owned(),
                    call,
                },
                None => Route::Unknown,
            };
        }
        Route::Unknown
    }

    /// The endpoint, as captured and as faults name it.
    pub fn method(&self) -> SimMethod {
        match self {
            Route::Token => SimMethod::Token,
            Route::Authorize => SimMethod::Authorize,
            Route::UserInfo => SimMethod::UserInfo,
            Route::LoadCodeAssist => SimMethod::LoadCodeAssist,
            Route::OnboardUser => SimMethod::OnboardUser,
            Route::GetOperation(_) => SimMethod::GetOperation,
            Route::FetchAvailableModels => SimMethod::FetchAvailableModels,
            Route::RetrieveUserQuotaSummary => SimMethod::RetrieveUserQuotaSummary,
            Route::GenerateContent => SimMethod::GenerateContent,
            Route::StreamGenerateContent => SimMethod::StreamGenerateContent,
            Route::CountTokens => SimMethod::CountTokens,
            Route::Gemini { call, .. } => match call {
                GeminiCall::Generate(_) => SimMethod::GeminiGenerateContent,
                GeminiCall::Stream(_) => SimMethod::GeminiStreamGenerateContent,
                GeminiCall::CountTokens(_) => SimMethod::GeminiCountTokens,
                GeminiCall::List | GeminiCall::Get(_) => SimMethod::GeminiListModels,
            },
            Route::Unknown => SimMethod::Unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_route() {
        let post = Method::POST;
        let get = Method::GET;
        assert_eq!(Route::parse(&post, "/token"), Route::Token);
        assert_eq!(Route::parse(&get, "/o/oauth2/v2/auth"), Route::Authorize);
        assert_eq!(Route::parse(&get, "/oauth2/v2/userinfo"), Route::UserInfo);
        assert_eq!(
            Route::parse(&post, "/v1internal:streamGenerateContent"),
            Route::StreamGenerateContent
        );
        assert_eq!(
            Route::parse(&get, "/v1internal/operations/abc"),
            Route::GetOperation("abc".to_owned())
        );
        assert_eq!(
            Route::parse(&post, "/v1beta/models/gemini-2.5-flash:generateContent"),
            Route::Gemini {
                version: "v1beta".to_owned(),
                call: GeminiCall::Generate("gemini-2.5-flash".to_owned())
            }
        );
        assert_eq!(
            Route::parse(&get, "/v1/models"),
            Route::Gemini {
                version: "v1".to_owned(),
                call: GeminiCall::List
            }
        );
        assert_eq!(
            Route::parse(&get, "/v1beta/models/gemini-2.5-pro"),
            Route::Gemini {
                version: "v1beta".to_owned(),
                call: GeminiCall::Get("gemini-2.5-pro".to_owned())
            }
        );
        assert_eq!(
            Route::parse(&get, "/v1internal:generateContent"),
            Route::Unknown
        );
        assert_eq!(
            Route::parse(&post, "/v1beta/models/x:embedContent"),
            Route::Unknown
        );
        assert_eq!(Route::parse(&post, "/v1betax/models"), Route::Unknown);
        assert_eq!(Route::parse(&get, "/nope"), Route::Unknown);
    }
}
