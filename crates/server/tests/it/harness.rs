//! Spawns the real server and gives tests an HTTP client and raw database access.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::header::HeaderMap;
use serde_json::Value;
use sqlx::AssertSqlSafe;

/// A reqwest client builder. The TLS crypto provider is installed first, as `main`
/// does for the server: with rustls built without a default provider, reqwest would
/// panic building a client.
pub fn http_client() -> reqwest::ClientBuilder {
    static TLS: std::sync::Once = std::sync::Once::new();
    TLS.call_once(|| {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    });
    reqwest::Client::builder()
}

/// A strong secret used by every test server.
pub const SECRET: &str = "t3st-Only_kq8Zr1mN0pX4vL7sT2wK9bH6cJ3dF5gY0aE";
/// A password zxcvbn scores 4.
pub const PASSWORD: &str = "correct horse battery staple 42";

/// Which database a test runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// Runs a test body once per backend; PostgreSQL tests report themselves skipped (by
/// name, on stderr) when AEGIS_TEST_DATABASE_URL is not set, and fail instead when
/// AEGIS_TEST_REQUIRE_SERVICES is set (as `.ci/run` does).
#[macro_export]
macro_rules! both_backends {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::harness::Db::Sqlite).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if std::env::var("AEGIS_TEST_DATABASE_URL").is_err() {
                    assert!(
                        std::env::var("AEGIS_TEST_REQUIRE_SERVICES").is_err(),
                        "AEGIS_TEST_REQUIRE_SERVICES is set but AEGIS_TEST_DATABASE_URL is not"
                    );
                    eprintln!(
                        "SKIPPED: {}::postgres (AEGIS_TEST_DATABASE_URL not set)",
                        module_path!()
                    );
                    return;
                }
                super::$name($crate::harness::Db::Postgres).await;
            }
        }
    };
}

/// Evaluates `$body` with `$pool` bound to a fresh pool of `$db`'s owner, on whichever
/// backend it is, then closes the pool. A macro because the two pool types differ.
macro_rules! as_owner {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db.kind {
            Db::Sqlite => {
                let $pool = sqlx::SqlitePool::connect(&$db.owner_url).await.expect("db");
                let value = $body;
                $pool.close().await;
                value
            }
            Db::Postgres => {
                let $pool = sqlx::PgPool::connect(&$db.owner_url).await.expect("db");
                let value = $body;
                $pool.close().await;
                value
            }
        }
    };
}

/// A fresh database for one test.
pub struct TestDb {
    pub kind: Db,
    /// URL the server uses (the application role on PostgreSQL).
    pub app_url: String,
    /// URL of the owner (migrations, inspection).
    pub owner_url: String,
    pg_name: Option<String>,
    dir: tempfile::TempDir,
}

fn admin_pg_url() -> String {
    std::env::var("AEGIS_TEST_DATABASE_URL").expect("AEGIS_TEST_DATABASE_URL")
}

fn with_db(url: &str, db: &str, user: Option<&str>) -> String {
    let mut u = url::Url::parse(url).expect("postgres url");
    u.set_path(&format!("/{db}"));
    if let Some(user) = user {
        u.set_username(user).expect("username");
        u.set_password(None).expect("password");
    }
    u.to_string()
}

impl TestDb {
    pub async fn new(kind: Db) -> TestDb {
        let dir = tempfile::tempdir().expect("tempdir");
        match kind {
            Db::Sqlite => {
                let url = format!("sqlite://{}", dir.path().join("aegis.db").display());
                TestDb {
                    kind,
                    app_url: url.clone(),
                    owner_url: url,
                    pg_name: None,
                    dir,
                }
            }
            Db::Postgres => {
                let admin = admin_pg_url();
                let name = format!("aegis_t_{}", uuid::Uuid::new_v4().simple());
                let pool = sqlx::PgPool::connect(&admin).await.expect("connect admin");
                sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&pool)
                    .await
                    .expect("create database");
                // The application role: LOGIN, not superuser, no BYPASSRLS. Cluster-wide,
                // so concurrent tests may race to create it.
                let _ = sqlx::raw_sql(
                    "DO $$ BEGIN
                       IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'aegis_app') THEN
                         CREATE ROLE aegis_app LOGIN NOSUPERUSER NOBYPASSRLS;
                       END IF;
                     END $$;",
                )
                .execute(&pool)
                .await;
                pool.close().await;
                TestDb {
                    kind,
                    app_url: with_db(&admin, &name, Some("aegis_app")),
                    owner_url: with_db(&admin, &name, None),
                    pg_name: Some(name),
                    dir,
                }
            }
        }
    }

    /// Runs a scalar query as the owner (sees every tenant's rows).
    pub async fn scalar_i64(&self, sql: &str) -> i64 {
        as_owner!(self, pool => sqlx::query_scalar(AssertSqlSafe(sql.to_string()))
            .fetch_one(&pool)
            .await
            .expect(sql))
    }

    /// Runs a query returning one text column as the owner.
    pub async fn strings(&self, sql: &str) -> Vec<String> {
        as_owner!(self, pool => sqlx::query_scalar(AssertSqlSafe(sql.to_string()))
            .fetch_all(&pool)
            .await
            .expect(sql))
    }

    /// Runs a query returning one bytes column as the owner.
    pub async fn blobs(&self, sql: &str) -> Vec<Vec<u8>> {
        as_owner!(self, pool => sqlx::query_scalar(AssertSqlSafe(sql.to_string()))
            .fetch_all(&pool)
            .await
            .expect(sql))
    }

    /// Runs a statement as the owner (test set-up and tampering).
    pub async fn execute(&self, sql: &str) {
        as_owner!(self, pool => {
            sqlx::raw_sql(AssertSqlSafe(sql.to_string()))
                .execute(&pool)
                .await
                .expect(sql);
        })
    }

    /// Environment for an `aegis` process using this database.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("AEGIS_DATABASE_URL".into(), self.app_url.clone()),
            ("AEGIS_DATABASE_OWNER_URL".into(), self.owner_url.clone()),
        ]
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(name) = self.pg_name.take() {
            let admin = admin_pg_url();
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async {
                    if let Ok(pool) = sqlx::PgPool::connect(&admin).await {
                        let _ = sqlx::query(AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                        )))
                        .execute(&pool)
                        .await;
                        pool.close().await;
                    }
                });
            })
            .join();
        }
    }
}

/// Runs the `aegis` binary to completion with the given args and environment.
pub fn run_cli(
    args: &[&str],
    env: &[(String, String)],
    stdin: Option<&str>,
) -> std::process::Output {
    use std::io::Write;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_aegis"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn aegis");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    } else {
        drop(child.stdin.take());
    }
    child.wait_with_output().expect("aegis output")
}

/// A running server.
pub struct Server {
    pub base: String,
    pub db: std::sync::Arc<TestDb>,
    child: Child,
    http: reqwest::Client,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP answer.
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    /// The session token from `Set-Cookie`.
    pub fn session_cookie(&self) -> Option<String> {
        let c = self.header("set-cookie")?;
        let (pair, _) = c.split_once(';')?;
        let (_, v) = pair.split_once('=')?;
        (!v.is_empty()).then(|| v.to_string())
    }
}

/// Base environment of a test server: strong secret, quiet logs.
fn base_env(db: &TestDb) -> Vec<(String, String)> {
    let mut env = db.env();
    env.push(("AEGIS_LISTEN".into(), "127.0.0.1:0".into()));
    env.push(("AEGIS_SECRET_KEY".into(), SECRET.into()));
    env.push(("AEGIS_LOG_LEVEL".into(), "warn".into()));
    env.push(("AEGIS_PASSWORD_HASH_CONCURRENCY".into(), "2".into()));
    // Tests log in many times from one IP; rate-limit tests switch limits back on.
    env.push(("AEGIS_RATE_LIMIT_ENABLED".into(), "false".into()));
    // Development mail (registration, resets) goes to the test's own folder.
    env.push((
        "AEGIS_MAIL_DIR".into(),
        db.dir.path().join("mail").display().to_string(),
    ));
    env
}

impl Server {
    /// Starts a server on a fresh database with extra `AEGIS_*` settings.
    pub async fn start(kind: Db, extra: &[(&str, &str)]) -> Server {
        let db = TestDb::new(kind).await;
        Server::start_on(db, extra)
    }

    /// Starts a server on an existing database.
    pub fn start_on(db: TestDb, extra: &[(&str, &str)]) -> Server {
        Server::start_shared(std::sync::Arc::new(db), extra)
    }

    /// Starts another server on the same database as `self` (several instances).
    pub fn another(&self, extra: &[(&str, &str)]) -> Server {
        Server::start_shared(self.db.clone(), extra)
    }

    pub fn start_shared(db: std::sync::Arc<TestDb>, extra: &[(&str, &str)]) -> Server {
        let mut env = base_env(&db);
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let mut child = Command::new(env!("CARGO_BIN_EXE_aegis"))
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(env)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn aegis serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read listen line");
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("server did not start: {line:?}"))
            .to_string();
        Server {
            base: format!("http://{addr}"),
            db,
            child,
            http: http_client()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
        }
    }

    /// Runs the CLI against this server's database.
    pub fn cli(&self, args: &[&str], stdin: Option<&str>) -> std::process::Output {
        let mut env = base_env(&self.db);
        env.retain(|(k, _)| k != "AEGIS_LISTEN");
        run_cli(args, &env, stdin)
    }

    /// Sends a request. `headers` are extra header pairs.
    pub async fn req(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut rb = self.http.request(
            method.parse().expect("method"),
            format!("{}{}", self.base, path),
        );
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        if let Some(b) = body {
            rb = rb.json(b);
        }
        let r = rb.send().await.expect("request");
        Resp {
            status: r.status().as_u16(),
            headers: r.headers().clone(),
            text: r.text().await.expect("body"),
        }
    }

    /// Sends a raw body with a content type.
    pub async fn raw(&self, method: &str, path: &str, content_type: &str, body: Vec<u8>) -> Resp {
        let r = self
            .http
            .request(
                method.parse().expect("method"),
                format!("{}{}", self.base, path),
            )
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("request");
        Resp {
            status: r.status().as_u16(),
            headers: r.headers().clone(),
            text: r.text().await.expect("body"),
        }
    }

    /// The status of `GET /api/v1/session` with this session token as cookie.
    pub async fn session_status(&self, token: &str) -> u16 {
        self.req(
            "GET",
            "/api/v1/session",
            None,
            &[("cookie", &cookie(token))],
        )
        .await
        .status
    }

    /// Registers `email` with [`PASSWORD`] under an optional `/t/{slug}` prefix.
    pub async fn register(&self, prefix: &str, email: &str) -> Resp {
        let r = self
            .req(
                "POST",
                &format!("{prefix}/api/v1/register"),
                Some(&serde_json::json!({"email": email, "password": PASSWORD})),
                &[],
            )
            .await;
        assert_eq!(r.status, 201, "register: {}", r.text);
        r
    }

    /// Logs in and returns the session cookie token and the login body.
    pub async fn login(&self, prefix: &str, email: &str, password: &str) -> Resp {
        self.req(
            "POST",
            &format!("{prefix}/api/v1/login"),
            Some(&serde_json::json!({"email": email, "password": password})),
            &[],
        )
        .await
    }

    /// Creates an admin of the default tenant through the CLI (the way operators make
    /// the first one), with [`PASSWORD`].
    pub fn create_admin(&self, email: &str) {
        let out = self.cli(
            &["user", "create", "--email", email, "--role", "admin"],
            Some(&format!("{PASSWORD}\n")),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Registers and logs in; returns (token, csrf).
    pub async fn signed_in(&self, email: &str) -> (String, String) {
        self.register("", email).await;
        let r = self.login("", email, PASSWORD).await;
        assert_eq!(r.status, 200, "login: {}", r.text);
        let token = r.session_cookie().expect("cookie");
        let csrf = r.json()["csrf_token"].as_str().expect("csrf").to_string();
        (token, csrf)
    }
}

/// The Redis used by tests, or `None` (reported as skipped, by `test`'s name) when not
/// configured; a failure instead when AEGIS_TEST_REQUIRE_SERVICES is set.
pub fn redis_url(test: &str) -> Option<String> {
    match std::env::var("AEGIS_TEST_REDIS_URL") {
        Ok(url) => Some(url),
        Err(_) => {
            assert!(
                std::env::var("AEGIS_TEST_REQUIRE_SERVICES").is_err(),
                "AEGIS_TEST_REQUIRE_SERVICES is set but AEGIS_TEST_REDIS_URL is not"
            );
            eprintln!("SKIPPED: {test} (AEGIS_TEST_REDIS_URL not set)");
            None
        }
    }
}

/// The `Cookie` header value for a session token.
pub fn cookie(token: &str) -> String {
    format!("__Host-aegis_session={token}")
}
