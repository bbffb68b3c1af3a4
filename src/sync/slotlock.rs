//! A reader-writer lock whose readers write only their own thread's cache line.
//!
//! A plain reader-writer lock (`parking_lot::RwLock`, `std::sync::RwLock`) keeps its readers
//! in one word: every reader writes it twice (taking and releasing the lock), so on many
//! cores that word's cache line travels from core to core, a wait of a cross-core transfer
//! for most reads once readers outnumber a few. A [`SlotLock`] gives each thread a slot (a
//! count on a cache line of its own, for each lock): a reader counts itself in its slot and
//! then reads the lock's writer flag, a line that only writers write. Readers of the same lock
//! on different threads (up to 64 reading at once) write nothing in common, as lock-free
//! reads would.
//!
//! A writer sets the flag and then reads every slot that has been in use (slots below a
//! process-wide high-water mark of threads reading at once, at most 64): if any counts a
//! reader, it clears the flag and tries again later; a reader that finds the flag set counts
//! itself out and waits for the flag to clear. Both sides write before they read, with
//! sequentially consistent atomics (Dekker's handshake), so either the writer sees the
//! reader's count or the reader sees the writer's flag, never neither. Past 64 threads
//! reading at once, threads share slots: still correct (a slot counts readers), their lines
//! shared again.
//!
//! Readers are never held up by a writer that waits: the flag stays set only while a writer
//! checks the slots and, once they are all clear, while it writes. So a thread that holds a
//! read may read the lock again (or another), and another thread may read it, while a writer
//! waits, as with `parking_lot::RwLock::read_recursive`. The price: a writer waits until the
//! lock has no reader at all, and must find that moment itself (a `parking_lot` writer,
//! once it waits, is let in as soon as the readers in drain): readers that overlap without a
//! pause on one lock (a hot device) can keep it out. A waiting writer spins briefly, then
//! parks until a reader lets go (woken by the reader whose slot empties; a 1 ms timeout is a
//! second line of defence, not the mechanism). A reader waiting for a write spins briefly,
//! then yields the CPU, then naps 20 µs at a time: writes are short (a run of a batch), but
//! for the engine's rare whole-shard reallocations (`reserve`, `shrink_to_fit`), which its
//! readers nap through.

#![allow(unsafe_code)]

use std::cell::UnsafeCell;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use parking_lot::Mutex;

/// Slots a lock has. Threads reading at once beyond this many share slots (still correct: a slot counts
/// readers; only the cache line is shared again).
pub(crate) const SLOTS: usize = 64;

/// One thread's count of the reads it holds of a lock, on a pair of cache lines of its own
/// (the adjacent-line prefetcher fetches lines in pairs).
#[repr(align(128))]
struct Slot(AtomicU32);

/// Most reads one slot may count. Safe code can hold reads without end (`mem::forget` of
/// guards): a count that wrapped would tell a writer the slot is empty under a live read,
/// so past this the process aborts, as `std`'s and `parking_lot`'s locks stop a reader
/// count overflow.
const MAX_SLOT_READS: u32 = u32::MAX / 2;

/// [`SlotLock::state`]: a writer checks the slots or writes.
const WRITING: u32 = 1;

/// See the [module docs](self). `T` is behind an `UnsafeCell`, reached only through guards.
pub(crate) struct SlotLock<T> {
    /// [`WRITING`], or 0.
    state: AtomicU32,
    /// Writers parked until a reader lets go (or another writer does).
    parked: AtomicU32,
    /// Each thread's count of the reads it holds, by [`thread_slot`].
    readers: Box<[Slot]>,
    data: UnsafeCell<T>,
}

// SAFETY: as for `std::sync::RwLock`: the lock hands out `&T` to several threads at once
// (so `T: Sync`) and `&mut T` to one thread at a time (so `T: Send`), never both at once.
unsafe impl<T: Send> Send for SlotLock<T> {}
// SAFETY: see `Send` above.
unsafe impl<T: Send + Sync> Sync for SlotLock<T> {}

/// Thread slots handed out and free, and one past the highest ever handed out.
struct Registry {
    free: Vec<usize>,
    next: usize,
}

static REGISTRY: Mutex<Registry> = parking_lot::const_mutex(Registry {
    free: Vec::new(),
    next: 0,
});

/// One past the highest slot index any thread has taken (at least 1: slot 0 is also the
/// fallback of a thread whose own slot is gone). Writers read slots below it.
static IN_USE: AtomicUsize = AtomicUsize::new(1);

/// A thread's slot index, given back when the thread exits.
struct ThreadSlot(usize);

impl ThreadSlot {
    fn claim() -> ThreadSlot {
        let mut registry = REGISTRY.lock();
        let index = registry.free.pop().unwrap_or_else(|| {
            registry.next += 1;
            registry.next - 1
        });
        // Before the thread's first count (program order; both sequentially consistent):
        // a writer that could miss the count cannot miss the slot.
        IN_USE.fetch_max(index + 1, SeqCst);
        ThreadSlot(index)
    }
}

impl Drop for ThreadSlot {
    fn drop(&mut self) {
        REGISTRY.lock().free.push(self.0);
    }
}

thread_local! {
    static THREAD_SLOT: ThreadSlot = ThreadSlot::claim();
}

/// This thread's slot in every lock: its own while it has one, slot 0 (shared, and always
/// read by writers) while its thread-local storage is being torn down.
#[inline]
fn thread_slot() -> usize {
    THREAD_SLOT.try_with(|s| s.0).unwrap_or(0) % SLOTS
}

/// How long a parked writer sleeps before it checks again unwoken: a second line of defence
/// against a lost wakeup. Long in tests, so that a wakeup the code owes and does not give
/// shows as a writer that does not come back.
#[cfg(not(test))]
const PARK_TIMEOUT: Duration = Duration::from_millis(1);
#[cfg(test)]
const PARK_TIMEOUT: Duration = Duration::from_secs(120);

/// Spin, then yield, then nap: a wait for another thread's short hold.
struct Backoff(u32);

impl Backoff {
    fn wait(&mut self) {
        if self.0 < 6 {
            for _ in 0..1u32 << self.0 {
                std::hint::spin_loop();
            }
        } else if self.0 < 16 {
            std::thread::yield_now();
        } else {
            std::thread::sleep(Duration::from_micros(20));
        }
        self.0 = self.0.saturating_add(1);
    }
}

impl<T> SlotLock<T> {
    pub(crate) fn new(data: T) -> SlotLock<T> {
        SlotLock {
            state: AtomicU32::new(0),
            parked: AtomicU32::new(0),
            readers: (0..SLOTS).map(|_| Slot(AtomicU32::new(0))).collect(),
            data: UnsafeCell::new(data),
        }
    }

    /// Bytes the lock holds beside `T` (its slots).
    pub(crate) fn slot_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.readers)
    }

    /// A read, waiting while a writer writes; never for a writer that waits, so a thread
    /// may hold several reads of a lock.
    pub(crate) fn read(&self) -> SlotReadGuard<'_, T> {
        let count = &self.readers[thread_slot()].0;
        let mut backoff = Backoff(0);
        loop {
            if let Some(guard) = self.enter(count) {
                return guard;
            }
            // Wait without counting in and out (each count out may wake a parked writer).
            while self.state.load(SeqCst) != 0 {
                backoff.wait();
            }
        }
    }

    /// A read, or `None` if a writer is writing (or checking the slots) now.
    pub(crate) fn try_read(&self) -> Option<SlotReadGuard<'_, T>> {
        self.enter(&self.readers[thread_slot()].0)
    }

    #[inline]
    fn enter<'a>(&'a self, count: &'a AtomicU32) -> Option<SlotReadGuard<'a, T>> {
        if count.fetch_add(1, SeqCst) >= MAX_SLOT_READS {
            // Not a panic: unwinding from here would leave the count too high for good.
            std::process::abort();
        }
        if self.state.load(SeqCst) == 0 {
            return Some(SlotReadGuard { lock: self, count });
        }
        self.leave(count);
        None
    }

    /// Counts a reader out, waking parked writers when its slot empties.
    #[inline]
    fn leave(&self, count: &AtomicU32) {
        if count.fetch_sub(1, SeqCst) == 1 {
            self.wake_writers();
        }
    }

    /// The write, waiting until no thread reads (or writes).
    ///
    /// After a few tries it parks until a reader of this lock lets go (or a writer does), as
    /// a `parking_lot` writer would: a reader it has preempted then runs, lets go and wakes
    /// it, where a writer that yielded its CPU instead would wait out the reader's time
    /// slice (the benches' writer beside two busy readers on two CPUs fell twice as far
    /// behind that way).
    pub(crate) fn write(&self) -> SlotWriteGuard<'_, T> {
        let mut tries = 0u32;
        loop {
            if let Some(guard) = self.try_write() {
                return guard;
            }
            tries = tries.saturating_add(1);
            if tries < 8 {
                for _ in 0..1u32 << tries {
                    std::hint::spin_loop();
                }
                continue;
            }
            // Counted before the check (both sequentially consistent) and readers check the
            // count after letting go: either this writer sees the reader gone, or the reader
            // sees this writer and wakes it (under the queue's lock, so never before it is
            // queued). The timeout is a second line of defence, not the mechanism.
            self.parked.fetch_add(1, SeqCst);
            // SAFETY: the key is this lock's address, which no other parking user shares;
            // `validate` only reads atomics (it neither panics nor calls into parking_lot).
            unsafe {
                parking_lot_core::park(
                    self.park_key(),
                    || self.state.load(SeqCst) != 0 || self.readers_in(),
                    || {},
                    |_, _| {},
                    parking_lot_core::DEFAULT_PARK_TOKEN,
                    Some(std::time::Instant::now() + PARK_TIMEOUT),
                );
            }
            self.parked.fetch_sub(1, SeqCst);
        }
    }

    fn park_key(&self) -> usize {
        self as *const Self as usize
    }

    /// Wakes the writers parked on this lock, if any.
    #[inline]
    fn wake_writers(&self) {
        if self.parked.load(SeqCst) != 0 {
            // SAFETY: this lock's own key (see `write`).
            unsafe {
                parking_lot_core::unpark_all(
                    self.park_key(),
                    parking_lot_core::DEFAULT_UNPARK_TOKEN,
                );
            }
        }
    }

    /// The write, or `None` if a thread reads (or writes) now.
    pub(crate) fn try_write(&self) -> Option<SlotWriteGuard<'_, T>> {
        if self
            .state
            .compare_exchange(0, WRITING, SeqCst, SeqCst)
            .is_err()
        {
            return None;
        }
        if self.readers_in() {
            self.state.store(0, SeqCst);
            // A writer parked behind this attempt's flag checks again.
            self.wake_writers();
            return None;
        }
        Some(SlotWriteGuard { lock: self })
    }

    /// Whether a slot in use counts a reader.
    fn readers_in(&self) -> bool {
        let in_use = IN_USE.load(SeqCst).min(SLOTS);
        self.readers[..in_use].iter().any(|s| s.0.load(SeqCst) != 0)
    }
}

/// A read of a [`SlotLock`]: shared access to its data until dropped.
pub(crate) struct SlotReadGuard<'a, T> {
    lock: &'a SlotLock<T>,
    count: &'a AtomicU32,
}

impl<T> Deref for SlotReadGuard<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: this guard's count is in a slot; a writer writes only after finding every
        // slot clear with its flag set, and a reader counts itself in only while the flag is
        // clear (module docs), so no `&mut T` exists while this guard lives.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T> Drop for SlotReadGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.lock.leave(self.count);
    }
}

/// The write of a [`SlotLock`]: exclusive access to its data until dropped.
pub(crate) struct SlotWriteGuard<'a, T> {
    lock: &'a SlotLock<T>,
}

impl<T> Deref for SlotWriteGuard<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: the flag is set and every slot was clear after it was: no other guard of
        // this lock exists or can be made until this one drops (module docs).
        unsafe { &*self.lock.data.get() }
    }
}

impl<T> DerefMut for SlotWriteGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` keeps this the only reference made from it.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T> Drop for SlotWriteGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.lock.state.store(0, SeqCst);
        self.lock.wake_writers();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    /// Reads past [`MAX_SLOT_READS`] on one slot abort the process rather than wrap the
    /// count (run in a child process, which must die of `SIGABRT`).
    #[test]
    fn a_slot_reads_past_its_limit_aborts() {
        const CHILD: &str = "OTA_INDEX_SLOT_OVERFLOW_CHILD";
        if std::env::var_os(CHILD).is_some() {
            let lock = SlotLock::new(0u8);
            let slot = &lock.readers[thread_slot()].0;
            slot.store(MAX_SLOT_READS - 1, SeqCst);
            std::mem::forget(lock.read()); // the last read allowed
            assert_eq!(slot.load(SeqCst), MAX_SLOT_READS);
            std::mem::forget(lock.read()); // aborts
            unreachable!("a read past the limit was counted");
        }
        let output = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "sync::slotlock::tests::a_slot_reads_past_its_limit_aborts",
            ])
            .args(["--nocapture", "--test-threads=1"])
            .env(CHILD, "1")
            .output()
            .unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(output.status.signal(), Some(6), "{output:?}"); // SIGABRT
        }
        assert!(!output.status.success(), "{output:?}");
    }

    #[test]
    fn a_read_keeps_writers_out_and_readers_in() {
        let lock = SlotLock::new(1);
        let read = lock.read();
        assert!(lock.try_write().is_none(), "a reader holds it");
        assert_eq!(*lock.try_read().expect("readers share it"), 1);
        drop(read);
        let mut write = lock.try_write().expect("no reader now");
        *write = 2;
        assert!(lock.try_read().is_none(), "a writer holds it");
        assert!(lock.try_write().is_none(), "one writer at a time");
        drop(write);
        assert_eq!(*lock.read(), 2);
    }

    #[test]
    fn a_failed_write_leaves_the_lock_to_readers() {
        let lock = SlotLock::new(());
        let read = lock.read();
        assert!(lock.try_write().is_none());
        // The attempt cleared its flag: a further read (this thread's second) goes in.
        assert!(lock.try_read().is_some());
        drop(read);
        assert!(lock.try_write().is_some());
    }

    #[test]
    fn a_read_on_another_thread_keeps_writers_out() {
        let lock = Arc::new(SlotLock::new(0u64));
        let (held, release) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let reader = {
            let (lock, held, release) = (lock.clone(), held.clone(), release.clone());
            std::thread::spawn(move || {
                let _read = lock.read();
                held.store(true, SeqCst);
                while !release.load(SeqCst) {
                    std::thread::yield_now();
                }
            })
        };
        while !held.load(SeqCst) {
            std::thread::yield_now();
        }
        assert!(lock.try_write().is_none(), "the other thread reads");
        release.store(true, SeqCst);
        *lock.write() += 1;
        reader.join().unwrap();
        assert_eq!(*lock.read(), 1);
    }

    /// A writer parked behind a reader on another thread is woken when that reader lets go
    /// (its timeout is two minutes in tests, so only the wakeup brings it back in time).
    #[test]
    fn a_reader_letting_go_wakes_a_parked_writer() {
        use std::sync::mpsc;
        let lock = Arc::new(SlotLock::new(0u32));
        let (held_tx, held_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let reader = {
            let lock = lock.clone();
            std::thread::spawn(move || {
                let read = lock.read();
                held_tx.send(()).unwrap();
                release_rx.recv().unwrap();
                drop(read);
            })
        };
        held_rx.recv().unwrap();
        let (done_tx, done_rx) = mpsc::channel();
        let writer = {
            let lock = lock.clone();
            std::thread::spawn(move || {
                *lock.write() += 1;
                done_tx.send(()).unwrap();
            })
        };
        // Until the writer has parked (its tries spin for microseconds).
        while lock.parked.load(SeqCst) == 0 {
            std::thread::yield_now();
        }
        release_tx.send(()).unwrap();
        let woken = done_rx.recv_timeout(Duration::from_secs(30));
        reader.join().unwrap();
        assert!(woken.is_ok(), "the parked writer was not woken");
        writer.join().unwrap();
        assert_eq!(*lock.read(), 1);
    }

    /// Writers keep two halves equal; readers on more threads than there are slots must
    /// never see them differ, and every write must land.
    #[test]
    fn readers_never_see_a_write_half_done() {
        let lock = Arc::new(SlotLock::new((0u64, 0u64)));
        let stop = Arc::new(AtomicBool::new(false));
        let reading = Arc::new(AtomicUsize::new(0));
        let readers: Vec<_> = (0..SLOTS + 4)
            .map(|_| {
                let (lock, stop, reading) = (lock.clone(), stop.clone(), reading.clone());
                std::thread::spawn(move || {
                    let mut reads = 0u64;
                    while !stop.load(SeqCst) || reads == 0 {
                        {
                            let guard = lock.read();
                            let a = std::hint::black_box(&*guard).0;
                            for _ in 0..50 {
                                std::hint::spin_loop();
                            }
                            let b = std::hint::black_box(&*guard).1;
                            assert_eq!(a, b, "a read saw a write half done");
                            // A second read of the same lock while a writer may wait.
                            assert_eq!(lock.read().0, a);
                        }
                        reads += 1;
                        if reads == 1 {
                            reading.fetch_add(1, SeqCst);
                        }
                        // Readers that never let go leave a writer no moment (a writer waits
                        // for one with no reader at all).
                        std::thread::yield_now();
                    }
                    reads
                })
            })
            .collect();
        let writers: Vec<_> = (0..2)
            .map(|_| {
                let (lock, reading) = (lock.clone(), reading.clone());
                std::thread::spawn(move || {
                    // Every reader is in its loop before the first write.
                    while reading.load(SeqCst) < SLOTS + 4 {
                        std::thread::yield_now();
                    }
                    for _ in 0..2_000 {
                        let mut guard = lock.write();
                        std::hint::black_box(&mut *guard).0 += 1;
                        for _ in 0..100 {
                            std::hint::spin_loop();
                        }
                        std::hint::black_box(&mut *guard).1 += 1;
                        drop(guard);
                        // Readers run between writes, even on one CPU.
                        std::thread::yield_now();
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        stop.store(true, SeqCst);
        for r in readers {
            assert!(r.join().unwrap() > 0);
        }
        assert_eq!(*lock.read(), (4_000, 4_000));
    }

    #[test]
    fn a_thread_slot_is_reused_after_its_thread_exits() {
        let index = || THREAD_SLOT.with(|s| s.0);
        let seen: std::collections::HashSet<usize> = (0..200)
            .map(|_| std::thread::spawn(index).join().unwrap())
            .collect();
        // One thread at a time: each takes a slot an earlier one gave back (unless the other
        // tests' threads took it meanwhile), where 200 new slots would mean none came back.
        assert!(seen.len() < 200, "{} distinct slots", seen.len());
    }
}
