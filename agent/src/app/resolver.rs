//! Upstream names (`resolution: DNS` hosts and endpoints) resolved through
//! the agent's DNS resolver.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;

use crate::dns::Resolver;
use crate::proxy::ResolveHost;

/// The proxy's [`ResolveHost`] over a [`Resolver`].
pub struct UpstreamResolver(pub Arc<Resolver>);

impl ResolveHost for UpstreamResolver {
    fn resolve<'a>(
        &'a self,
        host: &'a str,
    ) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send + 'a>> {
        Box::pin(async move {
            self.0
                .lookup_ip(host)
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))
        })
    }
}
