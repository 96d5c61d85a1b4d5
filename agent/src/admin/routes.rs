//! The admin endpoint's pages: `/metrics`, `/healthz/ready`, `/config_dump`.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use http::{header, Method, Response, StatusCode};
use http_body_util::Full;
use tokio::sync::watch;

use super::config_dump::ConfigDump;
use crate::config::snapshot::Snapshot;
use crate::metrics::{MetricsRegistry, CONTENT_TYPE};
use crate::workload::WorkloadSummary;

/// Lists the node's workloads for `/config_dump`.
pub type ListWorkloads = Box<dyn Fn() -> Vec<WorkloadSummary> + Send + Sync>;

/// What the pages read, handed over once the process is composed: config
/// loaded and (in the agent) the kernel programs attached.
pub struct AdminView {
    /// Everything `/metrics` shows.
    pub metrics: MetricsRegistry,
    /// The config in force.
    pub snapshots: watch::Receiver<Arc<Snapshot>>,
    /// The node's workloads; `None` in the standalone waypoint.
    pub workloads: Option<ListWorkloads>,
    /// The process's drain: not ready once it starts, as ztunnel, so that
    /// probes and load balancers stop sending new work.
    pub drain: crate::net::drain::Watch,
}

/// The admin endpoint's state: not ready until [`Admin::set_ready`].
#[derive(Default)]
pub struct Admin {
    view: OnceLock<AdminView>,
}

impl Admin {
    /// Marks the process ready; the pages read `view` from now on.
    pub fn set_ready(&self, view: AdminView) {
        if self.view.set(view).is_err() {
            tracing::warn!("admin endpoint was already ready");
        }
    }

    /// Whether [`Admin::set_ready`] was called.
    pub fn is_ready(&self) -> bool {
        self.view.get().is_some()
    }

    /// The page for `method` and `path`.
    pub fn respond(&self, method: &Method, path: &str) -> Response<Full<Bytes>> {
        if method != Method::GET && method != Method::HEAD {
            return text(StatusCode::METHOD_NOT_ALLOWED, "only GET\n");
        }
        let view = self.view.get();
        match (path, view) {
            ("/healthz/ready", Some(v)) if v.drain.is_draining() => {
                text(StatusCode::SERVICE_UNAVAILABLE, "draining\n")
            }
            ("/healthz/ready", Some(_)) => text(StatusCode::OK, "ready\n"),
            ("/healthz/ready" | "/metrics" | "/config_dump", None) => {
                text(StatusCode::SERVICE_UNAVAILABLE, "starting\n")
            }
            ("/metrics", Some(v)) => page(StatusCode::OK, CONTENT_TYPE, v.metrics.encode()),
            ("/config_dump", Some(v)) => config_dump(v),
            _ => text(
                StatusCode::NOT_FOUND,
                "pages: /metrics /healthz/ready /config_dump\n",
            ),
        }
    }
}

fn config_dump(view: &AdminView) -> Response<Full<Bytes>> {
    let snapshot = view.snapshots.borrow().clone();
    let dump = ConfigDump::of(&snapshot, view.workloads.as_ref().map(|list| list()));
    match serde_json::to_string_pretty(&dump) {
        Ok(json) => page(StatusCode::OK, "application/json", json + "\n"),
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e}\n")),
    }
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    page(status, "text/plain; charset=utf-8", body.to_string())
}

fn page(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = header::HeaderValue::from_str(content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;
    use crate::metrics::Readings;
    use crate::testing::fixtures::{self, ServiceFixture};

    /// A waypoint's readings: a config generation, nothing else.
    struct Generation(u64);

    impl Readings for Generation {
        fn kernel_verdicts(&self) -> Option<Vec<(&'static str, u64)>> {
            None
        }
        fn dns_queries(&self) -> Option<[(&'static str, u64); 4]> {
            None
        }
        fn config_generation(&self) -> u64 {
            self.0
        }
        fn workloads_enrolled(&self) -> Option<u64> {
            None
        }
        fn authz(&self) -> crate::authz::AuthzCounts {
            Default::default()
        }
    }

    fn snapshot() -> Snapshot {
        let httpbin = ServiceFixture::new("httpbin.org")
            .vip("240.240.0.2")
            .bound()
            .build();
        Snapshot {
            generation: 4,
            ..fixtures::snapshot([httpbin])
        }
    }

    fn admin(ready: bool) -> Admin {
        admin_draining_with(ready, crate::net::drain::Watch::default())
    }

    fn admin_draining_with(ready: bool, drain: crate::net::drain::Watch) -> Admin {
        let admin = Admin::default();
        if ready {
            let (tx, rx) = watch::channel(Arc::new(snapshot()));
            drop(tx);
            let generation = Generation(rx.borrow().generation);
            admin.set_ready(AdminView {
                metrics: MetricsRegistry::new(|_| {}, generation),
                snapshots: rx,
                workloads: Some(Box::new(Vec::new)),
                drain,
            });
        }
        admin
    }

    #[tokio::test]
    async fn not_ready_once_the_drain_starts() {
        let (trigger, watch) = crate::net::drain::channel();
        let admin = admin_draining_with(true, watch);
        assert_eq!(
            admin.respond(&Method::GET, "/healthz/ready").status(),
            StatusCode::OK
        );
        trigger.drain(std::time::Duration::ZERO).await;
        let ready = admin.respond(&Method::GET, "/healthz/ready");
        assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body(ready).await, "draining\n");
        // The other pages stay up for the drain's last scrapes.
        assert_eq!(
            admin.respond(&Method::GET, "/metrics").status(),
            StatusCode::OK
        );
    }

    async fn body(response: Response<Full<Bytes>>) -> String {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn not_ready_until_composed() {
        let admin = admin(false);
        for path in ["/healthz/ready", "/metrics", "/config_dump"] {
            assert_eq!(
                admin.respond(&Method::GET, path).status(),
                StatusCode::SERVICE_UNAVAILABLE,
                "{path}"
            );
        }
        let admin = self::admin(true);
        let ready = admin.respond(&Method::GET, "/healthz/ready");
        assert_eq!(ready.status(), StatusCode::OK);
        assert_eq!(body(ready).await, "ready\n");
    }

    #[tokio::test]
    async fn metrics_page_is_openmetrics_text() {
        let admin = admin(true);
        let page = admin.respond(&Method::GET, "/metrics");
        assert_eq!(page.status(), StatusCode::OK);
        assert_eq!(page.headers()[header::CONTENT_TYPE], CONTENT_TYPE);
        let text = body(page).await;
        assert!(text.contains("egret_config_generation 4\n"), "{text}");
        assert!(
            text.contains("# TYPE egret_authz_decisions counter\n"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[tokio::test]
    async fn config_dump_lists_services_and_waypoints() {
        let admin = admin(true);
        let page = admin.respond(&Method::GET, "/config_dump");
        assert_eq!(page.status(), StatusCode::OK);
        let dump: serde_json::Value = serde_json::from_str(&body(page).await).unwrap();
        assert_eq!(dump["generation"], 4);
        let service = &dump["services"][0];
        assert_eq!(service["host"], "httpbin.org");
        assert_eq!(service["vips"][0], "240.240.0.2");
        assert_eq!(service["ports"][0]["protocol"], "HTTP");
        assert_eq!(service["resolution"], "DNS");
        assert_eq!(service["waypoint_binding"], "bound");
        assert_eq!(service["waypoint"], "istio-egress/egress-waypoint");
        assert_eq!(dump["waypoints"][0]["name"], "istio-egress/egress-waypoint");
        assert_eq!(dump["waypoints"][0]["address"], serde_json::Value::Null);
        assert_eq!(dump["authorization_policies"], 0);
        assert_eq!(dump["virtual_services"], 0);
        assert_eq!(dump["workloads"], serde_json::json!([]));
    }

    #[test]
    fn other_pages_and_methods() {
        let admin = admin(true);
        assert_eq!(
            admin.respond(&Method::GET, "/quitquitquit").status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            admin.respond(&Method::POST, "/metrics").status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
    }
}
