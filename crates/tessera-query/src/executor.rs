//! Where queries run: a runtime of their own, apart from the one that answers HTTP, so a
//! heavy query never makes `/health` or a catalog request wait; and the admission control in
//! front of it.
//!
//! - **Threads.** Enough workers that every running query has one even while others compute
//!   (a DataFusion operator can keep its thread for a long time without yielding), each with a
//!   large stack ([`STACK_BYTES`]): DataFusion guards its own recursion, but walks over deep
//!   expression trees (hashing, comparing, dropping) do not, and an overflow aborts the whole
//!   process. On Linux the workers run at a lower scheduling priority than the rest of the
//!   process, so the request threads get a core whenever they need one.
//! - **Cancellation.** Each query has a token, cancelled at its deadline by a timer thread of
//!   its own (which looks at the deadlines every [`DEADLINE_TICK`] while queries run, rather
//!   than being woken for each query), when its reader goes away, or when the engine shuts
//!   down. Work is spawned as a
//!   task that is aborted when its handle is dropped; DataFusion's operators yield to the
//!   runtime between batches, and joins that might not are made to check the token
//!   (`interrupt.rs`), so a cancelled query stops using its core within a batch step.
//! - **Admission.** At most `concurrency` queries run at once; up to `queue_length` more wait
//!   for a turn; the rest are refused at once with [`QueryError::Busy`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::error::{QueryError, Result};

/// Stack of each query thread. Only what is touched is backed by memory.
pub const STACK_BYTES: usize = 256 << 20;

/// How late, at most, a query's deadline cancels it.
const DEADLINE_TICK: Duration = Duration::from_millis(50);

/// The deadlines of running work, each with the token it cancels.
#[derive(Default)]
struct Deadlines {
    pending: std::sync::Mutex<Vec<(tokio::time::Instant, CancellationToken)>>,
    /// Wakes the timer when the first deadline comes in after none.
    added: tokio::sync::Notify,
}

impl Deadlines {
    /// Cancels the tokens whose deadline passed and forgets those cancelled otherwise; while
    /// any is left, looks again every [`DEADLINE_TICK`].
    async fn watch(&self, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(DEADLINE_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let idle = {
                let now = tokio::time::Instant::now();
                let mut pending = self.pending.lock().expect("deadlines");
                pending.retain(|(deadline, token)| {
                    if *deadline <= now {
                        token.cancel();
                    }
                    !token.is_cancelled()
                });
                pending.is_empty()
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.added.notified(), if idle => {}
                _ = tick.tick(), if !idle => {}
            }
        }
    }
}

/// The query runtime and its admission control.
pub(crate) struct Executor {
    runtime: std::sync::Mutex<Option<tokio::runtime::Runtime>>,
    handle: tokio::runtime::Handle,
    /// Runs the deadline timers on a thread of its own: the query threads may all be busy.
    timer: std::sync::Mutex<Option<tokio::runtime::Runtime>>,
    deadlines: Arc<Deadlines>,
    running: Arc<Semaphore>,
    waiting: Arc<AtomicUsize>,
    queue_length: usize,
    shutdown: CancellationToken,
}

impl Executor {
    pub(crate) fn new(threads: usize, concurrency: usize, queue_length: usize) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name("tessera-query")
            .thread_stack_size(STACK_BYTES)
            .on_thread_start(lower_priority)
            .enable_all()
            .build()
            .map_err(|e| QueryError::Internal(format!("cannot start the query runtime: {e}")))?;
        let timer = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("tessera-query-timer")
            .enable_time()
            .build()
            .map_err(|e| QueryError::Internal(format!("cannot start the query timer: {e}")))?;
        let deadlines = Arc::new(Deadlines::default());
        let shutdown = CancellationToken::new();
        timer.spawn({
            let (deadlines, shutdown) = (deadlines.clone(), shutdown.clone());
            async move { deadlines.watch(shutdown).await }
        });
        Ok(Self {
            handle: runtime.handle().clone(),
            runtime: std::sync::Mutex::new(Some(runtime)),
            timer: std::sync::Mutex::new(Some(timer)),
            deadlines,
            running: Arc::new(Semaphore::new(concurrency.max(1))),
            waiting: Arc::new(AtomicUsize::new(0)),
            queue_length,
            shutdown,
        })
    }

    /// Runs `work` on the query runtime. Dropping the returned handle aborts it.
    pub(crate) fn spawn<F>(&self, work: F) -> Task<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let shutdown = self.shutdown.clone();
        Task(self.handle.spawn(async move {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => None,
                out = work => Some(out),
            }
        }))
    }

    /// A turn to run a query: at once when fewer than `concurrency` run, after a wait of at
    /// most `wait` when the queue has room, else refused.
    pub(crate) async fn admit(&self, wait: Duration) -> Result<Admission> {
        if let Ok(permit) = self.running.clone().try_acquire_owned() {
            return Ok(Admission(permit));
        }
        let queued = self.waiting.fetch_add(1, Ordering::SeqCst);
        let _leave = Leave(self.waiting.clone());
        if queued >= self.queue_length {
            return Err(QueryError::Busy);
        }
        tokio::select! {
            permit = self.running.clone().acquire_owned() => permit
                .map(Admission)
                .map_err(|_| QueryError::ShuttingDown),
            _ = tokio::time::sleep(wait) => Err(QueryError::Busy),
            _ = self.shutdown.cancelled() => Err(QueryError::ShuttingDown),
        }
    }

    /// A token for one query: cancelled by its deadline, by whoever stops reading it, or when
    /// the engine shuts down.
    pub(crate) fn query_token(&self) -> CancellationToken {
        self.shutdown.child_token()
    }

    /// Cancels `token` at `deadline` (at most [`DEADLINE_TICK`] later), unless it is cancelled
    /// before.
    pub(crate) fn cancel_at(&self, deadline: tokio::time::Instant, token: CancellationToken) {
        let mut pending = self.deadlines.pending.lock().expect("deadlines");
        pending.push((deadline, token));
        if pending.len() == 1 {
            self.deadlines.added.notify_one();
        }
    }

    /// Cancels everything running and refuses new work.
    pub(crate) fn shut_down(&self) {
        self.shutdown.cancel();
        self.running.close();
    }

    pub(crate) fn is_shut_down(&self) -> bool {
        self.shutdown.is_cancelled()
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        self.shutdown.cancel();
        // Dropping a runtime waits for its threads, which an async caller must not do.
        for runtime in [&self.runtime, &self.timer] {
            if let Some(runtime) = runtime.lock().ok().and_then(|mut r| r.take()) {
                runtime.shutdown_background();
            }
        }
    }
}

/// A running query's turn; the next one in the queue starts when it is dropped.
#[derive(Debug)]
pub struct Admission(#[allow(dead_code)] OwnedSemaphorePermit);

struct Leave(Arc<AtomicUsize>);

impl Drop for Leave {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Work on the query runtime; aborted when dropped. Resolves to `None` when the work was
/// cancelled (aborted or shut down) and to an error when it panicked.
pub struct Task<T>(JoinHandle<Option<T>>);

impl<T> Task<T> {
    /// Stops the work at its next yield.
    pub fn abort(&self) {
        self.0.abort();
    }
}

impl<T> Drop for Task<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<T> Future for Task<T> {
    type Output = Result<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx).map(|joined| match joined {
            Ok(Some(out)) => Ok(out),
            Ok(None) => Err(QueryError::ShuttingDown),
            Err(e) if e.is_cancelled() => Err(QueryError::ShuttingDown),
            Err(e) => {
                let message = panic_message(e);
                tracing::error!(panic = %message, "query work panicked");
                Err(QueryError::Internal(format!(
                    "query work panicked: {message}"
                )))
            }
        })
    }
}

fn panic_message(error: tokio::task::JoinError) -> String {
    match error.try_into_panic() {
        Ok(payload) => payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".into()),
        Err(e) => e.to_string(),
    }
}

/// Query threads yield the CPU to the threads that answer requests.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: plain system calls on the calling thread; a failure only leaves the priority as
    // it was.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, 10);
    }
}
