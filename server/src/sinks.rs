//! The subsystems hbd runs beside ingest (notifications, dynamic DNS and history, each a
//! crate of its own): started here from the config, handed to ingest as [`Sink`]s, given their
//! config sections on SIGHUP, and their API routes mounted here, so neither subsystem
//! knows the web framework or hbd's config.

use std::path::Path;
use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::web;
use anyhow::Result;

use crate::api::ApiError;
use crate::config::Config;
use crate::sink::{Emitter, Sink};

/// The running subsystems.
#[derive(Clone)]
pub struct Subsystems {
    pub notify: hbd_notify::Notify,
    pub dyndns: Arc<hbd_dyndns::DynDns>,
    /// Long-term history (remote_write out, PromQL back; docs/history.md).
    pub history: Arc<hbd_history::History>,
    /// Cluster mode (docs/cluster.md); `None` on a single server.
    pub cluster: Option<Arc<hbd_cluster::Cluster>>,
    /// Set to the server's state once it exists: other nodes' mutations reach it.
    pub fleet: crate::cluster::FleetSlot,
}

impl Subsystems {
    /// Starts every subsystem. Both always run: dynamic DNS idles without
    /// `dyndnshosts` (so a reload can add names), notifications without channels (the
    /// silences and the status work).
    /// `newest_event_ms`: the time of the journal's newest event before this start (what
    /// a cluster node missed while away came after it).
    pub fn start(
        config: &Config,
        data_dir: &Path,
        newest_event_ms: u64,
        emitter: Emitter,
    ) -> Result<Subsystems> {
        let dyndns = hbd_dyndns::start(&config.dyndns, data_dir, emitter.clone())?;
        let notify = hbd_notify::start(&config.notify, data_dir, emitter)?;
        let history = hbd_history::start(&config.history)?;
        let fleet = crate::cluster::FleetSlot::default();
        let cluster =
            crate::cluster::start(&config.cluster, &notify, fleet.clone(), newest_event_ms)?;
        Ok(Subsystems {
            notify,
            dyndns,
            history,
            cluster,
            fleet,
        })
    }

    /// Each subsystem as a sink, for ingest and status.
    pub fn sinks(&self) -> Vec<Arc<dyn Sink>> {
        let dyndns: Arc<dyn Sink> = match &self.cluster {
            // One node updates DNS: the leader.
            Some(c) => Arc::new(crate::cluster::LeaderOnly {
                inner: self.dyndns.clone(),
                cluster: c.clone(),
            }),
            None => self.dyndns.clone(),
        };
        let mut sinks: Vec<Arc<dyn Sink>> =
            vec![dyndns, Arc::new(self.notify.clone()), self.history.clone()];
        // Last: shut down after notifications, which claim through it until they stop.
        if let Some(c) = &self.cluster {
            sinks.push(Arc::new(crate::cluster::EventShare(c.clone())));
            sinks.push(Arc::new(crate::cluster::ClusterSink(c.clone())));
        }
        sinks
    }

    /// SIGHUP: each subsystem's section of `new`; what could not be applied.
    pub fn reload(&self, new: &Config) -> Vec<String> {
        let mut problems = Vec::new();
        if let Err(e) = self.dyndns.reload(&new.dyndns) {
            problems.push(format!("dyndns: {e}"));
        }
        if let Err(e) = self.notify.reload(&new.notify) {
            problems.push(format!("notify: {e}"));
        }
        match self.history.reload(&new.history) {
            Ok(restart) => problems.extend(restart.into_iter().map(|p| format!("history: {p}"))),
            Err(e) => problems.push(format!(
                "history: {e}; the running history_url settings kept"
            )),
        }
        problems
    }

    /// The subsystems' API routes.
    pub fn configure(&self, cfg: &mut web::ServiceConfig) {
        let dyndns = self.dyndns.clone();
        cfg.route(
            "/api/v1/dns",
            web::get().to(move || {
                let records = dyndns.records();
                async move {
                    match records {
                        Some(body) => Ok(actix_web::HttpResponse::Ok().json(body)),
                        None => Err(ApiError::new(
                            StatusCode::NOT_FOUND,
                            "dynamic DNS is not configured (dyndnshosts is empty)",
                        )),
                    }
                }
            }),
        );
        crate::notify_api::configure(cfg, self.notify.clone());
        crate::cluster::configure(cfg, crate::cluster::Handle(self.cluster.clone()));
        crate::dashboard::long_history::configure(cfg, self.history.clone());
    }
}
