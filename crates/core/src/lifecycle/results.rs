//! Step results a worker posts (`POST /v1/result`): each step's kept in one ConfigMap that the execution owns
//! (garbage-collected with it), never in `.status`. The posting attempt's Job is annotated with what it is
//! (ConfigMap, size, SHA-256, content type, a 1 KiB preview): the operator already watches its Jobs, so it learns
//! of every result, across restarts, without reading (or being allowed to read) any ConfigMap, and the attempt a
//! result belongs to is the Job's own.
//!
//! One ConfigMap per step, not per execution: a ConfigMap holds at most 1 MiB, and a step's result may be 1 MiB
//! itself; three such steps could never share one. One per step (not per attempt): a later attempt's post
//! replaces the earlier attempt's, so a run keeps at most one result object per step whatever its retries.

use crate::lifecycle::names::{MAX_OBJECT_NAME, shorten, stable_hash};
use crate::lifecycle::steps::TRUNCATION_MARKER;
use crew_api::{ResultRef, StepStatus};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Largest result a worker may post.
pub const MAX_POSTED_BYTES: usize = 1024 * 1024;
/// Largest preview of a posted result kept in the step's status (and a result small enough to be substituted
/// into a later step's arguments is one that fits in it).
pub const PREVIEW_BYTES: usize = 1024;
/// The ConfigMap key holding the result.
pub const RESULT_KEY: &str = "result";
/// Label (value `true`) on result ConfigMaps.
pub const RESULT_LABEL: &str = "crew.dev/result";
/// Annotation (on the attempt's Job, and on the ConfigMap): the ConfigMap holding the result.
pub const CONFIG_MAP_ANNOTATION: &str = "crew.dev/result-config-map";
/// Annotation: its size in bytes.
pub const SIZE_ANNOTATION: &str = "crew.dev/result-size";
/// Annotation: its SHA-256 (hex).
pub const SHA256_ANNOTATION: &str = "crew.dev/result-sha256";
/// Annotation: its content type.
pub const CONTENT_TYPE_ANNOTATION: &str = "crew.dev/result-content-type";
/// Annotation: its first [`PREVIEW_BYTES`] bytes (cut with a marker).
pub const PREVIEW_ANNOTATION: &str = "crew.dev/result-preview";

/// The two content types a result may have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContentType {
    /// `application/json`: the body must parse as JSON.
    Json,
    /// `text/plain`: any UTF-8 text.
    Text,
}

impl ContentType {
    /// The media type.
    pub fn as_str(self) -> &'static str {
        match self {
            ContentType::Json => "application/json",
            ContentType::Text => "text/plain",
        }
    }
}

/// Why a posted result is refused (each has its own HTTP answer).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResultRefused {
    /// 413.
    #[error("the result is {0} bytes; at most {MAX_POSTED_BYTES} (1 MiB) are taken")]
    TooLarge(usize),
    /// 415.
    #[error("Content-Type {0:?}: send application/json or text/plain")]
    UnsupportedType(String),
    /// 400.
    #[error("the result is not UTF-8 text")]
    NotText,
    /// 400.
    #[error("Content-Type says JSON, but the body is not: {0}")]
    NotJson(String),
}

/// Checks a posted body against its `Content-Type` header (absent: `text/plain`).
pub fn check(body: &[u8], content_type: Option<&str>) -> Result<ContentType, ResultRefused> {
    if body.len() > MAX_POSTED_BYTES {
        return Err(ResultRefused::TooLarge(body.len()));
    }
    let media = content_type
        .map(|c| {
            c.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_else(|| "text/plain".into());
    let kind = match media.as_str() {
        "application/json" => ContentType::Json,
        "text/plain" => ContentType::Text,
        _ => {
            return Err(ResultRefused::UnsupportedType(
                content_type.unwrap_or_default().to_string(),
            ));
        }
    };
    if std::str::from_utf8(body).is_err() {
        return Err(ResultRefused::NotText);
    }
    if kind == ContentType::Json
        && let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(body)
    {
        return Err(ResultRefused::NotJson(e.to_string()));
    }
    Ok(kind)
}

/// A result a step attempt's worker posted, as its ConfigMap's annotations describe it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PostedResult {
    /// The step.
    pub step: String,
    /// The attempt that posted it.
    pub attempt: u32,
    /// The ConfigMap holding it.
    pub config_map: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-256 (hex).
    pub sha256: String,
    /// Its content type.
    pub content_type: String,
    /// Its first [`PREVIEW_BYTES`] bytes, cut with a marker.
    pub preview: String,
}

impl PostedResult {
    /// What `body` (already [`check`]ed, so UTF-8) posted by `step`'s attempt `attempt` is, kept in `config_map`.
    pub fn of(
        body: &str,
        kind: ContentType,
        step: &str,
        attempt: u32,
        config_map: String,
    ) -> PostedResult {
        PostedResult {
            step: step.to_string(),
            attempt,
            config_map,
            size: body.len() as u64,
            sha256: sha256_hex(body.as_bytes()),
            content_type: kind.as_str().to_string(),
            preview: preview(body),
        }
    }

    /// The annotations that describe it (on the attempt's Job and on its ConfigMap).
    pub fn annotations(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (CONFIG_MAP_ANNOTATION.to_string(), self.config_map.clone()),
            (SIZE_ANNOTATION.to_string(), self.size.to_string()),
            (SHA256_ANNOTATION.to_string(), self.sha256.clone()),
            (
                CONTENT_TYPE_ANNOTATION.to_string(),
                self.content_type.clone(),
            ),
            (PREVIEW_ANNOTATION.to_string(), self.preview.clone()),
        ])
    }

    /// The result that `step`'s attempt `attempt` posted, as its Job's `annotations` describe it (None: it posted
    /// none).
    pub fn from_annotations(
        step: &str,
        attempt: u32,
        annotations: &BTreeMap<String, String>,
    ) -> Option<PostedResult> {
        let get = |key: &str| annotations.get(key).cloned();
        Some(PostedResult {
            step: step.to_string(),
            attempt,
            config_map: get(CONFIG_MAP_ANNOTATION)?,
            size: get(SIZE_ANNOTATION)?.parse().ok()?,
            sha256: get(SHA256_ANNOTATION)?,
            content_type: get(CONTENT_TYPE_ANNOTATION)?,
            preview: get(PREVIEW_ANNOTATION).unwrap_or_default(),
        })
    }

    /// Where the step's status says it is.
    pub fn reference(&self) -> ResultRef {
        ResultRef {
            config_map: self.config_map.clone(),
            size: self.size,
            sha256: self.sha256.clone(),
            content_type: self.content_type.clone(),
        }
    }

    /// Whether the preview is the whole result.
    pub fn is_whole(&self) -> bool {
        self.size as usize <= PREVIEW_BYTES
    }
}

/// The first [`PREVIEW_BYTES`] bytes of `text` (on a character boundary), with a marker when cut.
pub fn preview(text: &str) -> String {
    if text.len() <= PREVIEW_BYTES {
        return text.to_string();
    }
    let kept = super::text::prefix_within(text, PREVIEW_BYTES - TRUNCATION_MARKER.len());
    format!("{kept}{TRUNCATION_MARKER}")
}

/// SHA-256 of `bytes` as 64 lower-case hex digits.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Name of the ConfigMap holding step `step`'s result of execution `execution` (UID `uid`):
/// `<execution>-result-<hash of UID and step>`, so that each execution and step has its own, whatever their
/// lengths, and an earlier execution of the same name awaiting garbage collection never shares it.
pub fn result_config_map_name(execution: &str, uid: &str, step: &str) -> String {
    let suffix = format!("-{}", stable_hash(&format!("{uid}/{step}")));
    shorten(
        &format!("{execution}-result"),
        MAX_OBJECT_NAME - suffix.len(),
    ) + &suffix
}

/// Where a later step's worker finds an earlier step's result: in the step's result ConfigMap (posted), or inline
/// (its termination message, handed over through the pod's annotations).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kept {
    /// The name of the ConfigMap holding it (key [`RESULT_KEY`]).
    ConfigMap(String),
    /// The text itself.
    Inline(String),
}

/// An earlier step's result, as a later step's worker gets it (the file `/crew/results/<step>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EarlierResult {
    /// The earlier step.
    pub step: String,
    /// Where it is.
    pub kept: Kept,
}

/// Most bytes of termination-message results handed to one worker inline (pod annotations hold 256 KiB in all).
pub const INLINE_BUDGET: usize = 128 * 1024;

/// The results of the steps before the current one (`earlier`, in order), for its worker; or why they cannot all
/// be handed over.
pub fn earlier_results(earlier: &[StepStatus]) -> Result<Vec<EarlierResult>, String> {
    let mut inline = 0;
    let mut results = Vec::new();
    for step in earlier {
        let kept = match (&step.result_ref, &step.result) {
            (Some(reference), _) => Kept::ConfigMap(reference.config_map.clone()),
            (None, Some(text)) => {
                inline += text.len();
                Kept::Inline(text.clone())
            }
            (None, None) => continue,
        };
        results.push(EarlierResult {
            step: step.name.clone(),
            kept,
        });
    }
    if inline > INLINE_BUDGET {
        return Err(format!(
            "the earlier steps' termination-message results total {inline} bytes, over the {INLINE_BUDGET} that \
             can be handed to a worker inline: have those steps post their results (POST /v1/result)"
        ));
    }
    Ok(results)
}

/// A reference to an earlier step's result in a step's `args` or `env`: `$(steps.<step>.result)`, or
/// `$(steps.<step>.result.<field>)` for a field of a JSON result (dotted for nested objects).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    /// The step named.
    pub step: String,
    /// The field path, if any.
    pub field: Option<String>,
}

/// Every result reference in `text`, in order.
pub fn references(text: &str) -> Vec<(std::ops::Range<usize>, Reference)> {
    const OPEN: &str = "$(steps.";
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(start) = text[from..].find(OPEN).map(|i| from + i) {
        let body_start = start + OPEN.len();
        let Some(end) = text[body_start..].find(')').map(|i| body_start + i) else {
            break;
        };
        let body = &text[body_start..end];
        if let Some((step, rest)) = body.split_once(".result")
            && !step.is_empty()
            && (rest.is_empty() || rest.starts_with('.'))
        {
            let field = rest.strip_prefix('.').filter(|f| !f.is_empty());
            found.push((
                start..end + 1,
                Reference {
                    step: step.to_string(),
                    field: field.map(str::to_string),
                },
            ));
        }
        from = end + 1;
    }
    found
}

/// `text` with every result reference replaced by the result it names, from the statuses of the steps before
/// (`earlier`). A result is substituted only when the status holds it whole: a posted result of up to
/// [`PREVIEW_BYTES`], or a termination message that was not cut.
pub fn substitute(text: &str, earlier: &[StepStatus]) -> Result<String, String> {
    let found = references(text);
    if found.is_empty() {
        return Ok(text.to_string());
    }
    let mut out = String::new();
    let mut last = 0;
    for (range, reference) in found {
        out.push_str(&text[last..range.start]);
        out.push_str(&resolve_reference(&reference, earlier)?);
        last = range.end;
    }
    out.push_str(&text[last..]);
    Ok(out)
}

fn resolve_reference(reference: &Reference, earlier: &[StepStatus]) -> Result<String, String> {
    let shown = || match &reference.field {
        Some(field) => format!("$(steps.{}.result.{field})", reference.step),
        None => format!("$(steps.{}.result)", reference.step),
    };
    let step = earlier
        .iter()
        .find(|s| s.name == reference.step)
        .ok_or_else(|| {
            format!(
                "{}: no step {} ran before this one",
                shown(),
                reference.step
            )
        })?;
    let whole = match (&step.result_ref, &step.result) {
        (Some(r), Some(text)) if r.size as usize <= PREVIEW_BYTES => text.clone(),
        (Some(r), _) => {
            return Err(format!(
                "{}: the result of step {} is {} bytes; at most {PREVIEW_BYTES} are substituted (read the file \
                 /crew/results/{} instead)",
                shown(),
                step.name,
                r.size,
                step.name
            ));
        }
        (None, Some(text)) if !text.ends_with(TRUNCATION_MARKER) => text.clone(),
        (None, Some(_)) => {
            return Err(format!(
                "{}: the termination message of step {} was cut; post the result instead",
                shown(),
                step.name
            ));
        }
        (None, None) => {
            return Err(format!("{}: step {} has no result", shown(), step.name));
        }
    };
    let Some(field) = &reference.field else {
        return Ok(whole);
    };
    let json: serde_json::Value = serde_json::from_str(&whole).map_err(|e| {
        format!(
            "{}: the result of step {} is not JSON ({e})",
            shown(),
            step.name
        )
    })?;
    let value = field
        .split('.')
        .try_fold(&json, |value, key| value.get(key))
        .ok_or_else(|| {
            format!(
                "{}: the result of step {} has no field {field}",
                shown(),
                step.name
            )
        })?;
    Ok(match value {
        serde_json::Value::String(text) => text.clone(),
        other => other.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn done(name: &str, result: Option<&str>, posted_size: Option<u64>) -> StepStatus {
        StepStatus {
            name: name.into(),
            phase: crew_api::StepPhase::Succeeded,
            attempt: 1,
            result: result.map(str::to_string),
            result_ref: posted_size.map(|size| ResultRef {
                config_map: format!("cm-{name}"),
                size,
                sha256: "0".repeat(64),
                content_type: "application/json".into(),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn references_are_found_with_their_fields() {
        let found = references(
            "a $(steps.plan.result) b $(steps.plan.result.topic.name) $(steps.x) $(other)",
        );
        let refs: Vec<Reference> = found.into_iter().map(|(_, r)| r).collect();
        assert_eq!(
            refs,
            vec![
                Reference {
                    step: "plan".into(),
                    field: None
                },
                Reference {
                    step: "plan".into(),
                    field: Some("topic.name".into())
                },
            ]
        );
    }

    #[test]
    fn substitution_takes_whole_results_and_json_fields() {
        let earlier = [
            done(
                "plan",
                Some(r#"{"topic": {"name": "tides"}, "n": 3}"#),
                Some(40),
            ),
            done("note", Some("plain words"), None),
        ];
        assert_eq!(
            substitute(
                "--topic=$(steps.plan.result.topic.name) --n=$(steps.plan.result.n)",
                &earlier
            ),
            Ok("--topic=tides --n=3".to_string())
        );
        assert_eq!(
            substitute("$(steps.note.result)!", &earlier),
            Ok("plain words!".to_string())
        );
        assert_eq!(
            substitute("no references", &earlier),
            Ok("no references".to_string())
        );
        let unknown = substitute("$(steps.later.result)", &earlier).unwrap_err();
        assert!(unknown.contains("no step later ran before"), "{unknown}");
        let field = substitute("$(steps.plan.result.missing)", &earlier).unwrap_err();
        assert!(field.contains("no field missing"), "{field}");
        let not_json = substitute("$(steps.note.result.x)", &earlier).unwrap_err();
        assert!(not_json.contains("not JSON"), "{not_json}");
    }

    #[test]
    fn a_result_not_whole_in_the_status_is_not_substituted() {
        let big = done("big", Some("preview"), Some(5000));
        let refused = substitute("$(steps.big.result)", &[big]).unwrap_err();
        assert!(
            refused.contains("5000 bytes") && refused.contains("/crew/results/big"),
            "{refused}"
        );
        let cut = done("cut", Some(&format!("abc{TRUNCATION_MARKER}")), None);
        assert!(
            substitute("$(steps.cut.result)", &[cut])
                .unwrap_err()
                .contains("was cut")
        );
    }

    #[test]
    fn earlier_results_say_where_each_is_and_keep_inline_ones_bounded() {
        let earlier = [
            done("posted", Some("{}"), Some(2)),
            done("message", Some("text"), None),
            done("silent", None, None),
        ];
        assert_eq!(
            earlier_results(&earlier),
            Ok(vec![
                EarlierResult {
                    step: "posted".into(),
                    kept: Kept::ConfigMap("cm-posted".into())
                },
                EarlierResult {
                    step: "message".into(),
                    kept: Kept::Inline("text".into())
                },
            ])
        );
        let many: Vec<StepStatus> = (0..40)
            .map(|i| done(&format!("s{i}"), Some(&"x".repeat(4000)), None))
            .collect();
        assert!(earlier_results(&many).unwrap_err().contains("over the"));
    }

    #[test]
    fn the_content_type_decides_what_is_checked() {
        assert_eq!(
            check(b"{\"a\": 1}", Some("application/json")),
            Ok(ContentType::Json)
        );
        assert_eq!(
            check(b"{\"a\": 1}", Some("Application/JSON; charset=utf-8")),
            Ok(ContentType::Json)
        );
        assert_eq!(check(b"plain words", None), Ok(ContentType::Text));
        assert_eq!(
            check(b"not {json", Some("text/plain")),
            Ok(ContentType::Text)
        );
        assert!(matches!(
            check(b"not {json", Some("application/json")),
            Err(ResultRefused::NotJson(_))
        ));
        assert!(matches!(
            check(b"<x/>", Some("application/xml")),
            Err(ResultRefused::UnsupportedType(_))
        ));
        assert_eq!(check(&[0xff, 0xfe], None), Err(ResultRefused::NotText));
        let big = vec![b'a'; MAX_POSTED_BYTES + 1];
        assert_eq!(
            check(&big, None),
            Err(ResultRefused::TooLarge(MAX_POSTED_BYTES + 1))
        );
        assert!(check(&big[..MAX_POSTED_BYTES], None).is_ok());
    }

    #[test]
    fn annotations_describe_a_result_both_ways() {
        let body = "x".repeat(3000);
        let posted = PostedResult::of(&body, ContentType::Text, "research", 2, "cm".into());
        assert_eq!(posted.size, 3000);
        assert_eq!(posted.sha256.len(), 64);
        assert!(posted.preview.len() <= PREVIEW_BYTES);
        assert!(posted.preview.ends_with(TRUNCATION_MARKER));
        assert!(!posted.is_whole());
        let back = PostedResult::from_annotations("research", 2, &posted.annotations());
        assert_eq!(back, Some(posted));
        let small = PostedResult::of("{}", ContentType::Json, "s", 1, "cm".into());
        assert!(small.is_whole());
        assert_eq!(
            PostedResult::from_annotations("s", 1, &BTreeMap::new()),
            None,
            "a Job without the annotations posted no result"
        );
    }

    #[test]
    fn the_digest_is_sha256() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn result_names_are_per_execution_uid_and_step_and_always_legal() {
        let a = result_config_map_name("report", "uid-1", "research");
        assert!(a.starts_with("report-result-"), "{a}");
        assert_ne!(a, result_config_map_name("report", "uid-2", "research"));
        assert_ne!(a, result_config_map_name("report", "uid-1", "write"));
        let long = result_config_map_name(&"n".repeat(253), "uid", &"s".repeat(63));
        assert!(long.len() <= MAX_OBJECT_NAME, "{}", long.len());
    }

    proptest! {
        #[test]
        fn previews_never_exceed_their_bound(text in ".{0,1500}") {
            let cut = preview(&text);
            prop_assert!(cut.len() <= PREVIEW_BYTES);
            prop_assert!(text.starts_with(cut.trim_end_matches(TRUNCATION_MARKER)));
        }
    }
}
