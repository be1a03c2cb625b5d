//! The global allocator: mimalloc, asked for a plain block whenever the alignment that
//! every mimalloc block has (8 bytes) is enough.
//!
//! The `mimalloc` crate passes every request to `mi_malloc_aligned`, whose fast path
//! covers blocks up to 1 KiB only; a larger block whose size class is not a power of
//! two then went down the over-allocating path meant for large alignments (seven times
//! per session check, a tenth of the allocator's work). `mi_malloc` has no such detour.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys as mi;

/// Alignment of every block `mi_malloc`, `mi_zalloc` and `mi_realloc` return: size
/// classes are multiples of the word size.
const BLOCK_ALIGN: usize = std::mem::size_of::<usize>();

/// mimalloc as Rust's global allocator (`#[global_allocator]` in `main.rs`).
pub struct Mimalloc;

// SAFETY: every method forwards to the mimalloc function with the same contract as the
// `GlobalAlloc` method: a block of at least `size` bytes or null. Blocks from the plain
// functions are aligned to `BLOCK_ALIGN`, so they serve layouts aligned to at most
// that; larger alignments go to the `_aligned` functions. `mi_free` frees blocks of
// either kind, and `mi_realloc`/`mi_realloc_aligned` keep the alignment they are given.
unsafe impl GlobalAlloc for Mimalloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: see the impl.
        unsafe {
            if layout.align() <= BLOCK_ALIGN {
                mi::mi_malloc(layout.size()).cast()
            } else {
                mi::mi_malloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: see the impl.
        unsafe {
            if layout.align() <= BLOCK_ALIGN {
                mi::mi_zalloc(layout.size()).cast()
            } else {
                mi::mi_zalloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from this allocator (the caller's contract).
        unsafe { mi::mi_free(ptr.cast::<c_void>()) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from this allocator with `layout` (the caller's contract).
        unsafe {
            if layout.align() <= BLOCK_ALIGN {
                mi::mi_realloc(ptr.cast(), new_size).cast()
            } else {
                mi::mi_realloc_aligned(ptr.cast(), new_size, layout.align()).cast()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Blocks have the alignment asked for, keep their contents when resized, and
    /// zeroed ones are zero; across sizes on both sides of mimalloc's small/large
    /// boundary and alignments up to a page.
    #[test]
    fn blocks_are_aligned_zeroed_and_resized() {
        let a = Mimalloc;
        for align in [1, 2, 4, 8, 16, 32, 64, 4096] {
            for size in [1, 7, 8, 24, 40, 116, 1000, 1280, 1832, 5000, 70_000] {
                let layout = Layout::from_size_align(size, align).unwrap();
                // SAFETY: non-zero sizes; each block is freed once with its layout.
                unsafe {
                    let p = a.alloc(layout);
                    assert!(!p.is_null());
                    assert_eq!(p as usize % align, 0, "size {size} align {align}");
                    p.write_bytes(0xA5, size);
                    let q = a.realloc(p, layout, size * 2 + 3);
                    assert_eq!(q as usize % align, 0);
                    assert!((0..size).all(|i| *q.add(i) == 0xA5));
                    a.dealloc(q, Layout::from_size_align(size * 2 + 3, align).unwrap());
                    let z = a.alloc_zeroed(layout);
                    assert_eq!(z as usize % align, 0);
                    assert!((0..size).all(|i| *z.add(i) == 0));
                    a.dealloc(z, layout);
                }
            }
        }
    }
}
