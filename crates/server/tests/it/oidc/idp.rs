//! The upstream provider for the OIDC tests — the OpenID-certified `oidc-provider`
//! package from npm, installed into `tests/oidc-provider` (committed package-lock.json)
//! and started on loopback per test — and a small browser: an HTTP client that follows
//! redirects and keeps cookies like a browser does.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::Resp;

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/oidc-provider")
}

/// Installs the provider's npm packages once per test run (from the lock file).
/// Returns false (after saying so) when Node.js is not there; with
/// AEGIS_TEST_REQUIRE_SERVICES set that is a failure instead.
pub fn provider_available(test: &str) -> bool {
    static INSTALLED: Mutex<Option<bool>> = Mutex::new(None);
    let mut installed = INSTALLED.lock().unwrap_or_else(|p| p.into_inner());
    let ok = *installed.get_or_insert_with(|| {
        let dir = fixture_dir();
        let node = Command::new("node")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !node {
            return false;
        }
        if dir.join("node_modules/oidc-provider/package.json").exists() {
            return true;
        }
        let out = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&dir)
            .output();
        match out {
            Ok(o) if o.status.success() => true,
            Ok(o) => panic!(
                "npm ci in {} failed: {}",
                dir.display(),
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => panic!("npm ci: {e}"),
        }
    });
    if !ok {
        assert!(
            std::env::var("AEGIS_TEST_REQUIRE_SERVICES").is_err(),
            "Node.js and npm are required for the OIDC tests"
        );
        eprintln!("SKIPPED: oidc::{test} (node not available)");
    }
    ok
}

/// A running provider. Killed (and its stdin closed) when dropped.
pub struct Idp {
    pub issuer: String,
    child: Child,
    http: reqwest::Client,
}

impl Drop for Idp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The client secret of the test client `aegis`.
pub const CLIENT_SECRET: &str = "idp-client-secret-5f2b9c";

/// Two accounts: alice (verified, in two groups) and bob (unverified address).
pub fn accounts() -> Value {
    json!({
        "alice": {"email": "alice@example.com", "email_verified": true, "name": "Alice A",
                  "groups": ["advisors", "aegis-admins"]},
        "bob": {"email": "bob@example.com", "email_verified": false, "name": "Bob B",
                "groups": ["advisors"]},
        "carol": {"name": "Carol without e-mail", "groups": []}
    })
}

impl Idp {
    /// Starts a provider whose clients may redirect to `redirect_uris`: client `aegis`
    /// (client_secret_basic), `aegis-post` (client_secret_post) and `aegis-jwt`
    /// (private_key_jwt).
    pub fn start(redirect_uris: &[String]) -> Idp {
        let config = json!({
            "clients": [
                {"client_id": "aegis", "client_secret": CLIENT_SECRET,
                 "token_endpoint_auth_method": "client_secret_basic", "redirect_uris": redirect_uris},
                {"client_id": "aegis-post", "client_secret": CLIENT_SECRET,
                 "token_endpoint_auth_method": "client_secret_post", "redirect_uris": redirect_uris},
                {"client_id": "aegis-jwt", "token_endpoint_auth_method": "private_key_jwt",
                 "redirect_uris": redirect_uris},
            ],
            "accounts": accounts(),
            "default_account": "alice",
        });
        let mut child = Command::new("node")
            .arg("provider.mjs")
            .current_dir(fixture_dir())
            .env("OIDC_TEST_CONFIG", config.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn node provider.mjs");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read provider line");
        let issuer = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("provider did not start: {line:?}"))
            .to_string();
        Idp {
            issuer,
            child,
            http: crate::harness::http_client()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("client"),
        }
    }

    async fn control(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let mut rb = self.http.request(
            method.parse().expect("method"),
            format!("{}{path}", self.issuer),
        );
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().await.expect("provider control");
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().await.expect("control json")
    }

    /// Makes every following ID token misbehave (`None` restores).
    pub async fn misbehave(&self, mode: Option<&str>) {
        self.control("POST", "/__test/misbehave", Some(json!({"mode": mode})))
            .await;
    }

    /// Rotates the provider's signing key (new kid, both in the JWKS).
    pub async fn rotate(&self) -> Value {
        self.control("POST", "/__test/rotate", None).await
    }

    /// Requests served so far, by endpoint.
    pub async fn stats(&self) -> Value {
        self.control("GET", "/__test/stats", None).await
    }

    /// The last tokens the token endpoint issued.
    pub async fn last_tokens(&self) -> Value {
        self.control("GET", "/__test/tokens", None).await
    }

    /// The private key of a private_key_jwt client (PEM) and its kid.
    pub async fn client_key(&self, client_id: &str) -> Value {
        self.control(
            "GET",
            &format!("/__test/client-key?client_id={client_id}"),
            None,
        )
        .await
    }
}

/// A cookie as a browser keeps it.
struct StoredCookie {
    path: String,
    value: String,
}

/// A minimal browser: follows redirects by hand (so each hop can be inspected) and
/// keeps cookies per host (ports share cookies, as in browsers) and path.
pub struct Browser {
    http: reqwest::Client,
    jar: HashMap<(String, String), StoredCookie>,
    /// Every URL visited, in order.
    pub visited: Vec<String>,
}

fn host_of(url: &str) -> String {
    url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_default()
}

impl Browser {
    pub fn new() -> Browser {
        Browser {
            http: crate::harness::http_client()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            jar: HashMap::new(),
            visited: Vec::new(),
        }
    }

    fn cookie_header(&self, url: &str) -> Option<String> {
        let parsed = url::Url::parse(url).ok()?;
        let host = parsed.host_str()?.to_string();
        let path = parsed.path();
        let pairs: Vec<String> = self
            .jar
            .iter()
            .filter(|((h, _), c)| *h == host && path.starts_with(&c.path))
            .map(|((_, name), c)| format!("{name}={}", c.value))
            .collect();
        (!pairs.is_empty()).then(|| pairs.join("; "))
    }

    fn store(&mut self, url: &str, set_cookie: &str) {
        let host = host_of(url);
        let mut parts = set_cookie.split(';');
        let Some((name, value)) = parts.next().and_then(|p| p.trim().split_once('=')) else {
            return;
        };
        let mut path = "/".to_string();
        let mut delete = value.is_empty();
        for attr in parts {
            let (k, v) = attr.trim().split_once('=').unwrap_or((attr.trim(), ""));
            match k.to_ascii_lowercase().as_str() {
                "path" => path = v.to_string(),
                "max-age" => delete |= v.trim().parse::<i64>().is_ok_and(|n| n <= 0),
                "expires" => delete |= v.contains("1970"),
                _ => {}
            }
        }
        let key = (host, name.to_string());
        if delete {
            self.jar.remove(&key);
        } else {
            self.jar.insert(
                key,
                StoredCookie {
                    path,
                    value: value.to_string(),
                },
            );
        }
    }

    /// One GET, storing cookies; no redirect followed.
    pub async fn get(&mut self, url: &str) -> Resp {
        self.visited.push(url.to_string());
        let mut rb = self
            .http
            .get(url)
            .header("accept", "text/html,application/json");
        if let Some(c) = self.cookie_header(url) {
            rb = rb.header("cookie", c);
        }
        let r = rb.send().await.expect("browser request");
        let headers = r.headers().clone();
        for v in headers.get_all("set-cookie") {
            if let Ok(s) = v.to_str() {
                self.store(url, s);
            }
        }
        Resp {
            status: r.status().as_u16(),
            headers,
            text: r.text().await.expect("body"),
        }
    }

    /// Follows redirects from `url` until a response is not a redirect, or until the
    /// next location starts with `stop_before` (returned unvisited as `Err`).
    pub async fn follow(&mut self, url: &str, stop_before: Option<&str>) -> Result<Resp, String> {
        let mut url = url.to_string();
        for _ in 0..20 {
            let r = self.get(&url).await;
            if !(300..400).contains(&r.status) {
                return Ok(r);
            }
            let location = r.header("location").expect("redirect without Location");
            let next = url::Url::parse(&url)
                .and_then(|base| base.join(&location))
                .expect("location")
                .to_string();
            if stop_before.is_some_and(|s| next.starts_with(s)) {
                return Err(next);
            }
            url = next;
        }
        panic!("too many redirects from {url}");
    }
}
