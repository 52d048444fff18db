//! The event log as the server uses it: durable appends shared by one fsync, runs taken and
//! committed, recovery after a crash (torn tails cut, damage refused), idempotency keys across
//! restarts and truncation, and the backlog bound.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use tessera_pipeline::{EventBatch, EventGroup, EventLog, LogOptions, PipelineError, Reservation};

fn rows(from: i64, n: i64) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("label", DataType::Utf8, true),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from_iter_values(from..from + n)),
            Arc::new(StringArray::from_iter_values(
                (from..from + n).map(|i| format!("event {i}")),
            )),
        ],
    )
    .expect("a batch")
}

fn batch(stream: &str, from: i64, n: i64) -> EventBatch {
    EventBatch {
        stream: stream.to_string(),
        valid: Some(rows(from, n)),
        quarantine: None,
        receipt: format!("{{\"accepted\":{n}}}").into_bytes(),
    }
}

fn ids(log: &EventLog, stream: &str) -> Vec<i64> {
    let Some(run) = log.take(stream, usize::MAX) else {
        return Vec::new();
    };
    let out = run
        .entries
        .iter()
        .flat_map(|e| {
            let b = e.valid.as_ref().expect("valid rows");
            let ids = b
                .column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .expect("ids");
            ids.values().to_vec()
        })
        .collect();
    log.release(run);
    out
}

fn segments(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .expect("the log directory")
        .map(|e| e.expect("an entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn appends_are_taken_in_order_and_segments_go_once_committed() {
    let dir = tempfile::tempdir().expect("a directory");
    let mut options = LogOptions::new(dir.path());
    options.segment_max_bytes = 2_000;
    let log = EventLog::open(options).expect("open");
    let mut seqs = Vec::new();
    for i in 0..20 {
        seqs.push(
            log.append(batch("shop.orders.events", i * 10, 10), None)
                .await
                .expect("append"),
        );
        log.append(batch("shop.orders.clicks", i, 1), None)
            .await
            .expect("append");
    }
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "sequence numbers grow"
    );
    assert!(segments(dir.path()).len() > 2, "small segments rotate");
    let pending = log.pending();
    assert_eq!(pending.len(), 2);
    assert_eq!(
        ids(&log, "shop.orders.events"),
        (0..200).collect::<Vec<_>>()
    );

    // A run holds at least one batch and about the rows asked for; none while one is out.
    let run = log.take("shop.orders.events", 25).expect("a run");
    assert_eq!(run.entries.len(), 2);
    assert!(
        log.take("shop.orders.events", 25).is_none(),
        "one run of a stream at a time"
    );
    assert_eq!(run.last_seq(), seqs[1]);
    log.committed(run).expect("committed");
    let rest = log
        .take("shop.orders.events", usize::MAX)
        .expect("the rest");
    assert_eq!(rest.entries.len(), 18);
    log.committed(rest).expect("committed");
    let clicks = log.take("shop.orders.clicks", usize::MAX).expect("clicks");
    log.committed(clicks).expect("committed");
    assert_eq!(log.stats().pending_entries, 0);
    assert_eq!(log.stats().backlog_bytes, 0);
    assert_eq!(
        segments(dir.path()).len(),
        1,
        "every committed segment is deleted, the active one stays"
    );
}

#[tokio::test]
async fn concurrent_appends_share_fsyncs() {
    let dir = tempfile::tempdir().expect("a directory");
    let log = Arc::new(EventLog::open(LogOptions::new(dir.path())).expect("open"));
    let tasks: Vec<_> = (0..400)
        .map(|i| {
            let log = log.clone();
            tokio::spawn(async move { log.append(batch("d.p.events", i, 5), None).await })
        })
        .collect();
    for t in tasks {
        t.await.expect("a task").expect("append");
    }
    let stats = log.stats();
    assert_eq!(stats.appends, 400);
    assert!(
        stats.fsyncs < stats.appends,
        "group commit: {} fsyncs for {} appends",
        stats.fsyncs,
        stats.appends
    );
    assert_eq!(ids(&log, "d.p.events").len(), 2_000);
}

#[tokio::test]
async fn a_restart_reads_back_what_was_not_committed() {
    let dir = tempfile::tempdir().expect("a directory");
    let committed_seq;
    {
        let log = EventLog::open(LogOptions::new(dir.path())).expect("open");
        log.append(batch("d.p.a", 0, 3), None)
            .await
            .expect("append");
        let run = log.take("d.p.a", usize::MAX).expect("a run");
        committed_seq = run.last_seq();
        log.committed(run).expect("committed");
        log.append(batch("d.p.a", 3, 3), None)
            .await
            .expect("append");
        log.append(batch("d.p.b", 100, 2), None)
            .await
            .expect("append");
    }
    // The crash: the process is gone, the files stay.
    let log = EventLog::open(LogOptions::new(dir.path())).expect("reopen");
    // What was committed before truncation may be read again (the segment was shared); the
    // committer skips it by the table's transaction. What was not is all there.
    let a = ids(&log, "d.p.a");
    assert!(a.ends_with(&[3, 4, 5]), "{a:?}");
    assert_eq!(ids(&log, "d.p.b"), vec![100, 101]);
    let run = log.take("d.p.a", usize::MAX).expect("a run");
    assert!(run.entries.iter().all(|e| e.seq >= committed_seq));
    log.release(run);
    let next = log
        .append(batch("d.p.a", 6, 1), None)
        .await
        .expect("append");
    assert!(next > log.take("d.p.b", 10).expect("b").last_seq());
}

#[tokio::test]
async fn sequence_numbers_never_go_back_after_every_segment_is_deleted() {
    let dir = tempfile::tempdir().expect("a directory");
    let mut options = LogOptions::new(dir.path());
    options.segment_max_bytes = 1;
    let last = {
        let log = EventLog::open(options.clone()).expect("open");
        let mut last = 0;
        for i in 0..5 {
            last = log
                .append(batch("d.p.a", i, 1), None)
                .await
                .expect("append");
        }
        let run = log.take("d.p.a", usize::MAX).expect("a run");
        log.committed(run).expect("committed");
        last
    };
    for _ in 0..2 {
        let log = EventLog::open(options.clone()).expect("reopen");
        assert!(ids(&log, "d.p.a").is_empty());
        let seq = log
            .append(batch("d.p.a", 9, 1), None)
            .await
            .expect("append");
        assert!(seq > last, "{seq} after {last}");
        let run = log.take("d.p.a", usize::MAX).expect("a run");
        log.committed(run).expect("committed");
    }
}

#[tokio::test]
async fn a_torn_tail_is_cut_and_damage_elsewhere_is_refused() {
    let dir = tempfile::tempdir().expect("a directory");
    {
        let log = EventLog::open(LogOptions::new(dir.path())).expect("open");
        log.append(batch("d.p.a", 0, 4), None)
            .await
            .expect("append");
    }
    let newest = segments(dir.path()).pop().expect("a segment");
    let whole = std::fs::metadata(&newest).expect("size").len();
    // A crash mid-write leaves part of a frame.
    let mut torn = std::fs::read(&newest).expect("read");
    torn.extend_from_slice(&[200, 0, 0, 0, 1, 2, 3, 4, 5]);
    std::fs::write(&newest, &torn).expect("write");
    {
        let log = EventLog::open(LogOptions::new(dir.path())).expect("a torn tail is cut");
        assert_eq!(ids(&log, "d.p.a"), vec![0, 1, 2, 3]);
        assert_eq!(std::fs::metadata(&newest).expect("size").len(), whole);
        log.append(batch("d.p.a", 4, 1), None)
            .await
            .expect("append");
    }
    // Damage in a segment that is not the newest is not a torn write: refused, named.
    let mut bytes = std::fs::read(&newest).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&newest, &bytes).expect("write");
    match EventLog::open(LogOptions::new(dir.path())) {
        Err(PipelineError::Corrupt { path, .. }) => assert_eq!(path, newest),
        other => panic!("expected the damaged segment to be refused, got {other:?}"),
    }
}

#[tokio::test]
async fn idempotency_keys_replay_across_restarts_and_truncation() {
    let dir = tempfile::tempdir().expect("a directory");
    let mut options = LogOptions::new(dir.path());
    options.segment_max_bytes = 1;
    {
        let log = EventLog::open(options.clone()).expect("open");
        let Reservation::Fresh(claim) = log.reserve("d.p.a", "req-1").expect("reserve") else {
            panic!("a new key is fresh");
        };
        match log.reserve("d.p.a", "req-1") {
            Err(PipelineError::KeyInProgress { key, .. }) => assert_eq!(key, "req-1"),
            other => panic!("expected the key in progress, got {other:?}"),
        }
        log.append(batch("d.p.a", 0, 2), Some(claim))
            .await
            .expect("append");
        match log.reserve("d.p.a", "req-1").expect("reserve") {
            Reservation::Replay(receipt) => assert_eq!(receipt, b"{\"accepted\":2}"),
            Reservation::Fresh(_) => panic!("a used key replays"),
        }
        // The same key on another stream is another request.
        assert!(matches!(
            log.reserve("d.p.b", "req-1").expect("reserve"),
            Reservation::Fresh(_)
        ));
        // A claim dropped unused (the request failed before its append) frees the key.
        drop(log.reserve("d.p.a", "req-2").expect("reserve"));
        assert!(matches!(
            log.reserve("d.p.a", "req-2").expect("reserve"),
            Reservation::Fresh(_)
        ));
        let run = log.take("d.p.a", usize::MAX).expect("a run");
        log.committed(run).expect("committed");
    }
    // The segment that held the key is gone; the key is not.
    let log = EventLog::open(options.clone()).expect("reopen");
    assert!(matches!(
        log.reserve("d.p.a", "req-1").expect("reserve"),
        Reservation::Replay(_)
    ));
    assert_eq!(log.stats().idempotency_keys, 1);
    drop(log);

    // Past the window a key is new again.
    options.idempotency_window = Duration::ZERO;
    let log = EventLog::open(options).expect("reopen");
    let Reservation::Fresh(claim) = log.reserve("d.p.a", "req-9").expect("reserve") else {
        panic!("fresh");
    };
    log.append(batch("d.p.a", 5, 1), Some(claim))
        .await
        .expect("append");
    assert!(matches!(
        log.reserve("d.p.a", "req-9").expect("reserve"),
        Reservation::Fresh(_)
    ));
}

#[tokio::test]
async fn a_full_backlog_refuses_appends_until_committed() {
    let dir = tempfile::tempdir().expect("a directory");
    let mut options = LogOptions::new(dir.path());
    options.max_backlog_bytes = 1_000;
    let log = EventLog::open(options).expect("open");
    log.append(batch("d.p.a", 0, 100), None)
        .await
        .expect("the first append fits");
    match log.append(batch("d.p.a", 100, 1), None).await {
        Err(PipelineError::Backlogged { backlog, limit }) => {
            assert!(backlog >= limit, "{backlog} {limit}")
        }
        other => panic!("expected the backlog bound, got {other:?}"),
    }
    let run = log.take("d.p.a", usize::MAX).expect("a run");
    log.committed(run).expect("committed");
    log.append(batch("d.p.a", 100, 1), None)
        .await
        .expect("room again");
    // A refused append holds no sequence number and no rows.
    assert_eq!(ids(&log, "d.p.a"), vec![100]);
}

/// Each entry's sequence number and the ids of its valid and quarantined rows, taken and given
/// back.
fn entries(log: &EventLog, stream: &str) -> Vec<(u64, Vec<i64>, Vec<i64>)> {
    let run = log.take(stream, usize::MAX).expect("a run");
    let ids = |b: &Option<RecordBatch>| {
        b.as_ref().map_or_else(Vec::new, |b| {
            let ids = b.column(0).as_any().downcast_ref::<Int64Array>();
            ids.expect("ids").values().to_vec()
        })
    };
    let out = run
        .entries
        .iter()
        .map(|e| (e.seq, ids(&e.valid), ids(&e.quarantine)))
        .collect();
    log.release(run);
    out
}

#[tokio::test]
async fn a_group_is_one_frame_yet_each_request_its_own_entry_across_a_restart() {
    let dir = tempfile::tempdir().expect("a directory");
    let group = EventGroup {
        stream: "d.p.a".to_string(),
        valid: rows(0, 5),
        quarantine: rows(100, 2),
        // Three requests: two valid rows; two quarantined; three valid.
        parts: vec![(2, 0), (0, 2), (3, 0)],
    };
    let want = |first: u64| {
        vec![
            (first, vec![0, 1], vec![]),
            (first + 1, vec![], vec![100, 101]),
            (first + 2, vec![2, 3, 4], vec![]),
            (first + 3, vec![5], vec![]),
        ]
    };
    let first;
    {
        let log = EventLog::open(LogOptions::new(dir.path())).expect("open");
        let uneven = EventGroup {
            parts: vec![(2, 0), (2, 2)],
            ..group.clone()
        };
        let none = EventGroup {
            valid: rows(0, 0),
            quarantine: rows(0, 0),
            parts: Vec::new(),
            ..group.clone()
        };
        for (refused, why) in [
            (uneven, "parts that do not add up to the batches"),
            (none, "a group of no requests"),
        ] {
            assert!(
                matches!(
                    log.append_group(refused).await,
                    Err(PipelineError::Internal(_))
                ),
                "{why} is refused"
            );
        }
        first = log.append_group(group).await.expect("a group");
        assert_eq!(log.stats().fsyncs, 1, "one frame, one fsync");
        let next = log
            .append(batch("d.p.a", 5, 1), None)
            .await
            .expect("append");
        assert_eq!(next, first + 3, "a group takes a sequence number a request");
        assert_eq!(entries(&log, "d.p.a"), want(first));
    }
    // The crash: read back as it was acknowledged, request by request.
    let log = EventLog::open(LogOptions::new(dir.path())).expect("reopen");
    assert_eq!(entries(&log, "d.p.a"), want(first));
    // Committed request by request, the group's frame is freed whole only with its last.
    let run = log.take("d.p.a", 1).expect("the first request");
    assert_eq!(run.last_seq(), first);
    log.committed(run).expect("committed");
    assert!(log.stats().backlog_bytes > 0);
    let rest = log.take("d.p.a", usize::MAX).expect("the rest");
    assert_eq!(rest.entries.len(), 3);
    log.committed(rest).expect("committed");
    assert_eq!(log.stats().backlog_bytes, 0);
    assert_eq!(
        segments(dir.path()).len(),
        1,
        "the recovered segment is gone"
    );
    let next = log
        .append(batch("d.p.a", 6, 1), None)
        .await
        .expect("append");
    assert_eq!(next, first + 4, "sequence numbers go on after the group's");
}
