//! Secrets out of what others can read: URLs in turn errors and logs lose
//! their userinfo (`http://user:PASS@host` → `http://host`) and the values of
//! query parameters that look like credentials (`?api_key=…` → `?api_key=[redacted]`).
//! A failed turn's error goes into the shared log, readable by every client.

use std::borrow::Cow;

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
