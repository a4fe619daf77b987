//! End-to-end tests of hbd: the real server started in-process on port 0 (its library
//! `server::start`), fed by the real `hbc` binary or by crafted datagrams, checked over
//! its real HTTP API, WebSocket and `/metrics`.

mod api;
mod bounded;
mod e2e;
mod ingest;
mod journal;
mod limits;
mod util;
mod websocket;
