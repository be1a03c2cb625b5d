//! Sign-in with an upstream OpenID Connect provider, end to end: the real `aegis`
//! binary, a real certified provider (`oidc-provider` from npm) on loopback, and a
//! browser-like client that follows redirects and keeps cookies.

mod failures;
mod flows;
mod idp;
mod linking;

use serde_json::{Value, json};

use crate::harness::{Db, PASSWORD, Resp, Server, cookie};
use idp::{Browser, CLIENT_SECRET, Idp};

/// An origin `return_to` may point to in these tests.
pub const APP_ORIGIN: &str = "https://app.example.com";

/// An Aegis server, a provider whose client redirects to it, and an admin session.
pub struct Setup {
    pub aegis: Server,
    pub idp: Idp,
    admin_token: String,
    admin_csrf: String,
}

impl Setup {
    /// `None` (after reporting the skip) when Node.js is not available.
    pub async fn new(db: Db, test: &str, extra: &[(&str, &str)]) -> Option<Setup> {
        if !idp::provider_available(test) {
            return None;
        }
        let mut env = vec![("AEGIS_OIDC_RETURN_TO_ORIGINS", APP_ORIGIN)];
        env.extend_from_slice(extra);
        let aegis = Server::start(db, &env).await;
        let idp = Idp::start(&[
            format!("{}/auth/oidc/corp/callback", aegis.base),
            format!("{}/t/acme/auth/oidc/corp/callback", aegis.base),
        ]);
        aegis.create_admin("root@example.com");
        let r = aegis.login("", "root@example.com", PASSWORD).await;
        assert_eq!(r.status, 200, "{}", r.text);
        Some(Setup {
            admin_token: r.session_cookie().expect("admin cookie"),
            admin_csrf: r.json()["csrf_token"].as_str().expect("csrf").to_string(),
            aegis,
            idp,
        })
    }

    /// Settings for provider `corp` with client `aegis`: groups mapped to roles, the
    /// refresh token kept.
    pub fn settings(&self) -> Value {
        json!({
            "issuer": self.idp.issuer,
            "client_id": "aegis",
            "client_secret": CLIENT_SECRET,
            "display_name": "Corporate SSO",
            "scopes": ["openid", "email", "profile", "groups"],
            "role_rules": [
                {"claim": "groups", "value": "aegis-admins", "role": "admin"},
                {"claim": "groups", "value": "advisors", "role": "advisor"}
            ],
            "store_refresh_token": true,
        })
    }

    /// `PUT /api/v1/admin/oidc/providers/{name}` as the default tenant's admin.
    pub async fn put_provider(&self, name: &str, settings: &Value) -> Resp {
        self.admin(
            "PUT",
            &format!("/api/v1/admin/oidc/providers/{name}"),
            Some(settings),
        )
        .await
    }

    /// Configures `corp` with [`Setup::settings`] patched by `patch`.
    pub async fn configure(&self, patch: Value) {
        let mut s = self.settings();
        for (k, v) in patch.as_object().expect("patch object") {
            s[k] = v.clone();
        }
        let r = self.put_provider("corp", &s).await;
        assert!(r.status == 201 || r.status == 200, "{}", r.text);
    }

    /// A request with the admin's session.
    pub async fn admin(&self, method: &str, path: &str, body: Option<&Value>) -> Resp {
        let c = cookie(&self.admin_token);
        self.aegis
            .req(
                method,
                path,
                body,
                &[("cookie", &c), ("x-csrf-token", &self.admin_csrf)],
            )
            .await
    }

    pub fn start_url(&self, query: &str) -> String {
        format!("{}/auth/oidc/corp/start{query}", self.aegis.base)
    }

    pub fn callback_prefix(&self) -> String {
        format!("{}/auth/oidc/corp/callback", self.aegis.base)
    }

    /// Runs a sign-in up to the provider's redirect back, which is returned unvisited.
    pub async fn until_callback(&self, browser: &mut Browser, query: &str) -> String {
        match browser
            .follow(&self.start_url(query), Some(&self.callback_prefix()))
            .await
        {
            Err(callback) => callback,
            Ok(r) => panic!(
                "sign-in did not reach the callback: {} {}",
                r.status, r.text
            ),
        }
    }

    /// A whole sign-in; the answer of the callback.
    pub async fn sign_in(&self, browser: &mut Browser, query: &str) -> Resp {
        let callback = self.until_callback(browser, query).await;
        browser.get(&callback).await
    }

    /// Sessions created by provider sign-ins.
    pub async fn oidc_sessions(&self) -> i64 {
        self.aegis
            .db
            .scalar_i64("SELECT COUNT(*) FROM sessions WHERE auth_method = 'oidc'")
            .await
    }

    /// The `details.reason` of every `oidc.failure` audit entry, oldest first.
    pub async fn failure_reasons(&self) -> Vec<String> {
        self.audit_details("oidc.failure")
            .await
            .iter()
            .map(|d| d["reason"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// The details of every audit entry with this action, oldest first.
    pub async fn audit_details(&self, action: &str) -> Vec<Value> {
        self.aegis
            .db
            .strings(&format!(
                "SELECT CAST(details AS TEXT) FROM audit_events WHERE action = '{action}' ORDER BY id"
            ))
            .await
            .iter()
            .map(|s| serde_json::from_str(s).expect("details json"))
            .collect()
    }

    /// `GET /api/v1/session` with a session token.
    pub async fn whoami(&self, token: &str) -> Resp {
        self.aegis
            .req(
                "GET",
                "/api/v1/session",
                None,
                &[("cookie", &cookie(token))],
            )
            .await
    }
}

/// The session token a callback answer set.
pub fn session_token(r: &Resp) -> Option<String> {
    r.headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix("__Host-aegis_session="))
        .and_then(|c| c.split(';').next())
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

/// The value of one query parameter of a URL.
pub fn query_param(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// `url` with one query parameter replaced (or removed with `None`).
pub fn with_param(url: &str, name: &str, value: Option<&str>) -> String {
    let mut u = url::Url::parse(url).expect("url");
    let pairs: Vec<(String, String)> = u
        .query_pairs()
        .filter(|(k, _)| k != name)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    {
        let mut q = u.query_pairs_mut();
        q.clear();
        for (k, v) in &pairs {
            q.append_pair(k, v);
        }
        if let Some(v) = value {
            q.append_pair(name, v);
        }
    }
    u.to_string()
}
