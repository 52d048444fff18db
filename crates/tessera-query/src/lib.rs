//! tessera-query
