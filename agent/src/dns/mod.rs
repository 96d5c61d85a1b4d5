//! DNS proxy: answers ServiceEntry hosts with their VIPs, forwards the rest.
