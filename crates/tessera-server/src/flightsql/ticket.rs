//! Flight SQL statement tickets and prepared-statement handles: the statement itself (SQL, its
//! bound parameter row, whose it is), sealed with an HMAC so a client can hand it back but not
//! alter it. Nothing is kept on the server, so a handle outlives a connection and works on any
//! instance that shares the metadata store (the key is a secret kept there).
//!
//! A handle never grants anything: the call that brings it back is authenticated again and runs
//! the SQL as *that* caller, through the one governed path. The seal and the principal check
//! only keep one user's handle from being replayed by another.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arrow::array::RecordBatch;
use bytes::Bytes;
use datafusion::common::{ParamValues, ScalarValue};
use hmac::{Hmac, Mac};
use prost::Message;
use sha2::Sha256;
use tessera_core::RequestContext;
use tonic::Status;

const VERSION: u32 = 1;

/// What a sealed handle is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, prost::Enumeration)]
#[repr(i32)]
pub(crate) enum Kind {
    /// A prepared statement's handle: kept by clients and pools, so it does not expire.
    Prepared = 0,
    /// The ticket of one execution (FlightInfo to DoGet): short-lived.
    Ticket = 1,
}

/// A statement as a client carries it between calls.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Handle {
    #[prost(uint32, tag = "1")]
    pub version: u32,
    #[prost(enumeration = "Kind", tag = "2")]
    pub kind: i32,
    #[prost(string, tag = "3")]
    pub sql: String,
    /// The bound parameters: one row as an Arrow IPC stream.
    #[prost(bytes = "bytes", optional, tag = "4")]
    pub parameters: Option<Bytes>,
    /// The principal it was made for (`user:NAME`).
    #[prost(string, tag = "5")]
    pub principal: String,
    #[prost(int64, tag = "6")]
    pub issued_at_ms: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Sealed {
    #[prost(bytes = "bytes", tag = "1")]
    handle: Bytes,
    #[prost(bytes = "bytes", tag = "2")]
    mac: Bytes,
}

impl Handle {
    pub(crate) fn new(kind: Kind, sql: String, cx: &RequestContext) -> Self {
        Self {
            version: VERSION,
            kind: kind as i32,
            sql,
            parameters: None,
            principal: cx.principal.to_string(),
            issued_at_ms: now_ms(),
        }
    }

    /// The ticket for one execution of this statement, with its parameters.
    pub(crate) fn to_ticket(&self) -> Self {
        Self {
            kind: Kind::Ticket as i32,
            issued_at_ms: now_ms(),
            ..self.clone()
        }
    }

    /// Binds a parameter row (what DoPut brings): exactly one row, columns in `$1..$n` order.
    pub(crate) fn bind(&mut self, batches: &[RecordBatch]) -> Result<(), Status> {
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        if rows != 1 {
            return Err(Status::invalid_argument(format!(
                "a query binds one row of parameters, not {rows} (executemany runs a query once per row: call execute for each)"
            )));
        }
        let batch = batches
            .iter()
            .find(|b| b.num_rows() == 1)
            .expect("one row in all");
        let mut bytes = Vec::new();
        let mut writer = arrow::ipc::writer::StreamWriter::try_new(&mut bytes, &batch.schema())
            .map_err(internal)?;
        writer.write(batch).map_err(internal)?;
        writer.finish().map_err(internal)?;
        self.parameters = Some(bytes.into());
        Ok(())
    }

    /// The bound parameters as the engine binds them: positional (`$1..$n`) when the columns
    /// are numbered (`0, 1, ...` as ADBC's DB-API names them, or `$1, $2, ...`; in the order of
    /// their numbers), by name otherwise (`$name`).
    pub(crate) fn parameter_values(&self) -> Result<Option<ParamValues>, Status> {
        let Some(bytes) = &self.parameters else {
            return Ok(None);
        };
        let reader = arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None)
            .map_err(internal)?;
        let mut row = None;
        for batch in reader {
            let batch = batch.map_err(internal)?;
            if batch.num_rows() == 1 {
                row = Some(batch);
            }
        }
        let batch = row.ok_or_else(|| Status::invalid_argument("the parameter row is missing"))?;
        let schema = batch.schema();
        let values = batch
            .columns()
            .iter()
            .map(|column| ScalarValue::try_from_array(column, 0))
            .collect::<datafusion::error::Result<Vec<_>>>()
            .map_err(|e| Status::invalid_argument(format!("a parameter cannot be read: {e}")))?;
        let numbers: Option<Vec<usize>> = schema
            .fields()
            .iter()
            .map(|f| f.name().trim_start_matches('$').parse::<usize>().ok())
            .collect();
        Ok(Some(if let Some(numbers) = numbers {
            let mut numbered: Vec<(usize, ScalarValue)> = numbers.into_iter().zip(values).collect();
            numbered.sort_by_key(|(n, _)| *n);
            ParamValues::List(numbered.into_iter().map(|(_, v)| v.into()).collect())
        } else {
            ParamValues::Map(
                schema
                    .fields()
                    .iter()
                    .map(|f| f.name().trim_start_matches('$').to_string())
                    .zip(values.into_iter().map(Into::into))
                    .collect(),
            )
        }))
    }
}

/// The key handles are sealed with.
pub(crate) struct Keys {
    key: [u8; 32],
    /// How long an execution's ticket may wait for its DoGet.
    ticket_lifetime: Duration,
}

/// How far apart the clocks of two instances may be for a ticket made by one to open on the other.
const CLOCK_SKEW: Duration = Duration::from_secs(60);

impl Keys {
    /// Keys from a secret that every instance sharing the metadata store reads alike (so each
    /// accepts the others' handles), and used for nothing else.
    pub(crate) fn new(secret: &[u8], ticket_lifetime: Duration) -> Self {
        use sha2::Digest;
        Self {
            key: Sha256::digest(secret).into(),
            ticket_lifetime,
        }
    }

    pub(crate) fn seal(&self, handle: &Handle) -> Bytes {
        let handle = Bytes::from(handle.encode_to_vec());
        let mut mac = mac(&self.key);
        mac.update(&handle);
        let mac = Bytes::copy_from_slice(&mac.finalize().into_bytes());
        Sealed { handle, mac }.encode_to_vec().into()
    }

    /// The handle in `sealed`, if this server sealed it as `kind` for `cx`'s principal (and,
    /// for a ticket, not too long ago).
    pub(crate) fn open(
        &self,
        sealed: &[u8],
        kind: Kind,
        cx: &RequestContext,
    ) -> Result<Handle, Status> {
        let forged = || {
            Status::invalid_argument(
                "the statement handle was not made by this mesh (or was altered); prepare the statement again",
            )
        };
        let sealed = Sealed::decode(sealed).map_err(|_| forged())?;
        let mut mac = mac(&self.key);
        mac.update(&sealed.handle);
        mac.verify_slice(&sealed.mac).map_err(|_| forged())?;
        let handle = Handle::decode(sealed.handle).map_err(|_| forged())?;
        if handle.version != VERSION || handle.kind != kind as i32 {
            return Err(forged());
        }
        if handle.principal != cx.principal.to_string() {
            return Err(Status::permission_denied(
                "the statement handle belongs to another user",
            ));
        }
        // Made by an instance whose clock is ahead: its age is below zero, which is no age.
        let age = Duration::from_millis(now_ms().saturating_sub(handle.issued_at_ms).max(0) as u64);
        if kind == Kind::Ticket && age > self.ticket_lifetime + CLOCK_SKEW {
            return Err(Status::invalid_argument(format!(
                "the ticket expired (it is valid for {} s after the statement was planned); execute the statement again",
                self.ticket_lifetime.as_secs()
            )));
        }
        Ok(handle)
    }
}

fn mac(key: &[u8]) -> Hmac<Sha256> {
    Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length")
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn internal(e: impl std::fmt::Display) -> Status {
    Status::internal(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_core::{FrontEnd, Principal};

    fn cx(name: &str) -> RequestContext {
        RequestContext::new(
            Principal::user(name, vec![], vec![]),
            "test",
            FrontEnd::FlightSql,
        )
    }

    #[test]
    fn a_handle_opens_only_unaltered_for_its_own_user_and_kind() {
        let keys = Keys::new(b"secret", Duration::from_secs(60));
        let alice = cx("alice");
        let handle = Handle::new(Kind::Prepared, "SELECT 1".into(), &alice);
        let sealed = keys.seal(&handle);
        assert_eq!(
            keys.open(&sealed, Kind::Prepared, &alice).unwrap().sql,
            "SELECT 1"
        );
        let wrong_kind = keys.open(&sealed, Kind::Ticket, &alice).unwrap_err();
        assert_eq!(wrong_kind.code(), tonic::Code::InvalidArgument);
        let other_user = keys.open(&sealed, Kind::Prepared, &cx("bob")).unwrap_err();
        assert_eq!(other_user.code(), tonic::Code::PermissionDenied);
        // The SQL altered in place (the sealed bytes still decode): the seal no longer fits.
        let mut altered = sealed.to_vec();
        let at = altered
            .windows(8)
            .position(|w| w == b"SELECT 1")
            .expect("the SQL is in the handle");
        altered[at + 7] = b'2';
        let refused = keys.open(&altered, Kind::Prepared, &alice).unwrap_err();
        assert_eq!(refused.code(), tonic::Code::InvalidArgument);
        assert!(
            refused.message().contains("not made by this mesh"),
            "{refused:?}"
        );
        let another_mesh = Keys::new(b"other secret", Duration::from_secs(60));
        let refused = another_mesh
            .open(&sealed, Kind::Prepared, &alice)
            .unwrap_err();
        assert!(
            refused.message().contains("not made by this mesh"),
            "{refused:?}"
        );
    }

    #[test]
    fn a_ticket_expires_but_a_prepared_handle_does_not() {
        let keys = Keys::new(b"secret", Duration::from_secs(60));
        let alice = cx("alice");
        let mut old = Handle::new(Kind::Prepared, "SELECT 1".into(), &alice);
        old.issued_at_ms -= 3_600_000;
        assert!(keys.open(&keys.seal(&old), Kind::Prepared, &alice).is_ok());
        let mut ticket = old.to_ticket();
        ticket.issued_at_ms -= 3_600_000;
        let expired = keys.open(&keys.seal(&ticket), Kind::Ticket, &alice);
        assert!(expired.unwrap_err().message().contains("expired"));
        // A ticket from an instance whose clock is ahead opens.
        let mut ahead = old.to_ticket();
        ahead.issued_at_ms += 30_000;
        assert!(keys.open(&keys.seal(&ahead), Kind::Ticket, &alice).is_ok());
    }

    #[test]
    fn numbered_parameters_bind_in_the_order_of_their_numbers() {
        use arrow::array::{Int64Array, StringArray};
        use arrow::datatypes::{DataType, Field, Schema};
        let batch = |names: [&str; 2]| {
            let schema = Schema::new(vec![
                Field::new(names[0], DataType::Utf8, true),
                Field::new(names[1], DataType::Int64, true),
            ]);
            RecordBatch::try_new(
                std::sync::Arc::new(schema),
                vec![
                    std::sync::Arc::new(StringArray::from(vec!["view"])),
                    std::sync::Arc::new(Int64Array::from(vec![1000])),
                ],
            )
            .unwrap()
        };
        let bound = |names| {
            let mut handle = Handle::new(Kind::Prepared, "SELECT $1, $2".into(), &cx("alice"));
            handle.bind(&[batch(names)]).unwrap();
            handle.parameter_values().unwrap().unwrap()
        };
        let ParamValues::List(in_order) = bound(["0", "1"]) else {
            panic!("positional")
        };
        assert_eq!(in_order[0].value(), &ScalarValue::Utf8(Some("view".into())));
        let ParamValues::List(swapped) = bound(["$2", "$1"]) else {
            panic!("positional")
        };
        assert_eq!(swapped[0].value(), &ScalarValue::Int64(Some(1000)));
        let ParamValues::Map(named) = bound(["kind", "dwell"]) else {
            panic!("by name")
        };
        assert_eq!(named["dwell"].value(), &ScalarValue::Int64(Some(1000)));
        let two_rows = RecordBatch::try_new(
            batch(["0", "1"]).schema(),
            vec![
                std::sync::Arc::new(StringArray::from(vec!["a", "b"])),
                std::sync::Arc::new(Int64Array::from(vec![1, 2])),
            ],
        )
        .unwrap();
        let mut handle = Handle::new(Kind::Prepared, "SELECT $1, $2".into(), &cx("alice"));
        let refused = handle.bind(&[two_rows]).unwrap_err();
        assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    }
}
