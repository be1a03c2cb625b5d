//! Time from exec to ready, and resident memory once ready and idle.
//!
//! `startup READY_PATH -- COMMAND [ARGS...]` starts COMMAND (environment inherited),
//! waits for its `listening on ADDR` line, polls `GET READY_PATH` every millisecond
//! until it answers 200, waits one idle second, and prints
//! `ready_ms <ms> rss_kib <kib>`; then stops the command.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn ready(addr: &str, path: &str) -> bool {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (path, cmd) = match args.as_slice() {
        [path, dashes, cmd @ ..] if dashes == "--" && !cmd.is_empty() => (path, cmd),
        _ => return Err("usage: startup READY_PATH -- COMMAND [ARGS...]".into()),
    };
    let start = Instant::now();
    let mut child = Command::new(&cmd[0])
        .args(&cmd[1..])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().ok_or("no stdout")?).read_line(&mut line)?;
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .ok_or_else(|| format!("unexpected first line: {line:?}"))?
        .to_string();
    while !ready(&addr, path) {
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            return Err("not ready after 60 s".into());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let ready_ms = start.elapsed().as_secs_f64() * 1000.0;
    std::thread::sleep(Duration::from_secs(1));
    let rss = rss_kib(child.id());
    println!("ready_ms {ready_ms:.1} rss_kib {rss}");
    let _ = child.kill();
    let _ = child.wait();
    Ok(())
}
