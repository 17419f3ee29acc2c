//! The redaction corpus, in `tests/fixtures/redact/`:
//! - `secrets/`: realistic material with secrets in it (a `.env`, AWS CLI
//!   output, Kubernetes secrets, command lines, connection strings, key
//!   blocks, provider tokens, config files), each file ending with the list
//!   of its secrets: none may be left, whole or half, when the file is
//!   redacted whole or streamed in parts.
//! - `ordinary/`: code, configs, logs and prose with no secret in them:
//!   every marker is a false positive, counted and bounded.

use std::path::Path;

use super::{secrets, secrets_in_json, settled_len};

/// Between a secrets file's material and its list of secrets.
const LIST: &str = "==== secrets: none of these may be left after redaction ====\n";

/// The false positives allowed in `ordinary/` (the README says which): one,
/// a string under a secret's name that is no secret (`let secret =
/// "ws://h:1/rpc".parse()`).
const MAX_FALSE_POSITIVES: usize = 1;

/// The files of `tests/fixtures/redact/DIR`, by name.
fn fixtures(dir: &str) -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/redact").join(dir);
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.expect("a directory entry").path();
            let name = path.file_name().expect("a file name").to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        })
        .collect();
    files.sort();
    files
}

/// Each secrets file's name, material and secrets.
fn secret_material() -> Vec<(String, String, Vec<String>)> {
    fixtures("secrets")
        .into_iter()
        .map(|(name, file)| {
            let (material, list) = file.split_once(LIST).unwrap_or_else(|| panic!("{name}: no list of secrets"));
            let list: Vec<String> = list.lines().filter(|l| !l.is_empty()).map(str::to_owned).collect();
            for secret in &list {
                assert!(material.contains(secret.as_str()), "{name}: {secret} is not in the material");
            }
            (name, material.to_owned(), list)
        })
        .collect()
}

/// The secrets of `list` that are left in `clean`, whole or, for a long one,
/// one of its halves (a key cut in two by a rule that stopped early; a short
/// one's halves can be words found anywhere: `mysecret`, `password`).
fn left<'a>(clean: &str, list: &'a [String]) -> Vec<&'a str> {
    list.iter()
        .map(String::as_str)
        .filter(|s| {
            let mid = (1..=s.len() / 2).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0);
            clean.contains(s) || (s.len() >= 20 && (clean.contains(&s[..mid]) || clean.contains(&s[mid..])))
        })
        .collect()
}

#[test]
fn no_secret_of_the_corpus_is_left() {
    let material = secret_material();
    let mut missed = Vec::new();
    for (name, text, list) in &material {
        missed.extend(left(&secrets(text), list).into_iter().map(|s| format!("{name}: {s}")));
    }
    let total: usize = material.iter().map(|(_, _, l)| l.len()).sum();
    println!("secrets corpus: {} files, {total} secrets, {} left", material.len(), missed.len());
    assert!(missed.is_empty(), "left after redaction:\n{}", missed.join("\n"));
}

/// As the hub sender sends a message still streaming: deltas of `step`
/// bytes, a batch every `per_batch` of them; of each batch, what
/// [`settled_len`] allows goes (redacted alone), the rest waits for the next.
fn streamed(text: &str, step: usize, per_batch: usize) -> String {
    let mut deltas = Vec::new();
    let mut at = 0;
    while at < text.len() {
        let mut end = (at + step).min(text.len());
        while !text.is_char_boundary(end) {
            end += 1;
        }
        deltas.push(&text[at..end]);
        at = end;
    }
    let mut sent = String::new();
    let mut pending: Vec<&str> = Vec::new();
    for batch in deltas.chunks(per_batch) {
        pending.extend_from_slice(batch);
        let joined = pending.concat();
        let mut cuts = vec![0];
        for d in &pending {
            cuts.push(cuts.last().expect("a cut") + d.len());
        }
        let settled = settled_len(&joined, &cuts);
        let going = cuts[1..].iter().take_while(|&&end| end <= settled).count();
        sent.push_str(&secrets(&joined[..cuts[going]]));
        pending.drain(..going);
    }
    sent.push_str(&secrets(&pending.concat()));
    sent
}

#[test]
fn no_secret_of_the_corpus_is_left_when_streamed() {
    let mut missed = Vec::new();
    for (name, text, list) in secret_material() {
        for (step, per_batch) in [(2, 5), (16, 1), (64, 2)] {
            missed.extend(
                left(&streamed(&text, step, per_batch), &list)
                    .into_iter()
                    .map(|s| format!("{name} ({step}-byte deltas, {per_batch} a batch): {s}")),
            );
        }
    }
    assert!(missed.is_empty(), "left after streamed redaction:\n{}", missed.join("\n"));
}

#[test]
fn secrets_under_json_keys_are_redacted() {
    let mut v = serde_json::json!({"tool": "http", "arguments": {"url": "https://api.example.com",
        "password": "hunter2hunter2", "headers": {"X-Api-Key": "k3y-v4lue-0f-1t", "Accept": "*/*"},
        "token_count": "12", "auth": "true", "AccessKeyId": "AKIAIOSFODNN7EXAMPLE"}});
    assert!(secrets_in_json(&mut v));
    let args = &v["arguments"];
    assert_eq!(args["password"], "[redacted:password]");
    assert_eq!(args["headers"]["X-Api-Key"], "[redacted:api-key]");
    assert_eq!(args["headers"]["Accept"], "*/*");
    assert_eq!(args["token_count"], "12");
    assert_eq!(args["auth"], "true");
    assert_eq!(args["AccessKeyId"], "[redacted:aws]");
    assert_eq!(args["url"], "https://api.example.com");
    assert!(!secrets_in_json(&mut v), "nothing left to hide");
}

#[test]
fn ordinary_code_keeps_its_words() {
    let mut lines = Vec::new();
    let mut count = 0;
    let ordinary = fixtures("ordinary");
    for (name, text) in &ordinary {
        let clean = secrets(text);
        count += clean.matches("[redacted:").count();
        lines.extend(clean.lines().filter(|l| l.contains("[redacted:")).map(|l| format!("{name}: {l}")));
    }
    let total: usize = ordinary.iter().map(|(_, t)| t.lines().count()).sum();
    println!("ordinary corpus: {} files, {total} lines, {count} false positives", ordinary.len());
    for line in &lines {
        println!("  {line}");
    }
    assert!(count <= MAX_FALSE_POSITIVES, "{count} false positives:\n{}", lines.join("\n"));
}
