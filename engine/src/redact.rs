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
use regex_automata::{Anchored, Input, MatchKind, hybrid};

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

/// Bytes of the end of a text searched for a secret that may go on: longer
/// than any key or token of the rules (a private key, which can be longer,
/// matches to the end of the text once its `BEGIN` line is there).
const OPEN_WINDOW: usize = 4096;

/// The rules as one automaton that tells, byte by byte, whether a secret
/// could still be matching: every pattern at once (`MatchKind::All`, so no
/// match is pruned by another), word boundaries in ASCII (a lazy DFA cannot
/// do Unicode ones; an ASCII boundary allows more starts, which only holds
/// back more).
static OPEN: LazyLock<Option<hybrid::dfa::DFA>> = LazyLock::new(|| {
    // A private key's body would keep the automaton alive past its END line
    // (`.*?` is not lazy in a DFA): here only its BEGIN line counts, and the
    // rule itself, which matches to the end of the text until the END line
    // comes, holds the rest.
    let patterns: Vec<String> = RULES
        .iter()
        .map(|r| match r.kind {
            "private-key" => r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----".to_owned(),
            _ => r.re.as_str().replace(r"\b", r"(?-u:\b)"),
        })
        .collect();
    let built = hybrid::dfa::DFA::builder()
        .configure(hybrid::dfa::DFA::config().match_kind(MatchKind::All))
        .build_many(&patterns);
    match built {
        Ok(dfa) => Some(dfa),
        Err(e) => {
            tracing::error!(error = %e, "cannot build the open-secret automaton; streamed text is held back whole");
            None
        }
    }
});

/// How much of `text`, a message still being streamed, can leave now without
/// cutting a secret in two: the largest of `cuts` (ascending byte offsets of
/// `text`, on char boundaries, the first 0) such that no secret that starts
/// before it can reach past it, whatever text comes next. A part sent alone
/// is redacted alone; a key half in one part and half in the next would be
/// missed by both.
///
/// A start is settled once the automaton dies on it (no rule can match from
/// there any more); one still alive at the end of `text` may be the start of
/// a secret, and so may a match that runs to the end (a JWT still streaming, a
/// private key without its `END` line). Starts further back than
/// [`OPEN_WINDOW`] are taken as settled.
pub fn settled_len(text: &str, cuts: &[usize]) -> usize {
    let snap = |at: usize| cuts.iter().rev().find(|&&c| c <= at).copied().unwrap_or(0);
    let mut cut = snap(text.len());
    for rule in RULES.iter() {
        if let Some(m) = rule.re.find_iter(text).find(|m| m.end() == text.len()) {
            cut = cut.min(snap(m.start()));
        }
    }
    let Some(dfa) = OPEN.as_ref() else { return 0 };
    let mut cache = dfa.create_cache();
    let bytes = text.as_bytes();
    let from = text.len().saturating_sub(OPEN_WINDOW);
    // From the end back, so that a start that reaches past a cut moves the
    // cut before it, and every start left before the cut is checked against
    // the final cut.
    for start in (from..text.len()).rev() {
        if start >= cut || !text.is_char_boundary(start) {
            continue;
        }
        let input = Input::new(bytes).range(start..).anchored(Anchored::Yes);
        let Ok(mut state) = dfa.start_state_forward(&mut cache, &input) else {
            cut = snap(start);
            continue;
        };
        // Where the automaton died (any match from `start` ends before it);
        // `None`: still alive at the end of the text.
        let mut died = None;
        if !state.is_dead() {
            for (i, &b) in bytes[start..].iter().enumerate() {
                match dfa.next_state(&mut cache, state, b) {
                    Ok(next) if next.is_dead() => {
                        died = Some(start + i + 1);
                        break;
                    }
                    Ok(next) if !next.is_quit() => state = next,
                    _ => break,
                }
            }
        } else {
            died = Some(start + 2);
        }
        // The automaton tells a match one byte late: one that died on the
        // byte at `at - 1` matched at most up to `at - 2`.
        if died.is_none_or(|at| at.saturating_sub(2) > cut) {
            cut = snap(start);
        }
    }
    cut
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

    /// What leaves of `text` if it may be cut anywhere.
    fn settled(text: &str) -> &str {
        let cuts: Vec<usize> = (0..=text.len()).filter(|&i| text.is_char_boundary(i)).collect();
        &text[..settled_len(text, &cuts)]
    }

    #[test]
    fn a_text_that_may_be_the_start_of_a_secret_is_held_back() {
        assert_eq!(settled("deploy with AKIAIOSF"), "deploy with ");
        assert_eq!(settled("deploy with AKIAIOSFODNN7EXAMPLE"), "deploy with ", "a key may go on");
        assert_eq!(settled("deploy with AKIAIOSFODNN7EXAMPLE now"), "deploy with AKIAIOSFODNN7EXAMPLE ");
        assert_eq!(settled("the db_password = "), "the ", "a pair waiting for its value");
        assert_eq!(settled(r#"{"db_password": "c0rrect hor"#), r#"{""#);
        assert_eq!(settled("curl https://bob:s3"), "curl ");
        assert_eq!(settled("Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIi"), "Bearer ");
        let pem = "key:\n-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA7\n";
        assert_eq!(settled(&format!("{pem}{}", "x ".repeat(3000))), "key:\n", "a private key waits for its END");
        assert_eq!(
            settled(&format!("{pem}-----END RSA PRIVATE KEY-----\nok ")),
            format!("{pem}-----END RSA PRIVATE KEY-----\nok ")
        );
        assert_eq!(settled("-----BEG"), "");
        // Plain prose goes up to its last word, which may still grow.
        assert_eq!(settled("Hello there, see you "), "Hello there, see you ");
        assert_eq!(settled("héllo wörld pass"), "héllo wörld ");
        assert_eq!(settled(""), "");
    }

    #[test]
    fn a_text_is_cut_only_where_allowed_and_never_through_a_secret() {
        let text = "ab use AKIAIOSFODNN7EXAMPLE now!";
        // A cut inside the key would send half of it unredacted: the cut goes before it.
        assert_eq!(settled_len(text, &[0, 3, 10, 27, text.len()]), text.len());
        assert_eq!(settled_len(text, &[0, 3, 10, 26]), 3);
        assert_eq!(settled_len("short", &[0]), 0);
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
