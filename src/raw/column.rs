//! The engine's large columns, moved after a bulk load into memory mappings of their own that
//! the kernel may back with 2 MiB pages: the crate's second use of `unsafe`.
//!
//! A query at 1,000,000 devices is a few dependent cache misses into a few hundred megabytes of
//! rows, device records and directory slots, and on a virtual machine each miss that also
//! misses the TLB walks two levels of page tables (the guest's and the host's) before the line
//! is even asked for. With 4 KiB pages the TLB covers 12 MB of a 260 MB engine; with 2 MiB pages
//! it covers all of it. A library cannot ask the global allocator for huge pages: glibc grows a
//! large `Vec` with `mremap`, which keeps the 4 KiB pages it was first touched with, and hands
//! out smaller buffers from heap memory that is already touched (advice given to an
//! allocator's buffers reached 36 MB of the engine's columns).
//!
//! So a column grows with the global allocator, as a `Vec` does (a load into an engine reuses
//! memory an earlier one freed without faulting it in again; fresh mappings for every load
//! made criterion's bulk load 10 % slower), and [`Column::shrink_to_fit`], which
//! [`Engine::shrink_to_fit`](crate::Engine::shrink_to_fit) runs after a bulk load, moves a
//! column of [`MAP_MIN`] bytes or more into an anonymous mapping aligned to 2 MiB and advised
//! `MADV_HUGEPAGE` before any of it is touched. A mapped column that grows again moves to a
//! new mapping; shrinking it returns the tail's pages in place. Off Linux every column stays
//! with the global allocator.
//!
//! [`Column`] is the part of `Vec`'s interface the store uses: `push`, `reserve`,
//! `reserve_exact`, `shrink_to_fit`, and the slice it dereferences to. A mapping's capacity
//! counts its whole 4 KiB pages, so that nothing mapped is left unusable.

use std::alloc::{self, Layout};
use std::marker::PhantomData;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A column of this many bytes or more moves into a mapping of its own when shrunk: the
/// smallest size that holds a whole 2 MiB page.
const MAP_MIN: usize = HUGE_PAGE;

/// The size (and alignment) of a huge page on x86-64 and most 64-bit Arm kernels.
const HUGE_PAGE: usize = 2 << 20;

/// The base page size, the granularity of a mapping's length.
const PAGE: usize = 4096;

/// Bytes held in the columns' mappings, over every engine in the process.
static MAPPED: AtomicUsize = AtomicUsize::new(0);

/// Bytes ota-index holds in memory mappings of its own (its largest columns, over every engine
/// in the process), outside the global allocator.
///
/// A measurement of the heap through a counting global allocator misses these; add them to
/// it. [`Engine::memory_usage`](crate::Engine::memory_usage) counts them with the rest.
///
/// ```
/// use ota_index::Engine;
///
/// let before = ota_index::mapped_bytes();
/// let engine = Engine::new(); // an empty engine maps nothing
/// assert_eq!(ota_index::mapped_bytes(), before);
/// # drop(engine);
/// ```
pub fn mapped_bytes() -> usize {
    MAPPED.load(Ordering::Relaxed)
}

/// A growable array, like `Vec<T>`, whose buffer becomes a huge-page mapping when a large one
/// is shrunk (see the module documentation).
pub(crate) struct Column<T> {
    ptr: NonNull<T>,
    len: usize,
    cap: usize,
    /// Length of the mapping holding the buffer; 0 when the global allocator holds it (or
    /// nothing does).
    mapped: usize,
    _owns: PhantomData<T>,
}

// SAFETY: a `Column<T>` owns its elements as a `Vec<T>` does; the raw pointer is only ever
// dereferenced through `&self`/`&mut self`.
#[allow(unsafe_code)]
unsafe impl<T: Send> Send for Column<T> {}
// SAFETY: as for `Send`: shared access only hands out `&[T]`.
#[allow(unsafe_code)]
unsafe impl<T: Sync> Sync for Column<T> {}

/// A buffer for `cap` elements.
struct Buffer<T> {
    ptr: NonNull<T>,
    cap: usize,
    mapped: usize,
}

impl<T> Column<T> {
    const ELEM: usize = {
        assert!(size_of::<T>() > 0, "a column of zero-sized elements");
        size_of::<T>()
    };

    /// An empty column; allocates nothing.
    pub(crate) const fn new() -> Column<T> {
        Column {
            ptr: NonNull::dangling(),
            len: 0,
            cap: 0,
            mapped: 0,
            _owns: PhantomData,
        }
    }

    /// Elements held.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Elements the buffer has room for.
    pub(crate) fn capacity(&self) -> usize {
        self.cap
    }

    /// True when the buffer is a mapping of its own.
    #[cfg(test)]
    pub(crate) fn is_mapped(&self) -> bool {
        self.mapped > 0
    }

    /// Appends `value`, growing the buffer (at least doubling it) when it is full.
    pub(crate) fn push(&mut self, value: T) {
        if self.len == self.cap {
            self.reserve(1);
        }
        // SAFETY: `len < cap` now, so the slot lies inside the buffer and holds no element.
        #[allow(unsafe_code)]
        unsafe {
            self.ptr.as_ptr().add(self.len).write(value);
        }
        self.len += 1;
    }

    /// Makes room for at least `additional` more elements, growing geometrically.
    pub(crate) fn reserve(&mut self, additional: usize) {
        let needed = self.len.checked_add(additional).expect("capacity overflow");
        if needed > self.cap {
            self.reallocate(needed.max(self.cap.saturating_mul(2)).max(4));
        }
    }

    /// Makes room for at least `additional` more elements, and no more than the page rounding
    /// of a mapping adds.
    pub(crate) fn reserve_exact(&mut self, additional: usize) {
        let needed = self.len.checked_add(additional).expect("capacity overflow");
        if needed > self.cap {
            self.reallocate(needed);
        }
    }

    /// Gives back the capacity beyond the elements held (a mapping keeps its last page), and
    /// moves a column of [`MAP_MIN`] bytes or more into a mapping of its own.
    pub(crate) fn shrink_to_fit(&mut self) {
        if self.mapped == 0 {
            // Only where a mapping can be made: elsewhere a full column would be copied for
            // nothing.
            let settle = cfg!(target_os = "linux")
                && self.len * Self::ELEM >= MAP_MIN
                && align_of::<T>() <= PAGE;
            if settle || self.cap > self.len {
                self.reallocate_into(self.len, settle);
            }
            return;
        }
        if self.cap == self.len {
            return;
        }
        let keep = (self.len * Self::ELEM).next_multiple_of(PAGE);
        if keep == 0 {
            self.reallocate_into(0, false);
            return;
        }
        if keep < self.mapped {
            // The tail pages hold no element.
            unmap(self.ptr.cast::<u8>(), keep, self.mapped - keep);
            self.mapped = keep;
            self.cap = keep / Self::ELEM;
        }
    }

    /// Moves the elements into a new buffer for `cap` of them (`cap >= len`), freeing the old:
    /// a mapped column grows into a new mapping, any other with the global allocator.
    fn reallocate(&mut self, cap: usize) {
        self.reallocate_into(cap, self.mapped > 0);
    }

    /// [`Column::reallocate`] into a mapping when `map` (and `cap` elements take at least
    /// [`MAP_MIN`] bytes), else with the global allocator.
    fn reallocate_into(&mut self, cap: usize, map: bool) {
        debug_assert!(cap >= self.len);
        let new = Buffer::<T>::allocate(cap, map);
        // SAFETY: both buffers hold at least `len` elements and are distinct allocations; the
        // old buffer's elements are moved out bit for bit and freed below without being
        // dropped.
        #[allow(unsafe_code)]
        unsafe {
            ptr::copy_nonoverlapping(self.ptr.as_ptr(), new.ptr.as_ptr(), self.len);
        }
        let old = Buffer {
            ptr: self.ptr,
            cap: self.cap,
            mapped: self.mapped,
        };
        (self.ptr, self.cap, self.mapped) = (new.ptr, new.cap, new.mapped);
        old.free();
    }
}

impl<T: Copy> Column<T> {
    /// Appends a copy of every element of `items`.
    pub(crate) fn extend_from_slice(&mut self, items: &[T]) {
        self.reserve(items.len());
        // SAFETY: `reserve` made room for `items.len()` more elements after the `len` held;
        // `items` cannot overlap the spare capacity, which nothing borrows.
        #[allow(unsafe_code)]
        unsafe {
            ptr::copy_nonoverlapping(items.as_ptr(), self.ptr.as_ptr().add(self.len), items.len());
        }
        self.len += items.len();
    }
}

/// A growable UTF-8 buffer, like `String`, held in a [`Column`]: the device strings' slab
/// is read by every query by `iotId` beside the device and its rows.
#[derive(Default)]
pub(crate) struct Text {
    /// Valid UTF-8: only whole `str`s are appended, and [`Text::overwrite`] replaces whole
    /// characters with a `str` of the same length.
    bytes: Column<u8>,
}

impl Text {
    /// The text.
    #[inline(always)]
    #[allow(unsafe_code)]
    pub(crate) fn as_str(&self) -> &str {
        // SAFETY: the bytes are valid UTF-8 (see the field).
        unsafe { std::str::from_utf8_unchecked(&self.bytes) }
    }

    /// The text's bytes.
    #[inline(always)]
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Bytes held.
    pub(crate) fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Bytes the buffer has room for.
    pub(crate) fn capacity(&self) -> usize {
        self.bytes.capacity()
    }

    /// Appends `text`.
    pub(crate) fn push_str(&mut self, text: &str) {
        self.bytes.extend_from_slice(text.as_bytes());
    }

    /// Appends `c`.
    pub(crate) fn push(&mut self, c: char) {
        self.push_str(c.encode_utf8(&mut [0; 4]));
    }

    /// Replaces the `text.len()` bytes at `at` with `text`.
    ///
    /// # Panics
    ///
    /// If that range does not start and end on character boundaries of the text (or passes
    /// its end).
    pub(crate) fn overwrite(&mut self, at: usize, text: &str) {
        let end = at.checked_add(text.len()).expect("range overflow");
        let whole = self.as_str();
        assert!(
            whole.is_char_boundary(at) && whole.is_char_boundary(end),
            "overwrite of {at}..{end} is not on character boundaries of {} bytes",
            whole.len()
        );
        self.bytes[at..end].copy_from_slice(text.as_bytes());
    }

    /// See [`Column::reserve_exact`].
    pub(crate) fn reserve_exact(&mut self, additional: usize) {
        self.bytes.reserve_exact(additional);
    }

    /// See [`Column::shrink_to_fit`].
    pub(crate) fn shrink_to_fit(&mut self) {
        self.bytes.shrink_to_fit();
    }
}

impl<T: Clone> Column<T> {
    /// A column of `n` copies of `value`, with room for exactly that many, held by the global
    /// allocator (a later [`Column::shrink_to_fit`] maps a large one).
    pub(crate) fn filled(n: usize, value: T) -> Column<T> {
        let mut column = Column::new();
        column.reserve_exact(n);
        for _ in 0..n {
            column.push(value.clone());
        }
        column
    }
}

impl<T> Buffer<T> {
    /// Room for at least `cap` elements: a mapping when `map` and they take [`MAP_MIN`]
    /// bytes or more, else the global allocator's (nothing for 0).
    fn allocate(cap: usize, map: bool) -> Buffer<T> {
        let elem = Column::<T>::ELEM;
        if cap == 0 {
            return Buffer {
                ptr: NonNull::dangling(),
                cap: 0,
                mapped: 0,
            };
        }
        let layout = Layout::array::<T>(cap).expect("capacity overflow");
        if map && layout.size() >= MAP_MIN && layout.align() <= PAGE {
            if let Some((ptr, mapped)) = map_huge(layout.size()) {
                return Buffer {
                    ptr: ptr.cast::<T>(),
                    cap: mapped / elem,
                    mapped,
                };
            }
        }
        // SAFETY: the layout's size is not zero (`cap > 0`, elements are not zero-sized).
        #[allow(unsafe_code)]
        let raw = unsafe { alloc::alloc(layout) };
        let Some(ptr) = NonNull::new(raw.cast::<T>()) else {
            alloc::handle_alloc_error(layout)
        };
        Buffer {
            ptr,
            cap,
            mapped: 0,
        }
    }

    /// Frees the buffer without dropping anything in it.
    fn free(self) {
        if self.mapped > 0 {
            unmap(self.ptr.cast::<u8>(), 0, self.mapped);
        } else if self.cap > 0 {
            let layout = Layout::array::<T>(self.cap).expect("allocated with this layout");
            // SAFETY: the buffer came from `alloc::alloc` with this very layout.
            #[allow(unsafe_code)]
            unsafe {
                alloc::dealloc(self.ptr.as_ptr().cast::<u8>(), layout);
            }
        }
    }
}

impl<T> Drop for Column<T> {
    fn drop(&mut self) {
        // SAFETY: the first `len` slots hold initialized elements that nothing else owns.
        #[allow(unsafe_code)]
        unsafe {
            ptr::drop_in_place(ptr::slice_from_raw_parts_mut(self.ptr.as_ptr(), self.len));
        }
        Buffer {
            ptr: self.ptr,
            cap: self.cap,
            mapped: self.mapped,
        }
        .free();
    }
}

impl<T> std::ops::Deref for Column<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        // SAFETY: the first `len` slots hold initialized elements; the pointer is aligned and
        // not null (dangling only when `len` is 0).
        #[allow(unsafe_code)]
        unsafe {
            std::slice::from_raw_parts(self.ptr.as_ptr(), self.len)
        }
    }
}

impl<T> std::ops::DerefMut for Column<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as for `deref`, and `&mut self` makes the access unique.
        #[allow(unsafe_code)]
        unsafe {
            std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len)
        }
    }
}

impl<T> Default for Column<T> {
    fn default() -> Self {
        Column::new()
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for Column<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// A private anonymous mapping of at least `bytes` (rounded up to whole pages), starting on a
/// 2 MiB boundary and advised `MADV_HUGEPAGE`; `None` if the kernel refuses it.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn map_huge(bytes: usize) -> Option<(NonNull<u8>, usize)> {
    let len = bytes.checked_next_multiple_of(PAGE)?;
    let over = len.checked_add(HUGE_PAGE)?;
    // SAFETY: a new anonymous mapping at an address of the kernel's choosing overlaps nothing
    // the program holds.
    let raw = unsafe {
        libc::mmap(
            ptr::null_mut(),
            over,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if raw == libc::MAP_FAILED {
        return None;
    }
    let start = raw as usize;
    let head = start.next_multiple_of(HUGE_PAGE) - start;
    let tail = over - head - len;
    // SAFETY: `head < HUGE_PAGE` keeps `aligned` inside the mapping just made; the head and
    // the tail lie inside it, outside the `len` bytes kept, and nothing refers to them.
    // `madvise` is a hint over those `len` bytes, which nothing has touched yet; its failure
    // (a kernel without transparent huge pages) leaves ordinary pages.
    let aligned = unsafe {
        let aligned = raw.cast::<u8>().add(head);
        if head > 0 {
            libc::munmap(raw, head);
        }
        if tail > 0 {
            libc::munmap(aligned.add(len).cast(), tail);
        }
        libc::madvise(aligned.cast(), len, libc::MADV_HUGEPAGE);
        aligned
    };
    MAPPED.fetch_add(len, Ordering::Relaxed);
    NonNull::new(aligned).map(|p| (p, len))
}

#[cfg(not(target_os = "linux"))]
fn map_huge(_bytes: usize) -> Option<(NonNull<u8>, usize)> {
    None
}

/// Unmaps `len` bytes at `offset` into the mapping at `base` (made by [`map_huge`]).
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn unmap(base: NonNull<u8>, offset: usize, len: usize) {
    // SAFETY: the range lies inside a mapping made by `map_huge` whose owner gives it up: no
    // element is held there any more.
    let unmapped = unsafe { libc::munmap(base.as_ptr().add(offset).cast(), len) } == 0;
    // `munmap` can fail (splitting a region at `vm.max_map_count` mappings); the pages then
    // stay mapped and counted, unused. Never a panic: this runs in `Drop`.
    if unmapped {
        MAPPED.fetch_sub(len, Ordering::Relaxed);
    }
}

#[cfg(not(target_os = "linux"))]
fn unmap(_base: NonNull<u8>, _offset: usize, _len: usize) {
    unreachable!("nothing is mapped off Linux")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    #[test]
    fn a_column_holds_what_a_vec_holds_through_growth_and_shrinking() {
        let mut column = Column::new();
        let mut vec = Vec::new();
        // 24-byte elements: 2 MiB is passed at about 87,000 of them.
        for i in 0..300_000u64 {
            column.push((i, i * 3, !i));
            vec.push((i, i * 3, !i));
            if i % 50_000 == 0 {
                column.reserve_exact(10_000);
                assert!(column.capacity() >= column.len() + 10_000);
            }
        }
        assert_eq!(&column[..], &vec[..]);
        assert!(!column.is_mapped(), "growth stays with the allocator");
        column[7].1 = 99;
        vec[7].1 = 99;
        column.shrink_to_fit();
        assert!(column.is_mapped(), "7.2 MB settle into a mapping");
        assert!(column.capacity() >= column.len());
        assert!(column.capacity() * 24 < column.len() * 24 + PAGE);
        assert_eq!(&column[..], &vec[..]);
        for i in 0..100_000u64 {
            column.push((1, 2, i)); // grows into a new mapping
            vec.push((1, 2, i));
        }
        assert!(column.is_mapped());
        assert_eq!(&column[..], &vec[..]);
        let before = column.mapped;
        column.shrink_to_fit(); // the tail's pages, in place
        assert!(column.mapped < before);
        assert_eq!(&column[..], &vec[..]);
    }

    #[test]
    fn mapped_bytes_count_a_columns_mapping_until_it_is_dropped() {
        // Other tests map columns concurrently, so compare with what this one maps: at least
        // 3 MiB while it lives (the counter only ever holds mappings alive at the time).
        let mut column = Column::filled(3 << 20, 1u8);
        column.shrink_to_fit();
        assert!(column.mapped >= 3 << 20);
        assert!(mapped_bytes() >= column.mapped);
        assert!(column.iter().all(|&b| b == 1));
        drop(column);
        let small = Column::filled(1000, 0u32);
        assert_eq!(small.mapped, 0, "a small column stays with the allocator");
        assert_eq!(small.len(), 1000);
    }

    #[test]
    fn dropping_a_column_drops_each_element_once() {
        let counter = Rc::new(());
        let mut column = Column::new();
        for _ in 0..300_000 {
            column.push(Rc::clone(&counter)); // 2.4 MB of pointers
        }
        column.shrink_to_fit();
        assert!(column.mapped > 0);
        assert_eq!(Rc::strong_count(&counter), 300_001);
        drop(column);
        assert_eq!(Rc::strong_count(&counter), 1);
    }

    #[test]
    fn text_stays_utf8_and_overwrites_whole_characters_only() {
        let mut text = Text::default();
        text.push('é');
        text.push_str("abc");
        text.push('\u{1F600}');
        assert_eq!(text.as_str(), "éabc\u{1F600}");
        text.overwrite(0, "xy"); // 'é' is two bytes
        text.overwrite(2, "z");
        assert_eq!(text.as_str(), "xyzbc\u{1F600}");
        for (at, with) in [(6, "a"), (5, "ab"), (8, "q"), (10, ""), (9, "x")] {
            let bad =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| text.overwrite(at, with)));
            assert!(
                bad.is_err(),
                "{at} {with:?} splits a character or passes the end"
            );
        }
        assert_eq!(text.as_str(), "xyzbc\u{1F600}");
        for _ in 0..250_000 {
            text.push_str("0123456789");
        }
        text.shrink_to_fit();
        assert!(text.bytes.mapped > 0, "2.5 MB of text is mapped");
        assert_eq!(text.len(), 9 + 2_500_000);
        assert!(text.capacity() >= text.len());
        assert!(text.as_str().ends_with("89"));
    }

    #[test]
    fn empty_and_emptied_columns_hold_nothing() {
        let mut column: Column<u64> = Column::new();
        assert!(column.is_empty());
        column.shrink_to_fit();
        column.reserve(5);
        assert!(column.capacity() >= 5);
        column.shrink_to_fit();
        assert_eq!(column.capacity(), 0);
        let mut big: Column<u64> = Column::new();
        big.reserve_exact(1 << 20); // 8 MiB, empty: not mapped
        big.push(1);
        big.shrink_to_fit();
        assert_eq!(big.capacity(), 1);
        big.reserve_exact(1 << 20);
        big.extend_from_slice(&vec![7; 1 << 20]);
        big.shrink_to_fit();
        assert!(big.mapped > 0);
        assert_eq!(big.len(), (1 << 20) + 1);
        assert_eq!(big[1 << 19], 7);
        let mut big: Column<u64> = Column::new();
        big.reserve(10);
        big.shrink_to_fit();
        assert_eq!((big.capacity(), big.mapped), (0, 0));
        assert_eq!(format!("{big:?}"), "[]");
    }
}
