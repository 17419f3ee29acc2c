//! Secrets out of what others can read. Two filters:
//! - [`urls`]: URLs in turn errors and logs lose their userinfo
//!   (`http://user:PASS@host` → `http://host`) and the values of query
//!   parameters that look like credentials (`?api_key=…` → `?api_key=[redacted]`).
//!   A failed turn's error goes into the shared log, readable by every client.
//! - [`secrets`]: what leaves the machine for a hub (DESIGN §7) becomes
//!   `[redacted:KIND]`: keys and tokens by their shape (the providers' prefixes,
//!   JWTs, PEM, PGP, OpenSSH and PuTTY private keys, credentials in URLs and
//!   DSNs), and values by their name (an env or shell assignment, a JSON, YAML,
//!   XML or TOML key, a CLI flag, an HTTP header, a connection string field
//!   whose name says password, pass, secret, token, key, credential, auth,
//!   salt). It errs on the side of hiding: a false positive costs a word, a
//!   miss costs a key. What it cannot see is in the README (Redaction).

use std::borrow::Cow;
use std::sync::LazyLock;

use std::cell::RefCell;

use regex::{Captures, Regex, RegexSet, RegexSetBuilder};
use regex_automata::{Anchored, Input, MatchKind, hybrid};

/// One kind of secret: what it looks like, and what it becomes.
struct Rule {
    /// `[redacted:KIND]`; [`BY_NAME`]: from the name the value goes under.
    kind: &'static str,
    /// The secret is the capture group `s`, or the whole match; the rest of
    /// the match (a name, `=`, a trailing `@`) stays.
    re: Regex,
    /// What the open-secret automaton looks for instead of `re`.
    open: Option<&'static str>,
    /// Whether a match is a secret where a pattern cannot say (a value that is
    /// code, a type or a placeholder): given the match and the text around it.
    check: fn(&Captures<'_>, &str) -> bool,
}

/// The kind of a value named by a password, secret, token… name ([`pair_kind`]).
const BY_NAME: &str = "";

/// A name whose value is a secret, in `(?i)`: it ends in one of the words.
/// The long words may come glued to others (`dbpassword`, `_authToken`,
/// `clientsecret`); the short ones (`pass`, `key`, `auth`…) only as a word of
/// their own: after `_`, `.`, `-`, at the start, or camel-cased (`db_pass`,
/// `tls.key`, `x-api-key`, `apiKey`, `SecretAccessKey`), not inside one
/// (`bypass`, `monkey`). Then maybe `_BASE`, `_VALUE`, `_B64`, `_HEX`
/// (`SECRET_KEY_BASE`). Not a name that goes on (`token_count`, `key_len`,
/// `password_policy`, `max_tokens`).
const NAME: &str = concat!(
    r"(?:[A-Za-z0-9_.\-]*(?:passwords?|passwd|passphrase|secrets?|token|credentials?|apikey",
    r"|(?:secret|access|private|signing|encryption|master)_?key|dockerconfigjson|dockercfg)",
    r"|(?:[A-Za-z0-9_.\-]*[_.\-])?(?:pass|pwd|pw|key|auth|salt|dsn|sig)",
    r"|[A-Za-z0-9_.\-]*[A-Za-z0-9](?-i:Pass|PASS|Pwd|PWD|Key|KEY|Auth|AUTH|Salt|SALT|Dsn|DSN))",
    r"(?:_?(?:base64|base|b64|hex|value))?",
);

/// Between a name and its value: `=`, `:`, `:=`, `=>`, `==`, after the
/// name's closing quote (`"password": `, `\"token\": `, `['key'] = `).
const SEP: &str = r#"(?:\\?["'`]\]?)?[ \t]*(?::=|=>|==?|:)[ \t]*"#;

/// A value: quoted (the closing quote may be missing: a truncated line), a
/// YAML block (`key: |` and the indented lines after it), or a bare word.
/// Not a reference (`$VAR`, `${VAR}`, `{{ .Values.x }}`, `<your-key>`), not
/// an earlier marker (`[redacted:…]`), not `(`, `{`, `[` (code, a map, a list).
const VALUE: &str = concat!(
    r#"(?P<s>\\"[^"\\\n]+\\"|"[^"$\[{<\n][^"\n]*"?|'[^'$\[{<\n][^'\n]*'?|`[^`$\[{<\n][^`\n]*`?"#,
    r"|[|>][-+]?[ \t]*(?:\r?\n[ \t]+[^\r\n]*)+",
    r#"|[^\s"'`&,;$\[\]{}()<>|\\:?=][^\s"'`&,;{}()<>\[\]]*)"#,
);

/// The rules, in the order they run (the specific before the general:
/// Anthropic's `sk-ant-` before OpenAI's `sk-`, a key's prefix before the name
/// it goes under, so `OPENAI_API_KEY=sk-…` says `openai`).
static RULES: LazyLock<Vec<Rule>> = LazyLock::new(|| {
    type Check = fn(&Captures<'_>, &str) -> bool;
    let rule = |kind: &'static str, re: &str, check: Check| Rule {
        kind,
        re: Regex::new(re).expect("a valid pattern"),
        open: None,
        check,
    };
    let shape = |kind, re: &str| rule(kind, re, always);
    let named = |re: &str| rule(BY_NAME, re, named_value);
    vec![
        // A key cut off by the end of the text (a streamed delta) still goes.
        // The open-secret automaton looks for its BEGIN line alone: its body
        // would keep it alive past the END line (`.*?` is not lazy in a DFA),
        // and this rule, matching to the end until the END line comes, holds
        // the rest.
        Rule {
            open: Some(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----"),
            ..shape(
                "private-key",
                r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----(?s:.*?)(?:-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|\z)",
            )
        },
        shape("private-key", r"Private-Lines: [0-9]+\r?\n(?:[A-Za-z0-9+/=]+(?:\r?\n|\z))+"),
        shape("anthropic", r"(?-u:\b)sk-ant-[A-Za-z0-9_\-]{20,}"),
        shape("openai", r"(?-u:\b)sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}"),
        shape("stripe", r"(?-u:\b)(?:[spr]k_(?:live|test)_[A-Za-z0-9]{10,}|whsec_[A-Za-z0-9]{20,})"),
        shape("github", r"(?-u:\b)(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})"),
        shape(
            "gitlab",
            r"(?-u:\b)(?:gl(?:pat|dt|rt|ptt|ft|imt|oas|soat|cbt|ffct|agent)-[A-Za-z0-9_\-]{20,}|GR1348941[A-Za-z0-9_\-]{20,})",
        ),
        shape(
            "google",
            r"(?-u:\b)(?:AIza[0-9A-Za-z_\-]{35}|GOCSPX-[0-9A-Za-z_\-]{20,}|ya29\.[0-9A-Za-z_\-]{20,}|1//0[0-9A-Za-z_\-]{40,})",
        ),
        shape("aws", r"(?-u:\b)(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?-u:\b)"),
        shape(
            "aws",
            r#"(?i)(?:aws_?secret_?(?:access_?)?key|secret_?access_?key)\\?["']?[ \t]*[=:][ \t]*\\?["']?(?P<s>[A-Za-z0-9/+]{40})(?-u:\b)"#,
        ),
        shape(
            "slack",
            r"(?-u:\b)(?:xox[a-z](?:\.xox[a-z])?|xapp)-[A-Za-z0-9\-]{10,}|https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9/_\-]+",
        ),
        shape("discord", r"https://(?:ptb\.|canary\.)?discord(?:app)?\.com/api/webhooks/[0-9]+/[A-Za-z0-9_\-]+"),
        shape("huggingface", r"(?-u:\b)hf_[A-Za-z0-9]{30,}"),
        shape("npm", r"(?-u:\b)npm_[A-Za-z0-9]{36,}"),
        shape("pypi", r"(?-u:\b)pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_\-]{50,}"),
        shape("sendgrid", r"(?-u:\b)SG\.[A-Za-z0-9_\-]{16,}\.[A-Za-z0-9_\-]{30,}"),
        shape("twilio", r"(?-u:\b)SK[0-9a-fA-F]{32}(?-u:\b)"),
        shape("digitalocean", r"(?-u:\b)do[opr]_v1_[a-f0-9]{64}"),
        shape("shopify", r"(?-u:\b)shp(?:at|ss|ca|pa)_[a-fA-F0-9]{32}"),
        shape("telegram", r"(?-u:\b)[0-9]{8,10}:AA[A-Za-z0-9_\-]{33}"),
        shape("groq", r"(?-u:\b)gsk_[A-Za-z0-9]{40,}"),
        shape("xai", r"(?-u:\b)xai-[A-Za-z0-9]{40,}"),
        shape("jwt", r"(?-u:\b)eyJ[A-Za-z0-9_\-]{5,}\.eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{10,}"),
        // `scheme://user:PASS@`, `redis://:PASS@`; the user goes too. A
        // password with `@` in it ends at the last `@` before the host.
        shape("url-credentials", r"[A-Za-z][A-Za-z0-9+.\-]*://(?P<s>[^\s/@\[\]]*:[^\s/\[\]]+)@"),
        // Go's MySQL DSN: `user:PASS@tcp(host:3306)/db`.
        shape("url-credentials", r"(?-u:\b)(?P<s>[A-Za-z0-9_.\-]+:[^\s@/]+)@(?:tcp|unix)\("),
        // `Authorization: Bearer …`, `Basic …`, `token …`, or no scheme at all.
        rule(
            "authorization",
            concat!(
                r#"(?i)(?-u:\b)(?:proxy-)?authorization\\?["']?[ \t]*[:=][ \t]*\\?["'`]?"#,
                r"(?:(?:bearer|basic|token|bot|digest|negotiate|ntlm|apikey|sso-key|key)[ \t]+)?",
                r#"(?P<s>[^\s"'`$<{\[][^\s"'`]*)"#,
            ),
            authorization_value,
        ),
        // A bearer token anywhere (`curl -H "…: Bearer …"` split oddly, a log line).
        rule("bearer", r"(?i)(?-u:\b)(?:bearer|token)[ \t]+(?P<s>[A-Za-z0-9\-._~+/]{16,}=*)", random_looking),
        // `curl -b 'session=…'` (not `-b cookies.txt`).
        shape("cookie", r#"(?-u:\B)(?:-b|--cookie)[ \t]+["']?(?P<s>[^\s"'=;]+=[^\s"']+)"#),
        rule(
            "cookie",
            r#"(?i)(?-u:\b)(?:set-)?cookie\\?["']?[ \t]*:[ \t]*(?P<s>[^\s"'`\[][^\r\n"'`]*)"#,
            plausible_value,
        ),
        // Flags with the value after a space: `--password X`, `--api-key X`
        // (`--password=X` is a pair as well).
        rule(
            BY_NAME,
            concat!(
                r#"(?i)(?-u:\B)--(?P<n>[a-z0-9\-]*(?:password|passwd|pass|pwd|token|secret|api-?key|access-key|secret-key|private-key|auth|credentials?|cookie))[ \t]+"#,
                r#"(?P<s>"[^"$\[{<\n][^"\n]*"?|'[^'$\[{<\n][^'\n]*'?|[^\s"'`\-$\[<{][^\s"'`]*)"#,
            ),
            flag_value,
        ),
        // `mysql -uroot -pPASS`: the password glued to `-p`.
        shape(
            "password",
            r"(?-u:\b)(?:mysql|mysqldump|mysqladmin|mysqlimport|mysqlcheck|mysqlsh|mariadb|mariadb-dump)(?:[ \t]+[^\s|;&]+){0,12}?[ \t]+-p(?P<s>[^\s\-][^\s]*)",
        ),
        // `sshpass -p X`, `docker login -p X`, `redis-cli -a X`.
        shape(
            "password",
            concat!(
                r"(?-u:\b)(?:sshpass|(?:docker|podman|nerdctl|buildah|skopeo|oras|helm(?:[ \t]+registry)?)[ \t]+login|redis-cli)",
                r#"(?:[ \t]+[^\s|;&]+){0,12}?[ \t]+-[pa][ \t]+(?P<s>"[^"\n]*"|'[^'\n]*'|[^\s\-"'][^\s]*)"#,
            ),
        ),
        // `curl -u user:PASS`, `--user user:PASS`: both go.
        rule(
            "password",
            r#"(?-u:\B)(?:-u|--user|--proxy-user|-U)[ \t]*=?[ \t]*["']?(?P<s>[^\s:"'\-][^\s:"']*:[^\s"']+)"#,
            user_password,
        ),
        // OpenSSL's `-passin pass:X`, and `.netrc`'s `login me password X`.
        shape("password", r"(?-u:\b)(?:-passin|-passout|-pass|-password)[ \t]+pass:(?P<s>[^\s]+)"),
        shape("password", r"(?-u:\b)login[ \t]+[^\s]+[ \t\r\n]+password[ \t]+(?P<s>[^\s]+)"),
        // PHP's `define('DB_PASSWORD', 'X')` (WordPress), the name quoted.
        named(
            r#"(?i)(?-u:\b)define\([ \t]*["'](?P<n>[A-Za-z0-9_]*(?:pass|password|key|salt|secret|token|auth))["'][ \t]*,[ \t]*(?P<s>"[^"\n]*"|'[^'\n]*')"#,
        ),
        // XML: `<password>X</password>`.
        rule(BY_NAME, &format!(r"(?i)<(?P<n>{NAME})(?:[ \t][^>\n]*)?>(?P<s>[^<\s][^<\n]*)</"), element_value),
        // name = value, name: value, "name": "value", --name=value, name := value.
        named(&format!(r"(?i)(?-u:\b)(?P<n>{NAME}){SEP}{VALUE}")),
    ]
});

/// Which rules can match a text at all: one pass over it, and the rules that
/// cannot are skipped (most texts pass with one scan).
static ANY: LazyLock<RegexSet> = LazyLock::new(|| {
    RegexSetBuilder::new(RULES.iter().map(|r| r.re.as_str())).dfa_size_limit(DFA_CACHE).build().expect("valid patterns")
});

/// The lazy DFAs' cache, at most: the rules at once have many states (names,
/// values and prefixes alive together), and in the default 2 MiB the cache
/// is cleared over and over, and a search falls back to a slower engine: the
/// set took 30 ms instead of 0.3 ms on the 23 KB of the secrets corpus, and
/// 18 ms instead of 0.07 ms on the 15 KB of ordinary code.
const DFA_CACHE: usize = 16 << 20;

/// A name alone ([`NAME`] from start to end), for the keys of JSON objects.
static SECRET_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&format!("(?i)^(?:{NAME})$")).expect("a valid pattern"));

/// `text` with the secrets in it replaced by `[redacted:KIND]`.
pub fn secrets(text: &str) -> Cow<'_, str> {
    let hits = ANY.matches(text);
    if !hits.matched_any() {
        return Cow::Borrowed(text);
    }
    let mut out = Cow::Borrowed(text);
    // What a rule replaces never makes another match (a value cannot start
    // with `[`), so the rules that matched the text are all that can match
    // after the ones before them ran.
    for i in hits.iter() {
        if let Some(s) = apply(&RULES[i], &out) {
            out = Cow::Owned(s);
        }
    }
    out
}

/// `text` with `rule`'s secrets replaced, or `None` if it has none.
fn apply(rule: &Rule, text: &str) -> Option<String> {
    let mut out = String::new();
    let mut last = 0;
    let mut any = false;
    for c in rule.re.captures_iter(text) {
        if !(rule.check)(&c, text) {
            continue;
        }
        let secret = c.name("s").unwrap_or_else(|| c.get(0).expect("a match"));
        let kind = match rule.kind {
            BY_NAME => pair_kind(c.name("n").map_or("", |m| m.as_str())),
            k => k,
        };
        out.push_str(&text[last..secret.start()]);
        out.push_str("[redacted:");
        out.push_str(kind);
        out.push(']');
        last = secret.end();
        any = true;
    }
    if !any {
        return None;
    }
    out.push_str(&text[last..]);
    Some(out)
}

fn always(_: &Captures<'_>, _: &str) -> bool {
    true
}

/// The value of a name that says secret, unless it is code, a placeholder or
/// prose: not a shell expansion (`$PWD:/src`, `${DB_PASSWORD:?unset}`), not a
/// `key` alone that is a word (`key: password` in a `secretKeyRef`, `let key
/// = "name"`: a bare `key` says little, its value must look random).
fn named_value(c: &Captures<'_>, text: &str) -> bool {
    let (Some(name), Some(value)) = (c.name("n"), c.name("s")) else { return false };
    let sep = &text[name.end()..value.start()];
    let before = &text[..name.start()];
    // `"Password: "`, `` `password=` ``: the quote is the end of the string the name is in.
    let quote = before.chars().next_back().filter(|c| "\"'`".contains(*c));
    let closes = quote.is_some_and(|q| value.as_str().starts_with(q) && !sep.contains(q));
    let expansion = before.ends_with("${") || (before.ends_with('$') && !sep.contains('='));
    let word_key = name.as_str().eq_ignore_ascii_case("key") && !random(value.as_str());
    !(closes || expansion || word_key || not_secret_name(name.as_str()))
        && plausible(
            value.as_str(),
            &text[value.end()..],
            sep.trim_start_matches(['"', '\'', '`', '\\']).starts_with(':'),
        )
}

/// A flag's value: not after `--no-…`, and not code or a placeholder.
fn flag_value(c: &Captures<'_>, text: &str) -> bool {
    let Some(name) = c.name("n") else { return false };
    let name = name.as_str().to_ascii_lowercase();
    !name.starts_with("no-") && named_value(c, text)
}

/// An XML element's text: what follows it is its end tag, not code.
fn element_value(c: &Captures<'_>, _: &str) -> bool {
    c.name("s").is_some_and(|v| plausible(&format!("\"{}\"", v.as_str()), "", false))
}

/// A header's credentials, not its scheme alone (what is left of
/// `Bearer [redacted:jwt]` for this rule), nor a word of code (`f"Bearer {t}"`).
fn authorization_value(c: &Captures<'_>, text: &str) -> bool {
    const SCHEMES: &str = "bearer basic token bot digest negotiate ntlm apikey sso-key key";
    c.name("s").is_some_and(|v| v.len() >= 6 && !SCHEMES.split(' ').any(|s| v.as_str().eq_ignore_ascii_case(s)))
        && plausible_value(c, text)
}

fn plausible_value(c: &Captures<'_>, text: &str) -> bool {
    c.name("s").is_some_and(|v| plausible(v.as_str(), &text[v.end()..], false))
}

/// `user:PASS`, but not `1000:1000` (`docker run -u`, a uid and gid).
fn user_password(c: &Captures<'_>, text: &str) -> bool {
    let Some(v) = c.name("s") else { return false };
    let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    match v.as_str().split_once(':') {
        Some((user, pass)) => !(numeric(user) && numeric(pass)) && plausible(pass, &text[v.end()..], false),
        None => false,
    }
}

/// A token after `Bearer`/`token`: one that looks random, not a word
/// (`Bearer authentication`).
fn random_looking(c: &Captures<'_>, _: &str) -> bool {
    c.name("s").is_some_and(|v| random(v.as_str()))
}

/// Whether a value looks random rather than a word: a digit, a symbol, or
/// upper and lower case after its first letter.
fn random(value: &str) -> bool {
    let value = value.trim_matches(['"', '\'', '`']);
    let rest = value.get(1..).unwrap_or("");
    value.bytes().any(|b| b.is_ascii_digit() || b"!#%&*=?@^~/".contains(&b))
        || (rest.bytes().any(|b| b.is_ascii_uppercase()) && rest.bytes().any(|b| b.is_ascii_lowercase()))
}

/// Names that end like a secret's and are not one (their last word decides):
/// database and cache keys, public keys.
fn not_secret_name(name: &str) -> bool {
    const NOT: &str = "primary_key primarykey foreign_key foreignkey sort_key sortkey partition_key partitionkey \
                       hash_key hashkey range_key rangekey cache_key cachekey lookup_key public_key publickey pubkey";
    let name = name.to_ascii_lowercase().replace('-', "_");
    let last = name.rsplit(['.', ':']).next().unwrap_or(&name);
    NOT.split_whitespace().any(|n| last == n || last.ends_with(&format!("_{n}")))
}

/// Values that are no secret (case aside): booleans, nothing, settings.
const LITERALS: &str = "true false null none nil undefined yes no on off read write inherit required optional \
                        enabled disabled auto default empty redacted hidden dummy fake mock example sample placeholder";

/// The words of a secret's name, as a value: a variable (`password=password`).
const WORDS: &str = "password passwd pass pwd pw secret token key apikey auth credential credentials salt";

/// Words of code in a value's place: types, keywords.
const CODE_WORDS: &str = "String str string number boolean bool int integer float double bytes any object unknown \
                          void char usize isize u8 u16 u32 u64 u128 i8 i16 i32 i64 i128 f32 f64 Self self this \
                          match if await new async function lambda require import yield typeof not fn";

/// Whether `value` (as matched, maybe quoted), followed by `after`, can be a
/// secret: not a literal, a placeholder, a version, a template; if bare, not
/// code (a call, a path, a type, a variable named like the secret:
/// `password=password`, `api_key=api_key`, `token: self.token`) nor, after
/// a colon, the first word of prose (`auth: user ana logged in`).
fn plausible(value: &str, after: &str, colon: bool) -> bool {
    let quoted = value.starts_with(['"', '\'', '`', '\\']);
    let untrimmed = value.trim_start_matches('\\').trim_matches(['"', '\'', '`', '\\']);
    let inner = untrimmed.trim();
    let version = inner.trim_start_matches(['^', '~', '=', '>', '<', 'v']);
    if inner.is_empty()
        || LITERALS.split(' ').any(|l| inner.eq_ignore_ascii_case(l))
        || inner.chars().all(|c| "*xX.#-_ …".contains(c))
        || (inner.starts_with('<') && inner.ends_with('>'))
        || inner.contains("${")
        || inner.contains("{{")
        || (version.contains('.') && version.bytes().all(|b| b.is_ascii_digit() || b == b'.'))
    {
        return false;
    }
    let ident = |s: &str| {
        s.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    let lower = inner.to_ascii_lowercase();
    let camel = inner.as_bytes().windows(2).any(|w| w[0].is_ascii_lowercase() && w[1].is_ascii_uppercase());
    let names_a_secret = ["pass", "pwd", "secret", "token", "key", "auth", "cred"].iter().any(|w| lower.contains(w));
    // A variable or an environment variable's name: `api_key`, `apiKeySource`, `"OPENAI_API_KEY"`.
    let variable =
        ident(inner) && names_a_secret && (inner.contains('_') || camel || WORDS.split(' ').any(|w| w == lower));
    if quoted {
        // Not the closing quote of a string the name was in (`"Password: ")`),
        // not a string added to (`'tandem-token:' + id`).
        let digits = inner.bytes().any(|b| b.is_ascii_digit());
        return !(untrimmed.starts_with([' ', ')', ',', ';', ']', '}'])
            || after.trim_start().starts_with('+')
            || (variable && !digits));
    }
    if value.starts_with(['|', '>']) {
        return true;
    }
    let next = after.chars().next();
    let next_word = after.trim_start_matches([' ', '\t']).chars().next();
    let path = inner.replace("::", ".").replace("->", ".").replace("?.", ".");
    let pascal = inner.starts_with(|c: char| c.is_ascii_uppercase()) && inner.chars().all(|c| c.is_ascii_alphabetic());
    !(matches!(next, Some('(' | '[' | '<' | '!'))
        || (ident(inner) && after.trim_start().starts_with('.'))
        || inner.starts_with(':')
        || CODE_WORDS.split_whitespace().any(|w| w == inner)
        || (inner.len() == 1 && inner.chars().all(|c| c.is_ascii_uppercase()))
        || (inner.len() <= 3 && inner.bytes().all(|b| b.is_ascii_digit()))
        || (path.contains('.') && path.split('.').all(ident))
        || variable
        || (ident(inner) && inner.len() <= 3 && matches!(next, Some(')' | ',' | ';')))
        || (colon && pascal && matches!(next_word, Some(',' | ';' | ')' | '>' | '{' | '=')))
        || (colon && next == Some(' ') && next_word.is_some_and(|c| !"#\r\n".contains(c))))
}

/// Bytes of the end of a text searched for a secret that may go on: longer
/// than any key or token of the rules (a private key, which can be longer,
/// matches to the end of the text once its `BEGIN` line is there).
const OPEN_WINDOW: usize = 4096;

/// The rules as one automaton that tells, byte by byte, whether a secret
/// could still be matching: every pattern at once (`MatchKind::All`, so no
/// match is pruned by another). The rules' word boundaries are ASCII ones (a
/// lazy DFA cannot do Unicode ones; an ASCII boundary allows more starts,
/// which only redacts and holds back more).
static OPEN: LazyLock<Option<hybrid::dfa::DFA>> = LazyLock::new(|| {
    // The rules' word boundaries are ASCII ones already.
    let patterns: Vec<&str> = RULES.iter().map(|r| r.open.unwrap_or(r.re.as_str())).collect();
    let built = hybrid::dfa::DFA::builder()
        .configure(hybrid::dfa::DFA::config().match_kind(MatchKind::All).cache_capacity(DFA_CACHE))
        .build_many(&patterns);
    match built {
        Ok(dfa) => Some(dfa),
        Err(e) => {
            tracing::error!(error = %e, "cannot build the open-secret automaton; streamed text is held back whole");
            None
        }
    }
});

thread_local! {
    /// The open-secret automaton's states, built once per thread rather
    /// than on every call.
    static OPEN_CACHE: RefCell<Option<hybrid::dfa::Cache>> = const { RefCell::new(None) };
}

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
    // A match that runs to the end may go on; one with a cut inside it would
    // go out in two parts that no rule recognises alone (a private key's END
    // line and the body line before it, once its BEGIN line has gone: the
    // automaton below only knows a key by its BEGIN line).
    let hits = ANY.matches(text);
    let spans: Vec<(usize, usize)> =
        hits.iter().flat_map(|i| RULES[i].re.find_iter(text).map(|m| (m.start(), m.end()))).collect();
    let straddles = |&(start, end): &(usize, usize), cut: usize| start < cut && (end == text.len() || cut < end);
    let past_spans = |mut cut: usize| {
        while let Some(&(start, _)) = spans.iter().find(|span| straddles(span, cut)) {
            cut = snap(start);
        }
        cut
    };
    cut = past_spans(cut);
    let Some(dfa) = OPEN.as_ref() else { return 0 };
    let cut = OPEN_CACHE.with_borrow_mut(|slot| {
        let cache = slot.get_or_insert_with(|| dfa.create_cache());
        let mut cut = cut;
        let bytes = text.as_bytes();
        let from = text.len().saturating_sub(OPEN_WINDOW);
        // From the end back, so that a start that reaches past a cut moves the
        // cut before it, and every start left before the cut is checked against
        // the final cut.
        for start in (from..text.len()).rev() {
            if start >= cut || !text.is_char_boundary(start) {
                continue;
            }
            if spans.iter().any(|span| span.0 == start && straddles(span, cut)) {
                cut = snap(start);
                continue;
            }
            let input = Input::new(bytes).range(start..).anchored(Anchored::Yes);
            let Ok(mut state) = dfa.start_state_forward(cache, &input) else {
                cut = snap(start);
                continue;
            };
            // Where the automaton died (any match from `start` ends before it);
            // `None`: still alive at the end of the text.
            let mut died = None;
            if !state.is_dead() {
                for (i, &b) in bytes[start..].iter().enumerate() {
                    match dfa.next_state(cache, state, b) {
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
    });
    // A match from before the window that a cut moved into.
    past_spans(cut)
}

/// Redacts [`secrets`] in every string of a JSON value, and the whole string
/// under a key that names a secret (`{"password": "…"}`, a tool call's
/// arguments: the key says what the string alone does not). Keys stay: they
/// are the event's own field names. Returns whether anything changed.
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
        Value::Object(map) => map.iter_mut().fold(false, |changed, (key, v)| {
            match v {
                Value::String(s)
                    if !s.starts_with("[redacted:")
                        && SECRET_NAME.is_match(key)
                        && !not_secret_name(key)
                        && (!key.eq_ignore_ascii_case("key") || random(s))
                        && plausible(&format!("\"{s}\""), "", false) =>
                {
                    *s = format!("[redacted:{}]", pair_kind(key));
                    true
                }
                _ => secrets_in_json(v),
            }
        } | changed),
        _ => false,
    }
}

/// What a value is, by its name (`DB_PASSWORD` → `password`).
fn pair_kind(name: &str) -> &'static str {
    let name = name.to_ascii_lowercase();
    if name.contains("pass") || name.contains("pwd") || name.ends_with("pw") {
        "password"
    } else if name.contains("secret") || name.contains("salt") || name.ends_with("sig") {
        "secret"
    } else if name.contains("token") {
        "token"
    } else if name.contains("cookie") {
        "cookie"
    } else if name.contains("cred") || name.contains("auth") || name.contains("dsn") || name.contains("docker") {
        "credential"
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
mod corpus;

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
        (
            "redis://:pw@cache:6379 and postgres://u:p@ss@db/x",
            "redis://[redacted:url-credentials]@cache:6379 and postgres://[redacted:url-credentials]@db/x",
        ),
        (r#""SecretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY""#, r#""SecretAccessKey": "[redacted:aws]""#),
        ("SLACK_APP_TOKEN=xapp-1-A0123456789-1234567890123-abcdef0123456789", "SLACK_APP_TOKEN=[redacted:slack]"),
        ("STRIPE_SECRET_KEY=sk_live_51Hx0123456789abcdefgh", "STRIPE_SECRET_KEY=[redacted:stripe]"),
        ("SECRET_KEY=d3adb33f and DB_PASS=hunter2", "SECRET_KEY=[redacted:secret] and DB_PASS=[redacted:password]"),
        ("mysql -u root -phunter2 shop", "mysql -u root -p[redacted:password] shop"),
        ("login --password hunter2 --user ana", "login --password [redacted:password] --user ana"),
        ("Authorization: Bearer 8f2a0c9e1b7d4c3a9e8f7a6b5c4d3e2f", "Authorization: Bearer [redacted:authorization]"),
        ("key=AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q", "key=[redacted:google]"),
        (
            "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nlQOYBF\n-----END PGP PRIVATE KEY BLOCK-----\nok",
            "[redacted:private-key]\nok",
        ),
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
        assert_eq!(settled("see eyJhbGciOiJIUzI1NiJ9.eyJzdWIi"), "see ");
        assert_eq!(settled("Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIi"), "", "an opaque bearer token as well");
        let pem = "key:\n-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA7\n";
        assert_eq!(settled(&format!("{pem}{}", "x ".repeat(3000))), "key:\n", "a private key waits for its END");
        assert_eq!(
            settled(&format!("{pem}-----END RSA PRIVATE KEY-----\nok ")),
            format!("{pem}-----END RSA PRIVATE KEY-----\nok ")
        );
        assert_eq!(settled("-----BEG"), "");
        // The new rules hold back as the old ones did.
        assert_eq!(settled("then mysql -u root -phun"), "then ", "a password glued to -p");
        assert_eq!(settled("run it --password hun"), "run it ", "a flag's value");
        assert_eq!(settled("REDIS_URL=redis://:s3cr"), "REDIS_URL=", "an empty user's password");
        assert_eq!(settled("use xapp-1-A0123"), "use ");
        assert_eq!(settled("see -----BEGIN PGP PRIVATE KEY BLOCK-----\nlQOYBF\n"), "see ");
        assert_eq!(settled("curl -H 'Authorization: Basic dXNl"), "curl -H '");
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
        // A private key whose END line came with more text: the automaton
        // knows the key by its BEGIN line only, the match itself keeps the
        // cut out of it (the body's last line would go with the END line,
        // which no rule recognises alone).
        let key =
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA7\nMIIEpAIBAAKCAQEA8\n-----END RSA PRIVATE KEY-----\n";
        let text = format!("{key}$ cat");
        assert_eq!(settled_len(&text, &[0, 40, text.len()]), 0);
        assert_eq!(settled_len(&text, &[0, 40, key.len(), text.len()]), key.len());
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
