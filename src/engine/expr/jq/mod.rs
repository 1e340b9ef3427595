//! The jq interpreter side: compiling with `jaq-core` and running a filter
//! on our own value type ([`JVal`]: exact decimals, every step counted
//! against the evaluation budget). Used for every expression the fast path
//! cannot express, and by tests that check both forms agree.

mod natives;
mod num;
mod val;
mod valt;

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::{Arc, LazyLock};

use jaq_core::load::{Arena, File, Loader, lex, parse};
use jaq_core::{Compiler, Ctx, Vars, data, unwrap_valr};

pub(super) use num::Num;
pub(super) use val::{JStr, JVal};

use super::{ExprError, Scope, V, VARS, budget};
use crate::engine::json::{Kind, Value};

/// A compiled jq filter. `Send + Sync`, shared between connections.
pub(crate) type JqFilter = Arc<jaq_core::Filter<data::JustLut<JVal>>>;

/// Built-in filters a mapping may not call: they read the environment or the
/// clock, read input, write to stderr or stop the process.
const DENIED: [&str; 14] = [
    "env",
    "now",
    "halt",
    "input",
    "inputs",
    "debug_empty",
    "stderr_empty",
    "localtime",
    "strflocaltime",
    "get_search_list",
    "input_filename",
    "debug",
    "stderr",
    "halt_error",
];

/// The identifier-like words of a text (over-approximates the names it
/// calls: a word that is a field name or a variable just keeps a definition
/// that is not needed).
fn words(text: &str) -> impl Iterator<Item = &str> {
    // `@` starts format names (`@uri`, `@base64d`).
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '@'))
        .filter(|w| w.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_' || c == '@'))
}

/// Definitions the compiler may use for syntax (`..` is `recurse`) or
/// that are too basic to track: always included.
const ALWAYS: [&str; 7] = [
    "empty", "error", "true", "false", "not", "recurse", "tostring",
];

/// Each library definition (jaq-core, jaq-std and jaq-json, written in jq)
/// with the words of its body, computed once.
static LIBRARY: LazyLock<Vec<(&'static str, Vec<String>)>> = LazyLock::new(|| {
    jaq_core::defs()
        .chain(jaq_std::defs())
        .chain(jaq_json::defs())
        .map(|d| {
            let body = format!("{:?}", d.body);
            (d.name, words(&body).map(str::to_owned).collect())
        })
        .collect()
});

/// The library definitions `code` may use, directly or through other
/// definitions. Every compiled filter carries the definitions it was
/// compiled with, so leaving out the unused ones keeps each filter small
/// (a venue file holds dozens of expressions).
fn needed_library_defs(code: &str) -> HashSet<&'static str> {
    let mut want: HashSet<String> = words(code).chain(ALWAYS).map(str::to_owned).collect();
    // Several definitions share a name (`recurse/0`, `recurse/1`, ...):
    // track them by position.
    let mut taken = vec![false; LIBRARY.len()];
    let mut needed: HashSet<&'static str> = HashSet::new();
    loop {
        let mut grew = false;
        for (i, (name, body)) in LIBRARY.iter().enumerate() {
            if !taken[i] && want.contains(*name) {
                taken[i] = true;
                grew = true;
                needed.insert(name);
                want.extend(body.iter().cloned());
            }
        }
        if !grew {
            return needed;
        }
    }
}

/// A compile error with its byte offset inside the expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JqCompileError {
    /// Byte offset in the expression source.
    pub offset: usize,
    /// What is wrong.
    pub message: String,
}

/// Compile `code` with the standard library minus [`DENIED`], declaring the
/// engine's variables ([`VARS`]).
pub(crate) fn compile(code: &str) -> Result<JqFilter, Vec<JqCompileError>> {
    let needed = needed_library_defs(code);
    let defs = jaq_core::defs()
        .chain(jaq_std::defs())
        .chain(jaq_json::defs())
        .filter(|d| needed.contains(d.name) && !DENIED.contains(&d.name));
    let funs = jaq_core::funs()
        .chain(jaq_std::funs())
        .chain(natives::funs())
        .filter(|(name, _, _)| !DENIED.contains(name));
    let loader = Loader::new(defs);
    let arena = Arena::default();
    let offset = |part: &str| {
        let base = code.as_ptr() as usize;
        let p = part.as_ptr() as usize;
        if p >= base && p <= base + code.len() {
            p - base
        } else {
            0
        }
    };
    let modules = loader
        .load(&arena, File { code, path: () })
        .map_err(|errs| {
            errs.into_iter()
                .flat_map(|(_, e)| match e {
                    jaq_core::load::Error::Io(v) => v
                        .into_iter()
                        .map(|(p, m)| JqCompileError {
                            offset: offset(p),
                            message: m,
                        })
                        .collect::<Vec<_>>(),
                    jaq_core::load::Error::Lex(v) => v
                        .into_iter()
                        .map(|(expect, at): lex::Error<&str>| JqCompileError {
                            offset: offset(at),
                            message: format!("expected {}", expect.as_str()),
                        })
                        .collect(),
                    jaq_core::load::Error::Parse(v) => v
                        .into_iter()
                        .map(|(expect, at): parse::Error<&str>| JqCompileError {
                            offset: offset(at),
                            message: if at.is_empty() {
                                format!("expected {} (unexpected end)", expect.as_str())
                            } else {
                                format!("expected {}, found `{at}`", expect.as_str())
                            },
                        })
                        .collect(),
                })
                .collect::<Vec<_>>()
        })?;
    let filter = Compiler::default()
        .with_funs(funs)
        .with_global_vars(VARS.iter().copied())
        .compile(modules)
        .map_err(|errs| {
            errs.into_iter()
                .flat_map(|(_, v)| v)
                .map(|(name, undefined)| JqCompileError {
                    offset: offset(name),
                    message: if DENIED.contains(&name) {
                        format!("`{name}` is not allowed in venue mappings")
                    } else {
                        format!("undefined {} `{name}`", undefined.as_str())
                    },
                })
                .collect::<Vec<_>>()
        })?;
    Ok(Arc::new(filter))
}

/// Run `filter` on `input`, calling `out` with each output, at most `limit`
/// outputs. Errors of the filter become [`ExprError`]s, and so does
/// passing the evaluation budget (even when the expression catches the
/// error it raised).
pub(crate) fn run<'a>(
    filter: &JqFilter,
    input: &V<'a>,
    scope: &Scope<'a>,
    limit: usize,
    out: &mut dyn FnMut(V<'a>) -> Result<(), ExprError>,
) -> Result<(), ExprError> {
    let _budget = budget::enter();
    let vars = scope.jq_vars();
    let ctx = Ctx::<data::JustLut<JVal>>::new(&filter.lut, Vars::new(vars.iter().cloned()));
    let mut n = 0usize;
    for item in filter.id.run((ctx, v_to_val(input))).map(unwrap_valr) {
        if let Some(e) = budget::exceeded() {
            return Err(ExprError::new(e.message()));
        }
        match item {
            Ok(v) => {
                n += 1;
                if n > limit {
                    return Err(ExprError::new(format!("more than {limit} outputs")));
                }
                budget::step().map_err(|e| ExprError::new(e.message()))?;
                out(val_to_v(v))?;
            }
            // A string error is its text (`error("x")` says `x`, as jq
            // and the fast path say it), any other value its JSON.
            Err(e) => {
                return Err(ExprError::new(match e.into_val() {
                    JVal::Str(s) => s.text().into_owned(),
                    other => other.to_string(),
                }));
            }
        }
    }
    match budget::exceeded() {
        Some(e) => Err(ExprError::new(e.message())),
        None => Ok(()),
    }
}

/// Our value → interpreter value. Numbers stay exact.
pub(crate) fn v_to_val(v: &V<'_>) -> JVal {
    match v {
        V::Null => JVal::Null,
        V::Bool(b) => JVal::Bool(*b),
        V::Num(n) => JVal::Num(Num::parse(n)),
        V::Str(s) => JVal::str(s),
        V::Doc(d) => JVal::from_doc(*d),
        V::Jq(v) => v.clone(),
    }
}

/// A document value → interpreter value (deep copy).
pub(crate) fn doc_to_val(d: Value<'_>) -> JVal {
    JVal::from_doc(d)
}

/// Interpreter value → our value (arrays and objects stay interpreter
/// values).
pub(crate) fn val_to_v(v: JVal) -> V<'static> {
    match v {
        JVal::Null => V::Null,
        JVal::Bool(b) => V::Bool(b),
        JVal::Num(n) => {
            let mut s = String::new();
            n.write(&mut s);
            if s == "null" {
                V::Null
            } else {
                V::Num(Cow::Owned(s))
            }
        }
        JVal::Str(s) => V::Str(Cow::Owned(s.text().into_owned())),
        other @ (JVal::Arr(_) | JVal::Obj(_)) => V::Jq(other),
    }
}

/// The JSON kind of an interpreter value.
pub(crate) fn val_kind(v: &JVal) -> Kind {
    v.kind()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_library_definitions_used_are_compiled_in() {
        // `with_entries` uses `to_entries`, `map` and `from_entries`.
        let needed = needed_library_defs("with_entries(.value |= ascii_downcase) | @uri");
        for name in ["with_entries", "to_entries", "map", "from_entries", "@uri"] {
            assert!(needed.contains(name), "{name} missing");
        }
        for name in ["walk", "combinations", "splits", "@base32d", "getpath"] {
            assert!(!needed.contains(name), "{name} compiled in without use");
        }
        // Definitions reached only through others, and syntax, still work.
        for code in [
            "with_entries(.value |= ascii_downcase)",
            "[..] | length",
            "first(range(3))",
            "[limit(2; .[])]",
            "@uri \"x=\\(.)\"",
            "to_entries | map(.key) | join(\",\")",
        ] {
            assert!(compile(code).is_ok(), "{code}");
        }
    }

    #[test]
    fn denied_builtins_do_not_compile() {
        for code in ["env", "$ENV", "now", "input", "debug", "halt", "env.HOME"] {
            assert!(compile(code).is_err(), "{code} should be refused");
        }
        assert!(compile(".a | ascii_downcase").is_ok());
    }

    #[test]
    fn errors_carry_offsets() {
        let Err(e) = compile(".a | nosuchfn") else {
            panic!("should fail")
        };
        assert_eq!(e[0].offset, 5);
        assert!(e[0].message.contains("nosuchfn"), "{e:?}");
        let Err(e) = compile(".a | (") else {
            panic!("should fail")
        };
        assert!(!e.is_empty());
    }
}
