//! The baseline of the session-check benchmark: the least an HTTP server on the same
//! stack (tokio, hyper through axum, same release profile) can do per request. It
//! answers every GET with a constant JSON body of the size of `GET /api/v1/session`'s,
//! so the ratio aegis / baseline is the share of the machine's HTTP capacity that a
//! session check leaves.

use std::net::SocketAddr;

use axum::Router;
use axum::http::header;
use axum::routing::get;

/// About as long as a session answer (user, tenant, roles, session).
const BODY: &str = r#"{"user":{"id":"01937c55-8a2b-7cc3-9d4e-1a2b3c4d5e6f","email":"bench@example.com"},"tenant":{"id":"01937c55-8a2b-7cc3-9d4e-1a2b3c4d5e70","slug":"default"},"roles":["member"],"session":{"id":"01937c55-8a2b-7cc3-9d4e-1a2b3c4d5e71","expires_at":1764000000000,"auth_method":"password"}}"#;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let listen = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".into());
    let app = Router::new().fallback(get(|| async {
        ([(header::CONTENT_TYPE, "application/json")], BODY)
    }));
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    let addr: SocketAddr = listener.local_addr()?;
    println!("listening on {addr}");
    axum::serve(listener, app).await
}
