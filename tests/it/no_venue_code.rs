//! No venue in the engine: a venue id (a file stem under `venues/`) must
//! not appear in `src/` code — neither as an identifier nor inside a string
//! literal — outside comments and doc comments. Venue knowledge lives in
//! the venue files; a `"okx"` in `src/` is the start of a
//! `match venue { ... }` god-file.
//!
//! Exempt: comments (`//`, `/* */`, doc comments, which may name a venue as
//! an example) and `#[cfg(test)]` modules (unit tests use recorded venue
//! data as samples), as are `tests/` and `benches/`; and the benchmark
//! tooling ([`tooling`]: `bench*` files, `src/tools/`), whose scenarios
//! replay named recorded venues — it is beside the product, not the engine.

use std::path::{Path, PathBuf};

/// The code of a Rust source with comments blanked out and `#[cfg(test)]`
/// modules removed; string literals are kept (a venue id in one is code).
fn code_of(src: &str) -> String {
    let b: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < b.len() && b[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == '/' && b.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == '*' && b.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(' ');
        } else if (c == 'r' || c == 'b')
            && !(i > 0 && ident(b[i - 1]))
            && raw_string_start(&b[i..]).is_some()
        {
            let (prefix, hashes) = raw_string_start(&b[i..]).unwrap();
            let end: String = std::iter::once('"')
                .chain(std::iter::repeat_n('#', hashes))
                .collect();
            let start = i + prefix;
            let rest: String = b[start..].iter().collect();
            let len = rest.find(&end).map_or(rest.len(), |p| p + end.len());
            out.extend(&b[i..start]);
            out.push_str(&rest[..len]);
            i = start + rest[..len].chars().count();
        } else if c == '"' {
            out.push('"');
            i += 1;
            while i < b.len() && b[i] != '"' {
                if b[i] == '\\' {
                    out.push(b[i]);
                    i += 1;
                }
                if i < b.len() {
                    out.push(b[i]);
                    i += 1;
                }
            }
            out.push('"');
            i += 1;
        } else if c == '\'' {
            // A char literal ('"', '\'', 'x') or a lifetime ('a).
            if next == Some('\\') {
                let close = b[i + 2..]
                    .iter()
                    .position(|&c| c == '\'')
                    .map_or(b.len(), |p| i + 3 + p);
                i = close;
            } else if b.get(i + 2) == Some(&'\'') {
                i += 3;
            } else {
                out.push(c);
                i += 1;
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    drop_test_modules(&out)
}

/// `r"`, `r#"`, `br##"` ...: the prefix length up to and including the
/// quote, and the number of hashes.
fn raw_string_start(s: &[char]) -> Option<(usize, usize)> {
    let mut i = usize::from(s.first() == Some(&'b'));
    if s.get(i) != Some(&'r') {
        return None;
    }
    i += 1;
    let hashes = s[i..].iter().take_while(|&&c| c == '#').count();
    i += hashes;
    (s.get(i) == Some(&'"')).then_some((i + 1, hashes))
}

/// Remove each `#[cfg(test)] mod name { ... }` (comments already gone;
/// braces inside string literals are rare enough in test modules not to
/// matter, and would only shorten what is removed).
fn drop_test_modules(code: &str) -> String {
    let mut out = String::new();
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        let Some(open) = after.find('{') else {
            rest = "";
            break;
        };
        let mut depth = 0usize;
        let mut end = after.len();
        for (j, ch) in after[open..].char_indices() {
            match ch {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + j + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// Whether `id` occurs in `code` as a whole token (not inside a longer
/// name: `okx` in `okxish` or `kraken` in `kraken-v1` do not count).
fn occurs(code: &str, id: &str) -> Option<usize> {
    let part = |c: char| c.is_alphanumeric() || c == '_' || c == '-';
    code.match_indices(id).map(|(p, _)| p).find(|&p| {
        let before = code[..p].chars().next_back();
        let after = code[p + id.len()..].chars().next();
        !before.is_some_and(part) && !after.is_some_and(part)
    })
}

/// Benchmark and other tooling sources (see the module docs).
fn tooling(relative: &Path) -> bool {
    let stem = relative.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    // `tests.rs`: a unit-test module in its own file (`#[cfg(test)] mod
    // tests;`), test code like the inline `#[cfg(test)]` modules.
    stem.starts_with("bench") || stem == "tests" || relative.starts_with("src/tools")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn the_scanner_sees_code_and_strings_but_not_comments() {
    let src = r##"
//! Like okx does.
/// okx example
fn f() { /* okx */ let url = "wss://ws.okx.com"; let c = '"'; let r = r#"a "okx" b"#; }
#[cfg(test)]
mod tests { const X: &str = "okx"; }
fn g<'a>(x: &'a str) -> bool { x == "bybit" }
"##;
    let code = code_of(src);
    assert!(!code.contains("Like okx"), "{code}");
    assert!(!code.contains("example"), "{code}");
    assert!(!code.contains("/* okx */"), "{code}");
    assert!(code.contains("wss://ws.okx.com"), "strings stay: {code}");
    assert!(code.contains(r#"a "okx" b"#), "raw strings stay: {code}");
    assert!(!code.contains("const X"), "test modules go: {code}");
    assert!(code.contains(r#"x == "bybit""#), "{code}");
    assert_eq!(occurs("kraken-v1 kraken", "kraken"), Some(10));
    assert_eq!(occurs("okxish", "okx"), None);
}

#[test]
fn no_venue_id_appears_in_src_code() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut ids: Vec<String> = std::fs::read_dir(root.join("venues"))
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let p = e.path();
            (p.extension()? == "toml").then(|| p.file_stem()?.to_str().map(str::to_owned))?
        })
        .collect();
    ids.sort();
    assert!(ids.len() >= 20, "{ids:?}");
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    files.sort();
    assert!(files.len() > 50);
    let mut found = Vec::new();
    for f in &files {
        if tooling(f.strip_prefix(root).unwrap()) {
            continue;
        }
        let src = std::fs::read_to_string(f).unwrap();
        let code = code_of(&src);
        for id in &ids {
            if let Some(p) = occurs(&code, id) {
                let context: String = code[p.saturating_sub(40)..].chars().take(100).collect();
                found.push(format!(
                    "{}: `{id}` in code: ...{}...",
                    f.strip_prefix(root).unwrap().display(),
                    context.replace('\n', " ")
                ));
            }
        }
    }
    assert!(
        found.is_empty(),
        "venue ids in src/ code (move the knowledge to the venue file):\n{}",
        found.join("\n")
    );
}
