//! Tests only: see `tests/e2e.rs` (run by `./local/test`).
