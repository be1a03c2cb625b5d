//! The physical limit of logins: raw Argon2id computations per second with Aegis's
//! parameters (m=19456 KiB, t=2, p=1), one thread per core, measured for a fixed time.
//!
//! `argon2_rate [SECONDS]` prints `argon2id_per_sec <rate> threads <n>`.
//! `argon2_rate phc` prints a PHC hash of the benchmark password, for importing many
//! benchmark accounts without hashing once per account.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aegis_core::password::{ARGON2_M_COST, ARGON2_P_COST, ARGON2_T_COST};
use argon2::{Algorithm, Argon2, Params, PasswordHasher, Version};

/// The password of every benchmark account (bench/lib.sh uses the same).
const PASSWORD: &[u8] = b"correct horse battery staple 42";

fn argon2() -> Argon2<'static> {
    let params = Params::new(ARGON2_M_COST, ARGON2_T_COST, ARGON2_P_COST, Some(32))
        .expect("Aegis's Argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

fn main() {
    let arg = std::env::args().nth(1);
    if arg.as_deref() == Some("phc") {
        let hash = argon2()
            .hash_password(PASSWORD)
            .expect("hashing the benchmark password");
        println!("{hash}");
        return;
    }
    let secs: f64 = arg.and_then(|s| s.parse().ok()).unwrap_or(10.0);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|i| {
            let (done, stop) = (done.clone(), stop.clone());
            std::thread::spawn(move || {
                let a = argon2();
                let salt = [i as u8; 16];
                let mut out = [0u8; 32];
                while !stop.load(Ordering::Relaxed) {
                    a.hash_password_into(PASSWORD, &salt, &mut out)
                        .expect("argon2");
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.join();
    }
    // Work finished after the stop signal counts, over the time it took.
    let rate = done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64();
    println!("argon2id_per_sec {rate:.2} threads {threads}");
}
