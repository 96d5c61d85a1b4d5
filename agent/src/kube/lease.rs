//! Leader election for the status writer with a coordination.k8s.io Lease:
//! the holder renews it every few seconds; another agent takes it over
//! only once it has expired. Exactly one agent hands out addresses.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, PostParams};
use kube::Client;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::error::KubeError;

/// Which Lease, and who this agent is.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    /// Namespace of the Lease (the agent's own).
    pub namespace: String,
    /// Lease name.
    pub name: String,
    /// This agent's identity (its node name).
    pub identity: String,
    /// How long a lease holds without renewal.
    pub duration: Duration,
}

/// What to do with the Lease as it stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseAction {
    /// Nobody holds it (or the holder let it expire): take it.
    Acquire,
    /// This agent holds it: renew.
    Renew,
    /// Someone else holds it.
    Follow,
}

/// Decides from the Lease's spec (`None`: no Lease yet).
pub fn decide(spec: Option<&LeaseSpec>, me: &str, now: Timestamp) -> LeaseAction {
    let Some(spec) = spec else {
        return LeaseAction::Acquire;
    };
    let holder = spec.holder_identity.as_deref().unwrap_or("");
    if holder == me {
        return LeaseAction::Renew;
    }
    let expires = spec.renew_time.as_ref().map(|t| {
        let secs = i64::from(spec.lease_duration_seconds.unwrap_or(0));
        t.0.saturating_add(SignedDuration::from_secs(secs))
            .unwrap_or(t.0)
    });
    match expires {
        Some(at) if at > now && !holder.is_empty() => LeaseAction::Follow,
        _ => LeaseAction::Acquire,
    }
}

/// Runs the election until aborted; `leader` says whether this agent holds
/// the Lease, and `changed` is woken whenever that flips.
pub fn spawn(
    client: Client,
    cfg: LeaseConfig,
    leader: Arc<AtomicBool>,
    changed: Arc<Notify>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let api: Api<Lease> = Api::namespaced(client, &cfg.namespace);
        // Renew well within the duration, so one slow round does not lose it.
        let period = cfg.duration / 3;
        loop {
            let holding = match round(&api, &cfg).await {
                Ok(h) => h,
                Err(e) => {
                    tracing::warn!(error = %e, "status writer election");
                    false
                }
            };
            if leader.swap(holding, Ordering::Relaxed) != holding {
                tracing::info!(lease = %format!("{}/{}", cfg.namespace, cfg.name), leader = holding, "status writer changed");
                changed.notify_one();
            }
            tokio::time::sleep(period).await;
        }
    })
}

/// One election round: whether this agent holds the Lease afterwards. A
/// conflict (someone else wrote it first) means it does not.
async fn round(api: &Api<Lease>, cfg: &LeaseConfig) -> Result<bool, KubeError> {
    let what = format!("Lease {}/{}", cfg.namespace, cfg.name);
    let current = api
        .get_opt(&cfg.name)
        .await
        .map_err(KubeError::api(format!("get {what}")))?;
    let now = Timestamp::now();
    let decision = decide(
        current.as_ref().and_then(|l| l.spec.as_ref()),
        &cfg.identity,
        now,
    );
    if decision == LeaseAction::Follow {
        return Ok(false);
    }
    let mut lease = current.clone().unwrap_or_else(|| Lease {
        metadata: ObjectMeta {
            name: Some(cfg.name.clone()),
            namespace: Some(cfg.namespace.clone()),
            ..ObjectMeta::default()
        },
        spec: None,
    });
    let mut spec = lease.spec.take().unwrap_or_default();
    if decision == LeaseAction::Acquire {
        let taken_over = spec
            .holder_identity
            .as_deref()
            .is_some_and(|h| !h.is_empty());
        spec.holder_identity = Some(cfg.identity.clone());
        spec.acquire_time = Some(MicroTime(now));
        if taken_over {
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
    }
    spec.renew_time = Some(MicroTime(now));
    spec.lease_duration_seconds = Some(cfg.duration.as_secs().max(1) as i32);
    lease.spec = Some(spec);
    let result = if current.is_some() {
        api.replace(&cfg.name, &PostParams::default(), &lease).await
    } else {
        api.create(&PostParams::default(), &lease).await
    };
    match result {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(KubeError::api(format!("write {what}"))(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: &str, renewed_secs_ago: i64, duration: i32, now: Timestamp) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            renew_time: Some(MicroTime(
                now.checked_sub(SignedDuration::from_secs(renewed_secs_ago))
                    .unwrap(),
            )),
            lease_duration_seconds: Some(duration),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn election_decisions() {
        let now = Timestamp::now();
        assert_eq!(decide(None, "node-a", now), LeaseAction::Acquire);
        assert_eq!(
            decide(Some(&spec("node-a", 3, 15, now)), "node-a", now),
            LeaseAction::Renew
        );
        assert_eq!(
            decide(Some(&spec("node-b", 3, 15, now)), "node-a", now),
            LeaseAction::Follow
        );
        assert_eq!(
            decide(Some(&spec("node-b", 20, 15, now)), "node-a", now),
            LeaseAction::Acquire,
            "an expired lease is taken over"
        );
        assert_eq!(
            decide(Some(&spec("", 1, 15, now)), "node-a", now),
            LeaseAction::Acquire,
            "a released lease is free"
        );
    }
}
