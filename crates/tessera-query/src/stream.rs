//! A running query's result as a stream of record batches, produced on the query runtime and
//! read by a front end at its own pace (a bounded channel between them: a slow reader slows
//! the query down, it never piles the result up in memory).
//!
//! The stream ends with an error item when the query fails, passes a result limit, runs out
//! of time or the server stops; dropping it cancels the query.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use arrow::array::Array;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use futures::Stream;
use tokio::sync::mpsc;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;

use crate::error::{QueryError, Result};
use crate::executor::{Admission, Task};

/// How much a query may return.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ResultLimits {
    pub max_rows: u64,
    pub max_bytes: u64,
}

impl ResultLimits {
    pub(crate) fn counter(self) -> ResultCounter {
        ResultCounter {
            limits: self,
            rows: 0,
            bytes: 0,
        }
    }
}

/// Counts what a query has returned against its [`ResultLimits`].
pub(crate) struct ResultCounter {
    limits: ResultLimits,
    rows: u64,
    bytes: u64,
}

impl ResultCounter {
    pub(crate) fn rows(&self) -> u64 {
        self.rows
    }

    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    pub(crate) fn add(&mut self, batch: &RecordBatch) -> Result<()> {
        self.rows += batch.num_rows() as u64;
        self.bytes += batch
            .columns()
            .iter()
            .map(|c| c.to_data().get_slice_memory_size().unwrap_or(0) as u64)
            .sum::<u64>();
        if self.rows > self.limits.max_rows {
            return Err(QueryError::ResultTooLarge(format!(
                "the result has more than {} rows, the most a query may return (--query-max-result-rows): add a LIMIT, filter or aggregate",
                self.limits.max_rows
            )));
        }
        if self.bytes > self.limits.max_bytes {
            return Err(QueryError::ResultTooLarge(format!(
                "the result is larger than {} bytes, the most a query may return (--query-max-result-bytes): add a LIMIT, select fewer columns, filter or aggregate",
                self.limits.max_bytes
            )));
        }
        Ok(())
    }
}

/// The result of [`QueryEngine::execute`](crate::QueryEngine::execute).
pub struct QueryStream {
    schema: SchemaRef,
    /// The datasets the query reads, as planned.
    datasets: Vec<tessera_core::DatasetRef>,
    batches: mpsc::Receiver<Result<RecordBatch>>,
    /// The query still producing `batches`; none when the whole result is in them already
    /// (the query ended before its reader was told it started).
    running: Option<Running>,
    done: bool,
}

/// What a query producing its result on the query runtime holds.
struct Running {
    task: Task<()>,
    /// Cancelled when the stream is dropped, which stops the query inside its operators.
    token: CancellationToken,
    /// When the caller stops waiting for a query that does not notice its own deadline.
    give_up: Pin<Box<Sleep>>,
    timeout_seconds: u64,
    _admission: Admission,
}

impl QueryStream {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        schema: SchemaRef,
        datasets: Vec<tessera_core::DatasetRef>,
        batches: mpsc::Receiver<Result<RecordBatch>>,
        task: Task<()>,
        token: CancellationToken,
        give_up_at: Instant,
        timeout_seconds: u64,
        admission: Admission,
    ) -> Self {
        Self {
            schema,
            datasets,
            batches,
            running: Some(Running {
                task,
                token,
                give_up: Box::pin(tokio::time::sleep_until(give_up_at)),
                timeout_seconds,
                _admission: admission,
            }),
            done: false,
        }
    }

    /// A result whole in `batches` already (its sender dropped), of a query that has ended.
    pub(crate) fn ended(
        schema: SchemaRef,
        datasets: Vec<tessera_core::DatasetRef>,
        batches: mpsc::Receiver<Result<RecordBatch>>,
    ) -> Self {
        Self {
            schema,
            datasets,
            batches,
            running: None,
            done: false,
        }
    }

    /// The result of a query that ended without a task: these batches, reading no dataset.
    pub(crate) fn whole(schema: SchemaRef, result: Vec<RecordBatch>) -> Self {
        let (sender, batches) = mpsc::channel(result.len().max(1));
        for batch in result {
            sender
                .try_send(Ok(batch))
                .expect("the channel holds every batch");
        }
        Self::ended(schema, Vec::new(), batches)
    }

    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// The datasets the query reads (quarantine tables included), as its plan names them.
    pub fn datasets(&self) -> &[tessera_core::DatasetRef] {
        &self.datasets
    }
}

impl Drop for QueryStream {
    fn drop(&mut self) {
        if let Some(running) = &self.running {
            running.token.cancel();
        }
    }
}

impl Stream for QueryStream {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        let item = self.batches.poll_recv(cx);
        let this = &mut *self;
        let Some(running) = &mut this.running else {
            // The result's end is the channel's.
            this.done = matches!(item, Poll::Ready(None | Some(Err(_))));
            return item;
        };
        match item {
            Poll::Ready(Some(item)) => {
                if item.is_err() {
                    this.done = true;
                    running.task.abort();
                }
                return Poll::Ready(Some(item));
            }
            // The producer is gone: finished, or stopped without a word (shutdown, panic),
            // which its task's outcome tells.
            Poll::Ready(None) => {
                return match Pin::new(&mut running.task).poll(cx) {
                    Poll::Ready(outcome) => {
                        this.done = true;
                        Poll::Ready(outcome.err().map(Err))
                    }
                    Poll::Pending => Poll::Pending,
                };
            }
            Poll::Pending => {}
        }
        if running.give_up.as_mut().poll(cx).is_ready() {
            this.done = true;
            running.task.abort();
            return Poll::Ready(Some(Err(QueryError::Timeout(running.timeout_seconds))));
        }
        Poll::Pending
    }
}
