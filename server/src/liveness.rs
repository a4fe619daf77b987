//! The liveness thread: sleeps until the earliest deadline (at most 250 ms, to notice new
//! earlier ones) or until shutdown, then lets the registry turn overdue hosts DOWN.
//!
//! Steps of the system clock are handled where the clock is read (`crate::clock`).

use std::thread::JoinHandle;
use std::time::Duration;

use crate::shutdown::Shutdown;
use crate::state::{now_ms, Shared};

const MAX_SLEEP_MS: u64 = 250;

pub fn spawn(state: Shared, shutdown: Shutdown) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("liveness".into())
        .spawn(move || {
            let mut events = Vec::new();
            loop {
                let now = now_ms();
                let next = state.registry().next_deadline();
                let wait = next.map_or(MAX_SLEEP_MS, |d| d.saturating_sub(now).min(MAX_SLEEP_MS));
                if wait > 0 {
                    if shutdown.wait_timeout(Duration::from_millis(wait)) {
                        break;
                    }
                    continue;
                }
                // Read the clock before locking: the lock applies any step it saw.
                let now = now_ms();
                state.registry().tick(now, &mut events);
                if !events.is_empty() {
                    for e in &events {
                        state.send_live("host", &e.host);
                    }
                    state.publish(&mut events);
                }
            }
        })
}
