//! Memory of the in-process limiter under a flood of distinct keys: the heap grows while
//! the keys are live and returns close to its baseline once they are idle and pruned.
//! Measured exactly with a counting global allocator (its own test binary, so no other
//! test shares the allocator).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use aegis_core::ratelimit::{Check, LocalLimiter, Quota};

struct Counting;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live() -> isize {
    LIVE_BYTES.load(Ordering::Relaxed)
}

#[test]
fn a_million_idle_keys_are_pruned_back_to_baseline() {
    const KEYS: usize = 1_000_000;
    const SEC: i64 = 1_000_000;
    let limiter = LocalLimiter::default();
    let quota = Quota::per(120, 60);
    let baseline = live();
    let mut key = String::new();
    for i in 0..KEYS {
        key.clear();
        use std::fmt::Write;
        let _ = write!(key, "default:198.51.{}.{}", i / 256, i % 256);
        let check = Check {
            key: key.clone(),
            quota,
        };
        assert!(limiter.check_at(std::slice::from_ref(&check), 0)[0].allowed);
    }
    let full = live() - baseline;
    assert_eq!(limiter.len(), KEYS);
    // Each key's TAT lies 0.5 s ahead; a minute later all are idle.
    let removed = limiter.prune_at(60 * SEC);
    let after = live() - baseline;
    println!(
        "limiter heap: {full} bytes with {KEYS} keys ({} B/key), {after} bytes after pruning",
        full / KEYS as isize
    );
    assert_eq!(removed, KEYS);
    assert!(limiter.is_empty());
    assert!(
        full > 20 * KEYS as isize,
        "sanity: the keys were held ({full} B)"
    );
    // Generous bound: empty shards keep a little capacity.
    assert!(after < 256 * 1024, "{after} bytes left after pruning");
}
