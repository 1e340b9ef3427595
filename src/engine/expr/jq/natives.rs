//! The JSON built-ins jq has beyond jaq's generic library, for [`JVal`]:
//! `length`, `contains`, `has`, `indices`, `tojson`, `fromjson`,
//! `bsearch`. (The jq-defined helpers built on them — `tonumber`, `in`,
//! `inside`, `index`, `rindex`, `@json`, ... — come from jaq's JSON
//! definitions.)

use jaq_core::data::JustLut;
use jaq_core::native::{Filter, Fun, bome, run, unary, v};
use jaq_core::{Error, RunPtr, ValR};

use super::val::JVal;
use super::valt::indices_in;
use crate::engine::expr::budget;
use crate::engine::json::Parser;

type D = JustLut<JVal>;

fn length(v: &JVal) -> ValR<JVal> {
    Ok(match v {
        JVal::Null => JVal::from(0usize),
        JVal::Bool(_) => return Err(Error::str("boolean has no length")),
        JVal::Num(n) => JVal::Num(n.abs()),
        JVal::Str(s) => JVal::from(s.text().chars().count()),
        JVal::Arr(a) => JVal::from(a.len()),
        JVal::Obj(o) => JVal::from(o.len()),
    })
}

/// jq's `contains`: substrings, sub-arrays (every element contained in
/// some element), sub-objects, or equality.
fn contains(a: &JVal, b: &JVal) -> Result<bool, Error<JVal>> {
    budget::step().map_err(|e| Error::str(e.message()))?;
    Ok(match (a, b) {
        (JVal::Str(x), JVal::Str(y)) => x.text().contains(y.text().as_ref()),
        (JVal::Arr(x), JVal::Arr(y)) => {
            for r in y.iter() {
                let mut any = false;
                for l in x.iter() {
                    if contains(l, r)? {
                        any = true;
                        break;
                    }
                }
                if !any {
                    return Ok(false);
                }
            }
            true
        }
        (JVal::Obj(x), JVal::Obj(y)) => {
            for (k, r) in y.iter() {
                match x.get(k) {
                    Some(l) if contains(l, r)? => {}
                    _ => return Ok(false),
                }
            }
            true
        }
        (x, y) => x == y,
    })
}

/// `contains` itself: the two sides must be of one kind (inside arrays and
/// objects, a different kind is simply not contained).
fn contains_top(a: &JVal, b: &JVal) -> ValR<JVal> {
    if a.kind() != b.kind() {
        return Err(Error::str(format!(
            "{} ({}) and {} ({}) cannot have their containment checked",
            a.kind().jq_name(),
            crate::domain::text::clip(&a.to_json()),
            b.kind().jq_name(),
            crate::domain::text::clip(&b.to_json()),
        )));
    }
    contains(a, b).map(JVal::Bool)
}

fn has(v: &JVal, k: &JVal) -> ValR<JVal> {
    match (v, k) {
        (JVal::Obj(o), JVal::Str(k)) => Ok(JVal::Bool(o.contains_key(k))),
        (JVal::Arr(a), JVal::Num(n)) => Ok(JVal::Bool(
            n.as_f64() >= 0.0 && (n.as_f64() as usize) < a.len(),
        )),
        (v, k) => Err(Error::index(v.clone(), k.clone())),
    }
}

fn indices(x: &JVal, y: &JVal) -> ValR<JVal> {
    let found: Vec<JVal> = match (x, y) {
        (JVal::Null, _) | (_, JVal::Null) => return Ok(JVal::Null),
        (JVal::Str(s), JVal::Str(t)) if !t.0.is_empty() => {
            let (s, t) = (s.text(), t.text());
            budget::steps(s.len() as u64).map_err(|e| Error::str(e.message()))?;
            // Byte offsets, as jq gives.
            s.match_indices(t.as_ref())
                .map(|(i, _)| JVal::from(i))
                .collect()
        }
        (JVal::Str(_), JVal::Str(_)) => Vec::new(),
        (JVal::Arr(a), y) => indices_in(a, y)?.map(JVal::from).collect(),
        (x, y) => return Err(Error::index(x.clone(), y.clone())),
    };
    Ok(JVal::arr(found))
}

fn fromjson(v: &JVal) -> ValR<JVal> {
    let JVal::Str(s) = v else {
        return Err(Error::typ(v.clone(), "string"));
    };
    let text = s.text();
    budget::steps(text.len() as u64).map_err(|e| Error::str(e.message()))?;
    let mut p = Parser::new();
    match p.parse(&text) {
        Ok(doc) => Ok(JVal::from_doc(doc)),
        Err(e) => Err(Error::str(format!(
            "cannot parse {} as JSON: {e}",
            crate::domain::text::clip(&text)
        ))),
    }
}

fn bsearch(a: &JVal, x: &JVal) -> ValR<JVal> {
    match a {
        JVal::Arr(a) => Ok(JVal::from(match a.binary_search(x) {
            Ok(i) => i as isize,
            Err(i) => -1 - i as isize,
        })),
        other => Err(Error::typ(other.clone(), "array")),
    }
}

fn base() -> Box<[Filter<RunPtr<D>>]> {
    Box::new([
        ("length", v(0), |cv| bome(length(&cv.1))),
        ("contains", v(1), |cv| {
            unary(cv, |x, y| contains_top(&x, &y))
        }),
        ("has", v(1), |cv| unary(cv, |x, k| has(&x, &k))),
        ("indices", v(1), |cv| unary(cv, |x, y| indices(&x, &y))),
        ("tojson", v(0), |cv| bome(Ok(JVal::from(cv.1.to_json())))),
        ("fromjson", v(0), |cv| bome(fromjson(&cv.1))),
        ("bsearch", v(1), |cv| unary(cv, |a, x| bsearch(&a, &x))),
    ])
}

/// The JSON built-ins, as jaq natives.
pub(super) fn funs() -> impl Iterator<Item = Fun<D>> {
    base().into_vec().into_iter().map(run::<D>)
}

#[cfg(test)]
mod tests {
    use super::super::num::Num;
    use super::*;

    #[test]
    fn lengths_and_containment_follow_jq() {
        let n = |s: &str| JVal::Num(Num::parse(s));
        assert_eq!(length(&n("-2.5")).unwrap(), n("2.5"));
        assert_eq!(length(&JVal::str("é!")).unwrap(), n("2"));
        let a = JVal::arr(vec![JVal::str("foobar"), n("1")]);
        assert!(contains(&a, &JVal::arr(vec![JVal::str("bar")])).unwrap());
        assert!(!contains(&a, &JVal::arr(vec![JVal::str("baz")])).unwrap());
        assert!(contains_top(&JVal::str("a"), &n("1")).is_err());
        assert_eq!(
            indices(&JVal::str("a,b, cd, efg"), &JVal::str(", ")).unwrap(),
            JVal::arr(vec![n("3"), n("7")])
        );
        assert_eq!(
            bsearch(&JVal::arr(vec![n("1"), n("3")]), &n("2")).unwrap(),
            n("-2")
        );
    }
}
