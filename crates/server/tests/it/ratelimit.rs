//! Rate limiting through the real server: both backends, headers, per-route and
//! per-account rules, several instances sharing Redis, restarts, Redis outages and
//! forwarded-header spoofing.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::{Db, PASSWORD, Resp, Server, TestDb};

fn redis_url(test: &str) -> Option<String> {
    crate::harness::redis_url(&format!("ratelimit::{test}"))
}

/// A configuration file with rate-limit rules, kept alive with the test.
struct Rules {
    dir: tempfile::TempDir,
}

impl Rules {
    fn new(toml: &str) -> Rules {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("aegis.toml"), toml).unwrap();
        Rules { dir }
    }

    fn path(&self) -> String {
        self.dir.path().join("aegis.toml").display().to_string()
    }
}

/// Environment for a limited server: limits on, this rule file, optionally Redis with a
/// key prefix of its own.
fn env(rules: &Rules, redis: Option<(&str, &str)>) -> Vec<(String, String)> {
    let mut env = vec![
        ("AEGIS_RATE_LIMIT_ENABLED".to_string(), "true".to_string()),
        ("AEGIS_CONFIG".to_string(), rules.path()),
    ];
    if let Some((url, prefix)) = redis {
        env.push(("AEGIS_REDIS_URL".into(), url.into()));
        env.push(("AEGIS_RATE_LIMIT_REDIS_PREFIX".into(), prefix.into()));
    }
    env
}

fn pairs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

fn unique_prefix() -> String {
    format!("aegis-test:{}:", uuid::Uuid::new_v4().simple())
}

const PROBE_3_PER_6S: &str = r#"
[rate_limit.rules.probe]
routes = ["GET /healthz"]
key = "ip"
limit = 3
period_secs = 6
"#;

async fn get(s: &Server, path: &str, headers: &[(&str, &str)]) -> Resp {
    s.req("GET", path, None, headers).await
}

/// The N+1-th request in the window is refused with the right headers; the window
/// recovers.
async fn limit_headers_and_recovery(s: &Server) {
    for remaining in (0..3).rev() {
        let r = get(s, "/healthz", &[]).await;
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("ratelimit-policy").as_deref(),
            Some("\"probe\";q=3;w=6")
        );
        assert_eq!(r.header("x-ratelimit-limit").as_deref(), Some("3"));
        assert_eq!(
            r.header("x-ratelimit-remaining"),
            Some(remaining.to_string())
        );
        let rl = r.header("ratelimit").unwrap();
        assert!(
            rl.starts_with(&format!("\"probe\";r={remaining};t=")),
            "{rl}"
        );
    }
    let refused = get(s, "/healthz", &[]).await;
    assert_eq!(refused.status, 429, "{}", refused.text);
    assert_eq!(refused.json()["error"], "rate_limited");
    assert_eq!(refused.header("retry-after").as_deref(), Some("2"));
    assert_eq!(
        refused.header("x-ratelimit-remaining").as_deref(),
        Some("0")
    );
    assert_eq!(refused.header("x-ratelimit-reset").as_deref(), Some("6"));
    assert!(refused.header("ratelimit").unwrap().contains("r=0"));
    // Other routes are under the default rule only.
    let other = get(s, "/readyz", &[]).await;
    assert_eq!(other.status, 200);
    assert_eq!(
        other.header("ratelimit-policy").as_deref(),
        Some("\"default\";q=120;w=60")
    );
    // One emission interval (2 s) later one request is admitted again.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(get(s, "/healthz", &[]).await.status, 200);
    assert_eq!(get(s, "/healthz", &[]).await.status, 429);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_limits() {
    let rules = Rules::new(PROBE_3_PER_6S);
    let s = Server::start(Db::Sqlite, &pairs(&env(&rules, None))).await;
    limit_headers_and_recovery(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_limits() {
    let Some(url) = redis_url("redis_limits") else {
        return;
    };
    let rules = Rules::new(PROBE_3_PER_6S);
    let prefix = unique_prefix();
    let s = Server::start(Db::Sqlite, &pairs(&env(&rules, Some((&url, &prefix))))).await;
    limit_headers_and_recovery(&s).await;
}

/// The shipped defaults limit login and registration without any configuration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_rules_limit_auth_routes() {
    let s = Server::start(Db::Sqlite, &[("AEGIS_RATE_LIMIT_ENABLED", "true")]).await;
    for i in 0..3 {
        s.register("", &format!("user{i}@example.com")).await;
    }
    let r = s
        .req(
            "POST",
            "/api/v1/register",
            Some(&json!({"email": "user9@example.com", "password": PASSWORD})),
            &[],
        )
        .await;
    assert_eq!(r.status, 429, "register: 3/min per IP");
    assert_eq!(
        s.db.scalar_i64("SELECT COUNT(*) FROM users WHERE email = 'user9@example.com'")
            .await,
        0
    );
    for _ in 0..5 {
        let r = s
            .login("", "user0@example.com", "wrong password 1234")
            .await;
        assert_eq!(r.status, 401);
    }
    let r = s.login("", "user0@example.com", PASSWORD).await;
    assert_eq!(r.status, 429, "login: 5/min per IP");
    assert!(r.header("retry-after").is_some());
    assert_eq!(
        s.db.scalar_i64("SELECT COUNT(*) FROM audit_events WHERE action = 'rate_limit.exceeded'")
            .await,
        2,
        "one audit entry per refused rule and key"
    );
    let metrics = get(&s, "/metrics", &[]).await;
    assert_eq!(metrics.status, 200);
    assert!(
        metrics
            .text
            .contains("aegis_rate_limit_refusals_total{rule=\"login-ip\"} 1"),
        "{}",
        metrics.text
    );
    assert!(metrics.text.contains("aegis_login_failures_total"));
}

const ACCOUNT_RULES: &str = r#"
trusted_proxies = ["127.0.0.1/32", "::1/128"]

[rate_limit.rules.login-ip]
routes = ["POST /api/v1/login"]
key = "ip"
limit = 100
period_secs = 60

[rate_limit.rules.login-ip-15m]
routes = ["POST /api/v1/login"]
key = "ip"
limit = 1
period_secs = 1
enabled = false

[rate_limit.rules.login-account-ip]
routes = ["POST /api/v1/login"]
key = "account_ip"
limit = 1
period_secs = 1
enabled = false

[rate_limit.rules.login-account]
routes = ["POST /api/v1/login"]
key = "account"
limit = 2
period_secs = 60

[rate_limit.rules.login-account-15m]
routes = ["POST /api/v1/login"]
key = "account"
limit = 1
period_secs = 1
enabled = false
"#;

async fn login_from(s: &Server, ip: &str, email: &str, password: &str) -> Resp {
    s.req(
        "POST",
        "/api/v1/login",
        Some(&json!({"email": email, "password": password})),
        &[("x-forwarded-for", ip)],
    )
    .await
}

/// Per-account limits slow down guessing on one account without touching others, and
/// the owner's known IP still gets in (rate limit and lockout alike).
async fn account_limits_spare_the_owner(db: Db) {
    let rules = Rules::new(ACCOUNT_RULES);
    let mut e = env(&rules, None);
    e.push(("AEGIS_LOCKOUT_THRESHOLD".into(), "3".into()));
    let s = Server::start(db, &pairs(&e)).await;
    s.register("", "alice@example.com").await;
    s.register("", "bob@example.com").await;
    let owner = "198.51.100.7";
    let attacker = "203.0.113.5";
    assert_eq!(
        login_from(&s, owner, "alice@example.com", PASSWORD)
            .await
            .status,
        200
    );

    // Bob has never signed in: two guesses, then the account rule refuses.
    for _ in 0..2 {
        let r = login_from(&s, attacker, "bob@example.com", "guess number 12345").await;
        assert_eq!(r.status, 401);
    }
    let r = login_from(&s, attacker, "bob@example.com", "guess number 12345").await;
    assert_eq!(r.status, 429);
    assert_eq!(
        r.header("ratelimit-policy").as_deref(),
        Some("\"login-account\";q=2;w=60")
    );
    // Another account from the same IP is not affected; Bob is refused from anywhere.
    assert_eq!(
        login_from(&s, attacker, "carol@example.com", "guess number 12345")
            .await
            .status,
        401
    );
    assert_eq!(
        login_from(&s, "192.0.2.33", "bob@example.com", PASSWORD)
            .await
            .status,
        429
    );

    // Alice: the attacker exhausts her account limit (her own login used one)...
    let r = login_from(&s, attacker, "Alice@Example.com", "guess number 12345").await;
    assert_eq!(r.status, 401);
    assert_eq!(
        login_from(&s, attacker, "alice@example.com", "guess number 12345")
            .await
            .status,
        429
    );
    // ...but Alice's known IP is waived through and signs in.
    let r = login_from(&s, owner, "alice@example.com", PASSWORD).await;
    assert_eq!(r.status, 200, "{}", r.text);

    // The account lockout behaves the same: locked for strangers, open to the owner.
    let s2 = Server::start(
        db,
        &pairs(&[
            ("AEGIS_LOCKOUT_THRESHOLD".to_string(), "3".to_string()),
            (
                "AEGIS_TRUSTED_PROXIES".to_string(),
                "127.0.0.1/32,::1/128".to_string(),
            ),
        ]),
    )
    .await;
    s2.register("", "dave@example.com").await;
    assert_eq!(
        login_from(&s2, owner, "dave@example.com", PASSWORD)
            .await
            .status,
        200
    );
    for _ in 0..3 {
        let r = login_from(&s2, attacker, "dave@example.com", "guess number 12345").await;
        assert_eq!(r.status, 401);
    }
    assert_eq!(
        s2.db
            .scalar_i64("SELECT COUNT(*) FROM audit_events WHERE action = 'user.locked'")
            .await,
        1
    );
    let stranger = login_from(&s2, "192.0.2.200", "dave@example.com", PASSWORD).await;
    assert_eq!(
        stranger.status, 401,
        "locked for unknown IPs, even with the password"
    );
    let r = login_from(&s2, owner, "dave@example.com", PASSWORD).await;
    assert_eq!(r.status, 200, "the owner's known IP bypasses the lockout");
}
crate::both_backends!(account_limits_spare_the_owner);

const PROBE_2_PER_MIN: &str = r#"
[rate_limit.rules.probe]
routes = ["GET /healthz"]
key = "ip"
limit = 2
period_secs = 60
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoofed_forwarded_headers_do_not_change_the_key() {
    let rules = Rules::new(PROBE_2_PER_MIN);
    let s = Server::start(Db::Sqlite, &pairs(&env(&rules, None))).await;
    let statuses = [
        get(&s, "/healthz", &[("x-forwarded-for", "192.0.2.1")])
            .await
            .status,
        get(&s, "/healthz", &[("x-forwarded-for", "192.0.2.2")])
            .await
            .status,
        get(&s, "/healthz", &[("forwarded", "for=192.0.2.3")])
            .await
            .status,
    ];
    assert_eq!(
        statuses,
        [200, 200, 429],
        "an untrusted peer's header is ignored"
    );

    // Behind a trusted proxy the real client is the key.
    let rules = Rules::new(&format!(
        "trusted_proxies = [\"127.0.0.1/32\", \"::1/128\"]\n{PROBE_2_PER_MIN}"
    ));
    let s = Server::start(Db::Sqlite, &pairs(&env(&rules, None))).await;
    let xff = |ip: &'static str| [("x-forwarded-for", ip)];
    assert_eq!(get(&s, "/healthz", &xff("192.0.2.1")).await.status, 200);
    assert_eq!(get(&s, "/healthz", &xff("192.0.2.1")).await.status, 200);
    assert_eq!(get(&s, "/healthz", &xff("192.0.2.1")).await.status, 429);
    assert_eq!(get(&s, "/healthz", &xff("192.0.2.2")).await.status, 200);
    // A client prepending a fake address does not escape: the right-most untrusted
    // address (the one our proxy saw) is the key.
    let chained = [("x-forwarded-for", "10.9.9.9, 192.0.2.1")];
    assert_eq!(get(&s, "/healthz", &chained).await.status, 429);
}

const PROBE_50_PER_MIN: &str = r#"
trusted_proxies = ["127.0.0.1/32", "::1/128"]

[rate_limit.rules.probe]
routes = ["GET /healthz"]
key = "ip"
limit = 50
period_secs = 60
"#;

/// Three instances sharing one Redis and one database admit exactly the policy's 50
/// of 100 requests spread over them.
async fn instances_share_limits_exactly(db: Db) {
    let Some(url) = redis_url("instances_share_limits_exactly") else {
        return;
    };
    let rules = Rules::new(PROBE_50_PER_MIN);
    let prefix = unique_prefix();
    let e = env(&rules, Some((&url, &prefix)));
    let first = Server::start(db, &pairs(&e)).await;
    let servers = [first.another(&pairs(&e)), first.another(&pairs(&e))];
    let bases: Vec<String> = std::iter::once(first.base.clone())
        .chain(servers.iter().map(|s| s.base.clone()))
        .collect();
    let client = crate::harness::http_client().build().unwrap();
    // GCRA admits one more request every 1.2 s, so the count is exact only when the
    // 100 requests fit in that time. On a loaded machine a slow round is repeated with
    // a fresh client address (a fresh key), at most three times.
    for round in 1..=3 {
        let client_ip = format!("192.0.2.{round}");
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..100 {
            let url = format!("{}/healthz", bases[i % 3]);
            let (client, ip) = (client.clone(), client_ip.clone());
            tasks.spawn(async move {
                let r = client.get(url).header("x-forwarded-for", ip).send().await;
                r.unwrap().status().as_u16()
            });
        }
        let (mut ok, mut limited) = (0, 0);
        while let Some(status) = tasks.join_next().await {
            match status.unwrap() {
                200 => ok += 1,
                429 => limited += 1,
                other => panic!("unexpected status {other}"),
            }
        }
        let elapsed = started.elapsed();
        if elapsed >= Duration::from_millis(1200) {
            eprintln!("round {round} took {elapsed:?}: too slow to count exactly, repeating");
            continue;
        }
        assert_eq!((ok, limited), (50, 50));
        return;
    }
    panic!("three rounds of 100 requests each took longer than 1.2 s");
}
crate::both_backends!(instances_share_limits_exactly);

/// Limits live in Redis: a restarted instance remembers them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_survive_a_restart() {
    let Some(url) = redis_url("limits_survive_a_restart") else {
        return;
    };
    let rules = Rules::new(PROBE_2_PER_MIN);
    let prefix = unique_prefix();
    let e = env(&rules, Some((&url, &prefix)));
    let s = Server::start(Db::Sqlite, &pairs(&e)).await;
    assert_eq!(get(&s, "/healthz", &[]).await.status, 200);
    assert_eq!(get(&s, "/healthz", &[]).await.status, 200);
    let db: Arc<TestDb> = s.db.clone();
    drop(s);
    let restarted = Server::start_shared(db, &pairs(&e));
    assert_eq!(get(&restarted, "/healthz", &[]).await.status, 429);
}

/// A Redis server of the test's own, so it can be stopped and started again.
struct OwnRedis {
    port: u16,
    child: Option<Child>,
}

impl OwnRedis {
    fn start(port: Option<u16>) -> Option<OwnRedis> {
        let port = port.unwrap_or_else(|| {
            TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        });
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let mut redis = OwnRedis {
            port,
            child: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        redis.port = port;
        Some(redis)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Polls until `path` on `s` answers `status`, for up to 10 s.
async fn eventually(s: &Server, path: &str, status: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if get(s, path, &[]).await.status == status {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_follows_the_failure_mode() {
    if redis_url("redis_outage_follows_the_failure_mode").is_none() {
        return;
    }
    let Some(mut redis) = OwnRedis::start(None) else {
        panic!("redis-server is not installed");
    };
    let rules = Rules::new(PROBE_2_PER_MIN);
    let url = redis.url();
    let prefix = unique_prefix();
    let mut closed_env = env(&rules, Some((&url, &prefix)));
    closed_env.push(("AEGIS_RATE_LIMIT_FAILURE_MODE".into(), "fail_closed".into()));
    let mut open_env = env(&rules, Some((&url, &prefix)));
    open_env.push(("AEGIS_RATE_LIMIT_FAILURE_MODE".into(), "fail_open".into()));
    let closed = Server::start(Db::Sqlite, &pairs(&closed_env)).await;
    let open = closed.another(&pairs(&open_env));

    // Redis up: /readyz (default rule only) answers on both.
    assert_eq!(get(&closed, "/readyz", &[]).await.status, 200);
    assert_eq!(get(&open, "/readyz", &[]).await.status, 200);

    redis.stop();
    let down = get(&closed, "/api/v1/sessions", &[]).await;
    assert_eq!(down.status, 503, "{}", down.text);
    assert_eq!(down.json()["error"], "unavailable");
    assert_eq!(down.header("retry-after").as_deref(), Some("1"));
    // fail_open: this instance's own limits apply (2 per minute on /healthz).
    assert_eq!(get(&open, "/healthz", &[]).await.status, 200);
    assert_eq!(get(&open, "/healthz", &[]).await.status, 200);
    assert_eq!(get(&open, "/healthz", &[]).await.status, 429);
    let metrics = get(&open, "/metrics", &[]).await.text;
    assert!(
        metrics.contains("aegis_rate_limit_fallback_total"),
        "{metrics}"
    );

    // Redis back on the same port: both recover without a restart.
    let _redis = OwnRedis::start(Some(redis.port)).expect("restart redis");
    assert!(
        eventually(&closed, "/api/v1/sessions", 401).await,
        "fail_closed recovers"
    );
    assert!(
        eventually(&open, "/healthz", 200).await,
        "fail_open back on Redis"
    );
}
