//! A signed-in web-console session, as a browser has one (tests/console.rs,
//! tests/updates.rs).

use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::Harness;

/// A browser-like session: the cookie, the CSRF token and the origin.
pub struct Console {
    pub http: reqwest::Client,
    pub url: String,
    pub cookie: String,
    pub csrf: String,
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Signs in with `token` (a sign-in link's); the session cookie's `name=value`.
pub async fn sign_in_with(h: &Harness, token: &str) -> reqwest::Response {
    client()
        .get(format!("{}/ui/login?token={token}", h.url))
        .send()
        .await
        .unwrap()
}

pub fn session_cookie(response: &reqwest::Response) -> String {
    let set = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with("agm_session="))
        .expect("a session cookie");
    assert!(set.contains("HttpOnly"), "{set}");
    assert!(set.contains("SameSite=Strict"), "{set}");
    set.split(';').next().unwrap().to_owned()
}

pub async fn sign_in(h: &Harness) -> Console {
    let addr: std::net::SocketAddr = h.url.trim_start_matches("http://").parse().unwrap();
    let link = h.state.console.startup_link(addr).expect("a loopback link");
    let token = link.split("token=").nth(1).unwrap();
    let response = sign_in_with(h, token).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()["location"], "/ui/");
    let cookie = session_cookie(&response);
    let http = client();
    let session: Value = http
        .get(format!("{}/api/session", h.url))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    Console {
        http,
        url: h.url.clone(),
        cookie,
        csrf: session["csrf"].as_str().unwrap().to_owned(),
    }
}

impl Console {
    /// A request as the console's own page sends it.
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.url))
            .header("cookie", &self.cookie)
            .header("origin", &self.url)
            .header("x-agm-csrf", &self.csrf)
    }

    pub async fn get(&self, path: &str) -> Value {
        let response = self.request(Method::GET, path).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "GET {path}");
        response.json().await.unwrap()
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.request(method, path);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}
