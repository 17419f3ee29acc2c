//! Secrets out of what others can read. Two filters:
//! - [`urls`]: URLs in turn errors and logs lose their userinfo
//!   (`http://user:PASS@host` → `http://host`) and the values of query
//!   parameters that look like credentials (`?api_key=…` → `?api_key=[redacted]`).
//!   A failed turn's error goes into the shared log, readable by every client.
//! - [`secrets`]: what leaves the machine for a hub (DESIGN §7): API keys and
//!   tokens of the usual providers, JWTs, PEM private keys, `password=` /
//!   `secret=` pairs and URL credentials become `[redacted:KIND]`. It errs on
//!   the side of hiding: a false positive costs a word, a miss costs a key.

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::{Captures, Regex};

/// One kind of secret: what it looks like, and what it becomes.
struct Rule {
    kind: &'static str,
    re: Regex,
    /// Capture groups kept in front of the marker (a pair's name and `=`).
    keep: usize,
}

/// The rules, in the order they run (the specific before the general:
/// Anthropic's `sk-ant-` before OpenAI's `sk-`).
static RULES: LazyLock<Vec<Rule>> = LazyLock::new(|| {
    let rule = |kind, keep, re: &str| Rule { kind, keep, re: Regex::new(re).expect("a valid pattern") };
    vec![
        // A key cut off by the end of the text (a streamed delta) still goes.
        rule(
            "private-key",
            0,
            r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----(?s:.*?)(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\z)",
        ),
        rule("anthropic", 0, r"\bsk-ant-[A-Za-z0-9_\-]{20,}"),
        rule("openai", 0, r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}"),
        rule("github", 0, r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})"),
        rule("aws", 0, r"\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b"),
        rule("aws", 1, r#"(?i)(aws_?secret_?(?:access_?)?key["']?\s*[=:]\s*["']?)[A-Za-z0-9/+]{40}"#),
        rule("slack", 0, r"\bxox[abposr]-[A-Za-z0-9\-]{10,}|https://hooks\.slack\.com/services/[A-Za-z0-9/]+"),
        rule("jwt", 0, r"\beyJ[A-Za-z0-9_\-]{5,}\.eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{10,}"),
        rule("url-credentials", 1, r"([A-Za-z][A-Za-z0-9+.\-]*://)[^\s/@:\[\]]+:[^\s/@\[\]]+@"),
        // name = value, name: value, "name": "value". The value must start
        // like one (not `$VAR`, not an earlier marker).
        rule(
            "pair",
            2,
            r#"(?i)\b([A-Za-z0-9_.\-]*(?:password|passwd|pwd|secret|token|api_?key))(["']?\s*[=:]\s*)(?:"[^"$\[][^"\n]*"|'[^'$\[][^'\n]*'|[^\s"'&,;$\[{}()<>][^\s"'&,;{}()<>]*)"#,
        ),
    ]
});

/// `text` with the secrets in it replaced by `[redacted:KIND]`.
pub fn secrets(text: &str) -> Cow<'_, str> {
    let mut out = Cow::Borrowed(text);
    for rule in RULES.iter() {
        if let Cow::Owned(s) = rule.re.replace_all(&out, |c: &Captures<'_>| {
            let mut kept: String = (1..=rule.keep).filter_map(|i| c.get(i)).map(|m| m.as_str()).collect();
            let kind = match rule.kind {
                "pair" => pair_kind(c.get(1).map_or("", |m| m.as_str())),
                k => k,
            };
            kept.push_str(&format!("[redacted:{kind}]"));
            if kind == "url-credentials" {
                kept.push('@'); // matched to find the end of the userinfo
            }
            kept
        }) {
            out = Cow::Owned(s);
        }
    }
    out
}

/// Redacts [`secrets`] in every string of a JSON value (keys stay: they are
/// the event's own field names). Returns whether anything changed.
pub fn secrets_in_json(value: &mut serde_json::Value) -> bool {
    use serde_json::Value;
    match value {
        Value::String(s) => match secrets(s) {
            Cow::Owned(clean) => {
                *s = clean;
                true
            }
            Cow::Borrowed(_) => false,
        },
        Value::Array(items) => items.iter_mut().fold(false, |changed, v| secrets_in_json(v) | changed),
        Value::Object(map) => map.values_mut().fold(false, |changed, v| secrets_in_json(v) | changed),
        _ => false,
    }
}

fn pair_kind(name: &str) -> &'static str {
    let name = name.to_ascii_lowercase();
    if name.contains("pass") || name.contains("pwd") {
        "password"
    } else if name.contains("secret") {
        "secret"
    } else if name.contains("token") {
        "token"
    } else {
        "api-key"
    }
}

/// Query parameter names (lowercase, or contained in one) whose values are hidden.
const SECRET_PARAMS: [&str; 10] =
    ["key", "token", "secret", "password", "passwd", "pwd", "sig", "auth", "credential", "session"];

/// `text` with every URL in it stripped of credentials.
pub fn urls(text: &str) -> Cow<'_, str> {
    if !text.contains("://") {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (before, after) = rest.split_at(at);
        out.push_str(before);
        out.push_str("://");
        let after = &after[3..];
        let end = after.find(|c: char| c.is_whitespace() || "\"'`<>()[]{}|\\^".contains(c)).unwrap_or(after.len());
        let (url, tail) = after.split_at(end);
        out.push_str(&clean(url));
        rest = tail;
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// One URL after its `scheme://`.
fn clean(url: &str) -> String {
    let authority_end = url.find(['/', '?', '#']).unwrap_or(url.len());
    let (authority, path) = url.split_at(authority_end);
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    let mut out = String::from(host);
    match path.split_once('?') {
        None => out.push_str(path),
        Some((p, query)) => {
            out.push_str(p);
            out.push('?');
            let (query, fragment) = match query.split_once('#') {
                Some((q, f)) => (q, Some(f)),
                None => (query, None),
            };
            let pairs: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((name, _)) if is_secret(name) => format!("{name}=[redacted]"),
                    _ => pair.to_owned(),
                })
                .collect();
            out.push_str(&pairs.join("&"));
            if let Some(f) = fragment {
                out.push('#');
                out.push_str(f);
            }
        }
    }
    out
}

fn is_secret(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_PARAMS.iter().any(|s| name.contains(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real-looking secrets (made up, in each provider's format) and what they become.
    const CORPUS: &[(&str, &str)] = &[
        ("key: sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAB7cD0eF", "key: [redacted:openai]"),
        ("OPENAI_API_KEY=sk-1234567890abcdefghijABCDEFGHIJ", "OPENAI_API_KEY=[redacted:openai]"),
        ("sk-ant-api03-Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0Fe_-AbCdEf", "[redacted:anthropic]"),
        ("token ghp_16C7e42F292c6912E7710c838347Ae178B4a ok", "token [redacted:github] ok"),
        ("github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEF", "[redacted:github]"),
        ("id AKIAIOSFODNN7EXAMPLE.", "id [redacted:aws]."),
        ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "aws_secret_access_key = [redacted:aws]"),
        ("xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx", "[redacted:slack]"),
        ("hook https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXX", "hook [redacted:slack]"),
        (
            "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
            "Bearer [redacted:jwt]",
        ),
        (
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA7\n-----END RSA PRIVATE KEY-----\nafter",
            "[redacted:private-key]\nafter",
        ),
        ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAA", "[redacted:private-key]"),
        ("password=hunter2 and more", "password=[redacted:password] and more"),
        (r#"{"db_password": "c0rrect horse"}"#, r#"{"db_password": [redacted:password]}"#),
        ("client_secret: abc123XYZ", "client_secret: [redacted:secret]"),
        ("export GITHUB_TOKEN='tok-123'", "export GITHUB_TOKEN=[redacted:token]"),
        ("curl https://bob:s3cret@example.com/x", "curl https://[redacted:url-credentials]@example.com/x"),
        ("postgres://app:pw@db:5432/main", "postgres://[redacted:url-credentials]@db:5432/main"),
    ];

    /// Texts that look a bit like secrets and must come through untouched.
    const NEAR_MISSES: &[&str] = &[
        "run task-list and sk-learn; use scikit-learn",
        "sk-short",
        "ghp_tooShort123",
        "AKIA is a prefix, AKIAshort too",
        "the password is in the vault; reset your password",
        "password=$DB_PASSWORD and secret=${SECRET}",
        "max_tokens=100, tokens: 42",
        "eyJhbGciOi alone is not a JWT",
        "-----BEGIN PUBLIC KEY-----\nMIIBIjAN\n-----END PUBLIC KEY-----",
        "https://example.com/path?q=1 and git@github.com:org/repo.git",
        "ssh user@host",
    ];

    #[test]
    fn corpus_of_secrets_is_redacted() {
        for (input, expected) in CORPUS {
            assert_eq!(secrets(input), *expected, "input: {input}");
        }
    }

    #[test]
    fn near_misses_pass_untouched() {
        for text in NEAR_MISSES {
            assert_eq!(secrets(text), *text);
        }
    }

    #[test]
    fn json_strings_are_redacted_where_they_nest() {
        let mut v = serde_json::json!({"type":"item/completed","seq":3,
            "item":{"text":"use AKIAIOSFODNN7EXAMPLE","lines":["password=x1"]}});
        assert!(secrets_in_json(&mut v));
        assert_eq!(v["item"]["text"], "use [redacted:aws]");
        assert_eq!(v["item"]["lines"][0], "password=[redacted:password]");
        assert_eq!(v["seq"], 3);
        assert!(!secrets_in_json(&mut v), "nothing left to hide");
    }

    #[test]
    fn redacting_twice_changes_nothing_more() {
        for (input, _) in CORPUS {
            let once = secrets(input).into_owned();
            assert_eq!(secrets(&once), once);
        }
    }

    #[test]
    fn strips_userinfo_and_secret_params() {
        assert_eq!(
            urls("POST http://user:PASS@127.0.0.1:9/v1/chat?api_key=K1&model=m&Token=T2#x: refused"),
            "POST http://127.0.0.1:9/v1/chat?api_key=[redacted]&model=m&Token=[redacted]#x: refused"
        );
        assert_eq!(urls("(see https://a:b@h/p)"), "(see https://h/p)");
        assert_eq!(urls("no url here"), "no url here");
        assert_eq!(urls("http://host/x?q=1 and ws://u@h"), "http://host/x?q=1 and ws://h");
    }
}
