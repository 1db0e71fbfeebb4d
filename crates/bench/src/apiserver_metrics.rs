//! kube-apiserver's `apiserver_request_total`, summed by (verb, group, resource, subresource) and diffed between
//! two scrapes of `/metrics`.

use super::prom::{Sample, samples};
use serde::Serialize;
use std::collections::BTreeMap;

/// The counter read from kube-apiserver.
pub const REQUEST_TOTAL: &str = "apiserver_request_total";

/// What a request was: verb (as the API server labels it, e.g. `POST`, `APPLY`, `LIST`) and resource.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct RequestKey {
    /// `verb` label, upper case (`GET`, `LIST`, `WATCH`, `POST`, `PUT`, `PATCH`, `APPLY`, `DELETE`, ...).
    pub verb: String,
    /// API group (`""` for the core group).
    pub group: String,
    /// Resource, e.g. `jobs`.
    pub resource: String,
    /// Subresource, e.g. `status`, or `""`.
    pub subresource: String,
}

impl RequestKey {
    /// `jobs.batch/status`-style name of the resource (core group without suffix).
    pub fn resource_path(&self) -> String {
        let mut out = self.resource.clone();
        if !self.group.is_empty() {
            out.push('.');
            out.push_str(&self.group);
        }
        if !self.subresource.is_empty() {
            out.push('/');
            out.push_str(&self.subresource);
        }
        out
    }

    /// Whether the verb changes state.
    pub fn is_write(&self) -> bool {
        verb_class(&self.verb) == VerbClass::Write
    }

    /// Whether the verb only reads.
    pub fn is_read(&self) -> bool {
        verb_class(&self.verb) == VerbClass::Read
    }
}

/// Reads, writes, or neither (e.g. `CONNECT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerbClass {
    /// GET, LIST, WATCH, WATCHLIST.
    Read,
    /// POST/CREATE, PUT/UPDATE, PATCH, APPLY, DELETE, DELETECOLLECTION.
    Write,
    /// Anything else.
    Other,
}

/// Classifies an `apiserver_request_total` verb label (case-insensitive).
pub fn verb_class(verb: &str) -> VerbClass {
    match verb.to_ascii_uppercase().as_str() {
        "GET" | "LIST" | "WATCH" | "WATCHLIST" => VerbClass::Read,
        "POST" | "CREATE" | "PUT" | "UPDATE" | "PATCH" | "APPLY" | "DELETE"
        | "DELETECOLLECTION" => VerbClass::Write,
        _ => VerbClass::Other,
    }
}

/// Request counts by key (and, separately, non-2xx/3xx responses by key and code).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RequestCounts {
    /// Requests by key, summed over response codes and other labels.
    pub by_key: BTreeMap<RequestKey, f64>,
    /// Responses with code >= 400, by key and code.
    pub errors: BTreeMap<(RequestKey, String), f64>,
}

/// Sums `apiserver_request_total` of a scrape by key.
pub fn request_counts(all: &[Sample]) -> RequestCounts {
    let mut counts = RequestCounts::default();
    for s in samples(all, REQUEST_TOTAL) {
        let key = RequestKey {
            verb: s.label("verb").to_ascii_uppercase(),
            group: s.label("group").to_string(),
            resource: s.label("resource").to_string(),
            subresource: s.label("subresource").to_string(),
        };
        let code = s.label("code");
        if code.parse::<u16>().is_ok_and(|c| c >= 400) {
            *counts
                .errors
                .entry((key.clone(), code.to_string()))
                .or_default() += s.value;
        }
        *counts.by_key.entry(key).or_default() += s.value;
    }
    counts
}

/// One row of a diff.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RequestDelta {
    /// Verb label.
    pub verb: String,
    /// API group.
    pub group: String,
    /// Resource.
    pub resource: String,
    /// Subresource.
    pub subresource: String,
    /// Response code (error rows only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Requests between the two scrapes.
    pub count: u64,
}

impl RequestDelta {
    fn new(key: &RequestKey, code: Option<String>, count: f64) -> Self {
        RequestDelta {
            verb: key.verb.clone(),
            group: key.group.clone(),
            resource: key.resource.clone(),
            subresource: key.subresource.clone(),
            code,
            count: count.max(0.0).round() as u64,
        }
    }

    /// The key of this row.
    pub fn key(&self) -> RequestKey {
        RequestKey {
            verb: self.verb.clone(),
            group: self.group.clone(),
            resource: self.resource.clone(),
            subresource: self.subresource.clone(),
        }
    }
}

/// What happened between two scrapes: positive differences only, sorted by key.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RequestDiff {
    /// Requests by (verb, group, resource, subresource).
    pub requests: Vec<RequestDelta>,
    /// Responses with code >= 400 by (verb, group, resource, subresource, code).
    pub errors: Vec<RequestDelta>,
}

impl RequestDiff {
    /// Requests whose verb writes.
    pub fn writes(&self) -> u64 {
        self.requests
            .iter()
            .filter(|r| r.key().is_write())
            .map(|r| r.count)
            .sum()
    }

    /// Requests whose verb reads.
    pub fn reads(&self) -> u64 {
        self.requests
            .iter()
            .filter(|r| r.key().is_read())
            .map(|r| r.count)
            .sum()
    }
}

/// `after - before`, keeping only keys that grew.
pub fn diff(before: &RequestCounts, after: &RequestCounts) -> RequestDiff {
    let requests = after
        .by_key
        .iter()
        .filter_map(|(key, a)| {
            let d = a - before.by_key.get(key).copied().unwrap_or(0.0);
            (d >= 0.5).then(|| RequestDelta::new(key, None, d))
        })
        .collect();
    let errors = after
        .errors
        .iter()
        .filter_map(|((key, code), a)| {
            let d = a - before
                .errors
                .get(&(key.clone(), code.clone()))
                .copied()
                .unwrap_or(0.0);
            (d >= 0.5).then(|| RequestDelta::new(key, Some(code.clone()), d))
        })
        .collect();
    RequestDiff { requests, errors }
}

#[cfg(test)]
mod tests {
    use super::super::prom::parse;
    use super::*;

    fn line(verb: &str, group: &str, resource: &str, sub: &str, code: &str, v: u64) -> String {
        format!(
            "apiserver_request_total{{code=\"{code}\",component=\"apiserver\",contentType=\"application/json\",dry_run=\"\",group=\"{group}\",resource=\"{resource}\",scope=\"resource\",subresource=\"{sub}\",verb=\"{verb}\",version=\"v1\"}} {v}\n"
        )
    }

    #[test]
    fn sums_over_codes_and_diffs_by_verb_and_resource() {
        let before = format!(
            "# TYPE apiserver_request_total counter\n{}{}{}",
            line("POST", "batch", "jobs", "", "201", 10),
            line("LIST", "batch", "jobs", "", "200", 2),
            line("GET", "", "pods", "", "200", 7),
        );
        let after = format!(
            "{}{}{}{}{}{}other_metric 5\n",
            line("POST", "batch", "jobs", "", "201", 110),
            line("POST", "batch", "jobs", "", "409", 3),
            line("LIST", "batch", "jobs", "", "200", 2),
            line("GET", "", "pods", "", "200", 7),
            line("PUT", "batch", "jobs", "status", "200", 200),
            line("apply", "crew.dev", "crewexecutions", "status", "200", 40),
        );
        let d = diff(
            &request_counts(&parse(&before)),
            &request_counts(&parse(&after)),
        );
        let rows: Vec<(String, String, u64)> = d
            .requests
            .iter()
            .map(|r| (r.verb.clone(), r.key().resource_path(), r.count))
            .collect();
        assert_eq!(
            rows,
            [
                (
                    "APPLY".to_string(),
                    "crewexecutions.crew.dev/status".to_string(),
                    40
                ),
                ("POST".to_string(), "jobs.batch".to_string(), 103),
                ("PUT".to_string(), "jobs.batch/status".to_string(), 200),
            ]
        );
        assert_eq!(d.writes(), 343);
        assert_eq!(d.reads(), 0);
        assert_eq!(d.errors.len(), 1);
        assert_eq!(d.errors[0].code.as_deref(), Some("409"));
        assert_eq!(d.errors[0].count, 3);
    }

    #[test]
    fn classifies_verbs() {
        for v in ["GET", "list", "WATCH", "WATCHLIST"] {
            assert_eq!(verb_class(v), VerbClass::Read, "{v}");
        }
        for v in [
            "POST",
            "PUT",
            "PATCH",
            "APPLY",
            "DELETE",
            "DELETECOLLECTION",
            "create",
        ] {
            assert_eq!(verb_class(v), VerbClass::Write, "{v}");
        }
        assert_eq!(verb_class("CONNECT"), VerbClass::Other);
    }

    #[test]
    fn core_group_has_no_suffix() {
        let key = RequestKey {
            verb: "POST".into(),
            group: String::new(),
            resource: "pods".into(),
            subresource: "status".into(),
        };
        assert_eq!(key.resource_path(), "pods/status");
    }
}
