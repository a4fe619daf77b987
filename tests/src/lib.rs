//! Shared helpers live in tests/tests/util.rs; this crate only hosts integration tests.
