//! What the page may name: namespaces, objects, steps and queues as Kubernetes spells them, checked before they go
//! into an API or archive path or a selector (a `..`, a `/` or a `,` is never forwarded).

use super::failure::Failure;
use axum::http::StatusCode;
use crew_core::lifecycle::resolve::{is_dns_label, is_dns_subdomain};

pub fn namespace(ns: &str) -> Result<&str, Failure> {
    checked(ns, is_dns_label(ns), "namespace")
}

pub fn object(name: &str) -> Result<&str, Failure> {
    checked(name, is_dns_subdomain(name), "name")
}

pub fn step(name: &str) -> Result<&str, Failure> {
    checked(name, is_dns_label(name), "step")
}

pub fn queue(name: &str) -> Result<&str, Failure> {
    checked(name, is_dns_subdomain(name), "queue")
}

fn checked<'a>(value: &'a str, valid: bool, what: &str) -> Result<&'a str, Failure> {
    if valid {
        Ok(value)
    } else {
        Err(Failure::new(
            StatusCode::BAD_REQUEST,
            format!("{what}: not a valid Kubernetes name"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_kubernetes_names_pass() {
        assert!(namespace("team-a").is_ok());
        assert!(object("nightly.2026-12-07").is_ok());
        for bad in ["..", "a/b", "a,b", "", "A", "a%2Fb", "-a", "a b"] {
            assert!(namespace(bad).is_err(), "{bad}");
            assert!(object(bad).is_err(), "{bad}");
            assert!(step(bad).is_err(), "{bad}");
        }
        assert!(step("a.b").is_err(), "a step is a label");
    }
}
