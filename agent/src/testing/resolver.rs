//! A resolver of fixed answers for the proxy's upstream names.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;

use crate::proxy::ResolveHost;

/// Answers the names it was given; every other name is not found.
#[derive(Debug, Default)]
pub struct StaticDns(HashMap<String, Vec<IpAddr>>);

impl StaticDns {
    /// Resolves nothing: every service of the test has static endpoints.
    pub fn none() -> Arc<Self> {
        Arc::default()
    }

    /// Answers each `(name, address)` pair given.
    pub fn with(names: &[(&str, &str)]) -> Arc<Self> {
        let mut answers: HashMap<String, Vec<IpAddr>> = HashMap::new();
        for (name, ip) in names {
            answers
                .entry(name.to_string())
                .or_default()
                .push(ip.parse().expect("an IP address"));
        }
        Arc::new(StaticDns(answers))
    }
}

impl ResolveHost for StaticDns {
    fn resolve<'a>(
        &'a self,
        host: &'a str,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send + 'a>> {
        let answer = self.0.get(host).cloned().ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, format!("no such host: {host}"))
        });
        Box::pin(async move { answer })
    }
}
