//! jaq's value traits for [`JVal`]: what `.[]`, `.[k]`, `.[a:b]`, `|=`,
//! `{...}`, `[...]` and the operators do, each step spending the
//! evaluation budget.

use std::ops::{Add, Div, Mul, Neg, Rem, Sub};
use std::rc::Rc;

use bytes::Bytes;
use jaq_core::box_iter::box_once;
use jaq_core::path::Opt;
use jaq_core::{Error, Exn, ValR, ValX};

use super::num::{Num, Op};
use super::val::{JStr, JVal, Map};
use crate::engine::expr::budget::{self, Exceeded};

type R = ValR<JVal>;

fn over(e: Exceeded) -> Error<JVal> {
    Error::str(e.message())
}

/// Spend one step, failing the evaluation when the budget is gone.
fn step() -> Result<(), Error<JVal>> {
    budget::step().map_err(over)
}

fn typ(v: JVal, what: &'static str) -> Error<JVal> {
    Error::typ(v, what)
}

/// Iterate `items`, spending a step on each; after the budget runs out,
/// one error, then nothing.
fn counted<T: 'static>(
    items: impl Iterator<Item = T> + 'static,
) -> impl Iterator<Item = Result<T, Error<JVal>>> {
    let mut failed = false;
    items.map_while(move |x| {
        if failed {
            return None;
        }
        match step() {
            Ok(()) => Some(Ok(x)),
            Err(e) => {
                failed = true;
                Some(Err(e))
            }
        }
    })
}

fn unwrap_rc<T: Clone>(rc: Rc<T>) -> T {
    Rc::try_unwrap(rc).unwrap_or_else(|rc| (*rc).clone())
}

/// An absolute index into `len` elements (negative counts from the end),
/// or `None` before the start.
fn wrap(i: isize, len: usize) -> Option<usize> {
    if i >= 0 {
        Some(i as usize)
    } else {
        len.checked_sub(i.unsigned_abs())
    }
}

/// A slice bound: jq floors a start and ceils an end; negative counts from
/// the end; the result is clamped to `0..=len`.
fn bound(b: Option<&JVal>, len: usize, default: usize, end: bool) -> Result<usize, Error<JVal>> {
    match b {
        None | Some(JVal::Null) => Ok(default),
        Some(JVal::Num(n)) => {
            let f = n.as_f64();
            let f = if end { f.ceil() } else { f.floor() };
            let i = if f.is_finite() {
                f.clamp(isize::MIN as f64, isize::MAX as f64) as isize
            } else if f > 0.0 {
                isize::MAX
            } else {
                isize::MIN
            };
            Ok(wrap(i, len).unwrap_or(0).min(len))
        }
        Some(other) => Err(typ(other.clone(), "number")),
    }
}

/// `(skip, take)` of a range over `len` elements.
fn skip_take(
    range: &jaq_core::val::Range<&JVal>,
    len: usize,
) -> Result<(usize, usize), Error<JVal>> {
    let from = bound(range.start.as_ref().copied(), len, 0, false)?;
    let upto = bound(range.end.as_ref().copied(), len, len, true)?;
    Ok((from, upto.saturating_sub(from)))
}

/// Byte offsets of a character range of `s`.
fn char_span(s: &str, skip: usize, take: usize) -> (usize, usize) {
    let mut idx = s.char_indices().map(|(i, _)| i).chain([s.len()]);
    let from = idx.nth(skip).unwrap_or(s.len());
    let upto = if take == 0 {
        from
    } else {
        idx.nth(take - 1).unwrap_or(s.len())
    };
    (from, upto)
}

fn chars(s: &JStr) -> usize {
    s.text().chars().count()
}

/// The start and end members of a `{start, end}` object (jq's slice paths).
fn range_of(o: &Map) -> jaq_core::val::Range<&JVal> {
    let get = |k: &str| {
        o.get(&JStr::from_str(k))
            .filter(|v| !matches!(v, JVal::Null))
    };
    get("start")..get("end")
}

impl JVal {
    fn index_opt(self, index: &JVal) -> Result<Option<JVal>, Error<JVal>> {
        Ok(match (self, index) {
            (JVal::Null, _) => None,
            (JVal::Obj(o), JVal::Str(k)) => o.get(k).cloned(),
            (JVal::Arr(a), JVal::Num(n)) => {
                let i = n.as_f64().floor();
                let i = if i.is_finite() {
                    i as isize
                } else {
                    isize::MIN
                };
                wrap(i, a.len()).and_then(|i| a.get(i).cloned())
            }
            (JVal::Arr(a), JVal::Arr(b)) => Some(JVal::arr(
                indices_in(&a, &JVal::Arr(b.clone()))?
                    .map(JVal::from)
                    .collect(),
            )),
            (v @ (JVal::Arr(_) | JVal::Str(_)), JVal::Obj(o)) => {
                Some(jaq_core::ValT::range(v, range_of(o))?)
            }
            (v, i) => return Err(Error::index(v, i.clone())),
        })
    }
}

/// Positions of `y` in the array `a` (a sub-array, or an element).
pub(super) fn indices_in<'v>(
    a: &'v [JVal],
    y: &JVal,
) -> Result<Box<dyn Iterator<Item = isize> + 'v>, Error<JVal>> {
    budget::steps(a.len() as u64).map_err(over)?;
    Ok(match y.clone() {
        JVal::Arr(y) if y.is_empty() => Box::new(std::iter::empty()),
        JVal::Arr(y) => {
            let y = y.clone();
            Box::new(
                a.windows(y.len())
                    .enumerate()
                    .filter_map(move |(i, w)| (w == y.as_slice()).then_some(i as isize)),
            )
        }
        y => Box::new(
            a.iter()
                .enumerate()
                .filter_map(move |(i, x)| (*x == y).then_some(i as isize)),
        ),
    })
}

impl jaq_core::ValT for JVal {
    fn from_num(n: &str) -> R {
        Ok(JVal::Num(Num::parse(n)))
    }

    fn from_map<I: IntoIterator<Item = (Self, Self)>>(iter: I) -> R {
        let mut m = Map::default();
        for (k, v) in iter {
            budget::elements(1).map_err(over)?;
            match k {
                JVal::Str(k) => {
                    m.insert(k, v);
                }
                other => return Err(typ(other, "object key (string)")),
            }
        }
        Ok(JVal::obj(m))
    }

    fn key_values(self) -> Box<dyn Iterator<Item = Result<(JVal, JVal), Error<JVal>>>> {
        match self {
            JVal::Arr(a) => Box::new(counted(
                unwrap_rc(a)
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| (JVal::from(i as isize), v)),
            )),
            JVal::Obj(o) => Box::new(counted(
                unwrap_rc(o).into_iter().map(|(k, v)| (JVal::Str(k), v)),
            )),
            v => box_once(Err(typ(v, "iterable (array or object)"))),
        }
    }

    fn values(self) -> Box<dyn Iterator<Item = R>> {
        match self {
            JVal::Arr(a) => Box::new(counted(unwrap_rc(a).into_iter())),
            JVal::Obj(o) => Box::new(counted(unwrap_rc(o).into_iter().map(|(_, v)| v))),
            v => box_once(Err(typ(v, "iterable (array or object)"))),
        }
    }

    fn index(self, index: &Self) -> R {
        step()?;
        self.index_opt(index).map(Option::unwrap_or_default)
    }

    fn range(self, range: jaq_core::val::Range<&Self>) -> R {
        step()?;
        match self {
            JVal::Arr(a) => {
                let (skip, take) = skip_take(&range, a.len())?;
                budget::elements(take).map_err(over)?;
                Ok(JVal::arr(a.iter().skip(skip).take(take).cloned().collect()))
            }
            JVal::Str(s) => {
                let (skip, take) = skip_take(&range, chars(&s))?;
                let text = s.text();
                let (from, upto) = char_span(&text, skip, take);
                Ok(JVal::Str(JStr(s.0.slice(from..upto))))
            }
            v => Err(typ(v, "rangeable (array or string)")),
        }
    }

    fn map_values<'a, I: Iterator<Item = ValX<'a, Self>>>(
        self,
        opt: Opt,
        f: impl Fn(Self) -> I,
    ) -> ValX<'a, Self> {
        match self {
            JVal::Arr(a) => {
                let mut out = Vec::with_capacity(a.len());
                for v in unwrap_rc(a) {
                    step()?;
                    if let Some(y) = f(v).next() {
                        out.push(y?);
                    }
                }
                Ok(JVal::arr(out))
            }
            JVal::Obj(o) => {
                let mut out = Map::default();
                for (k, v) in unwrap_rc(o) {
                    step()?;
                    if let Some(y) = f(v).next() {
                        out.insert(k, y?);
                    }
                }
                Ok(JVal::obj(out))
            }
            v => opt.fail(v, |v| Exn::from(typ(v, "iterable (array or object)"))),
        }
    }

    fn map_index<'a, I: Iterator<Item = ValX<'a, Self>>>(
        self,
        index: &Self,
        opt: Opt,
        f: impl Fn(Self) -> I,
    ) -> ValX<'a, Self> {
        step()?;
        match (self, index) {
            (v @ (JVal::Arr(_) | JVal::Str(_)), JVal::Obj(o)) => {
                let range = range_of(o);
                v.map_range(range, opt, f)
            }
            (JVal::Null, JVal::Str(_)) => JVal::obj(Map::default()).map_index(index, opt, f),
            (JVal::Null, JVal::Num(_)) => JVal::arr(Vec::new()).map_index(index, opt, f),
            (JVal::Obj(o), JVal::Str(k)) => {
                let mut o = unwrap_rc(o);
                let old = o.get(k).cloned().unwrap_or_default();
                match f(old).next().transpose()? {
                    Some(y) => {
                        budget::elements(1).map_err(over)?;
                        o.insert(k.clone(), y);
                    }
                    None => {
                        o.shift_remove(k);
                    }
                }
                Ok(JVal::obj(o))
            }
            (JVal::Arr(a), JVal::Num(n)) => {
                let mut a = unwrap_rc(a);
                let i = n.as_isize().and_then(|i| wrap(i, a.len())).ok_or_else(|| {
                    Exn::from(Error::str(format!("index {} out of bounds", index)))
                })?;
                if i >= a.len() {
                    budget::elements(i + 1 - a.len()).map_err(over)?;
                    a.resize(i + 1, JVal::Null);
                }
                let old = std::mem::take(&mut a[i]);
                match f(old).next().transpose()? {
                    Some(y) => a[i] = y,
                    None => {
                        a.remove(i);
                    }
                }
                Ok(JVal::arr(a))
            }
            (v, i) => opt.fail(v, |v| Exn::from(Error::index(v, i.clone()))),
        }
    }

    fn map_range<'a, I: Iterator<Item = ValX<'a, Self>>>(
        self,
        range: jaq_core::val::Range<&Self>,
        opt: Opt,
        f: impl Fn(Self) -> I,
    ) -> ValX<'a, Self> {
        step()?;
        match self {
            JVal::Arr(a) => {
                let (skip, take) = skip_take(&range, a.len())?;
                let mut a = unwrap_rc(a);
                let part = JVal::arr(a[skip..skip + take].to_vec());
                let new = match f(part).next().transpose()? {
                    Some(JVal::Arr(y)) => unwrap_rc(y),
                    Some(other) => return Err(Exn::from(typ(other, "array"))),
                    None => Vec::new(),
                };
                budget::elements(new.len()).map_err(over)?;
                a.splice(skip..skip + take, new);
                Ok(JVal::arr(a))
            }
            JVal::Str(s) => {
                let (skip, take) = skip_take(&range, chars(&s))?;
                let text = s.text().into_owned();
                let (from, upto) = char_span(&text, skip, take);
                let part = JVal::str(&text[from..upto]);
                let new = match f(part).next().transpose()? {
                    Some(JVal::Str(y)) => y.text().into_owned(),
                    Some(other) => return Err(Exn::from(typ(other, "string"))),
                    None => String::new(),
                };
                let out = format!("{}{new}{}", &text[..from], &text[upto..]);
                budget::string(out.len()).map_err(over)?;
                Ok(JVal::str(&out))
            }
            v => opt.fail(v, |v| Exn::from(typ(v, "array"))),
        }
    }

    fn as_bool(&self) -> bool {
        !matches!(self, JVal::Null | JVal::Bool(false))
    }

    fn into_string(self) -> Self {
        match self {
            s @ JVal::Str(_) => s,
            other => JVal::from(other.to_json()),
        }
    }
}

impl jaq_std::ValT for JVal {
    fn into_seq<S: FromIterator<Self>>(self) -> Result<S, Self> {
        match self {
            JVal::Arr(a) => Ok(unwrap_rc(a).into_iter().collect()),
            other => Err(other),
        }
    }

    fn is_int(&self) -> bool {
        matches!(self, JVal::Num(n) if n.is_int())
    }

    fn as_isize(&self) -> Option<isize> {
        match self {
            JVal::Num(n) => n.as_isize(),
            _ => None,
        }
    }

    fn as_f64(&self) -> Option<f64> {
        match self {
            JVal::Num(n) => Some(n.as_f64()),
            _ => None,
        }
    }

    fn is_utf8_str(&self) -> bool {
        matches!(self, JVal::Str(_))
    }

    fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            JVal::Str(s) => Some(&s.0),
            _ => None,
        }
    }

    fn as_sub_str(&self, sub: &[u8]) -> Self {
        match self {
            JVal::Str(s) => JVal::Str(JStr(s.0.slice_ref(sub))),
            _ => panic!("as_sub_str on a non-string"),
        }
    }

    fn from_utf8_bytes(b: impl AsRef<[u8]> + Send + 'static) -> Self {
        let _ = budget::string(b.as_ref().len());
        JVal::Str(JStr(Bytes::from_owner(b)))
    }
}

impl From<bool> for JVal {
    fn from(b: bool) -> Self {
        JVal::Bool(b)
    }
}

impl From<isize> for JVal {
    fn from(i: isize) -> Self {
        JVal::Num(Num::dec(i.into()))
    }
}

impl From<usize> for JVal {
    fn from(i: usize) -> Self {
        JVal::Num(Num::dec(i.into()))
    }
}

impl From<f64> for JVal {
    fn from(f: f64) -> Self {
        JVal::Num(Num::from_f64(f))
    }
}

impl From<String> for JVal {
    fn from(s: String) -> Self {
        // Cannot fail here: the excess is recorded and the evaluation fails
        // at its next step.
        let _ = budget::string(s.len());
        JVal::Str(JStr(Bytes::from(s)))
    }
}

impl From<jaq_core::val::Range<JVal>> for JVal {
    fn from(r: jaq_core::val::Range<JVal>) -> Self {
        let mut m = Map::default();
        m.insert(JStr::from_str("start"), r.start.unwrap_or_default());
        m.insert(JStr::from_str("end"), r.end.unwrap_or_default());
        JVal::obj(m)
    }
}

impl FromIterator<JVal> for JVal {
    fn from_iter<T: IntoIterator<Item = JVal>>(iter: T) -> Self {
        let v: Vec<JVal> = iter
            .into_iter()
            .map_while(|x| budget::elements(1).ok().map(|()| x))
            .collect();
        JVal::arr(v)
    }
}

fn math(l: JVal, op: jaq_core::ops::Math, r: JVal) -> Error<JVal> {
    Error::math(l, op, r)
}

fn num_op(x: Num, op: Op, y: Num) -> R {
    x.arith(op, &y).map(JVal::Num).map_err(Error::str)
}

impl Add for JVal {
    type Output = R;
    fn add(self, rhs: Self) -> R {
        step()?;
        match (self, rhs) {
            (JVal::Null, x) | (x, JVal::Null) => Ok(x),
            (JVal::Num(x), JVal::Num(y)) => num_op(x, Op::Add, y),
            (JVal::Str(x), JVal::Str(y)) => {
                budget::string(x.0.len() + y.0.len()).map_err(over)?;
                let mut b = Vec::with_capacity(x.0.len() + y.0.len());
                b.extend_from_slice(&x.0);
                b.extend_from_slice(&y.0);
                Ok(JVal::Str(JStr(Bytes::from(b))))
            }
            (JVal::Arr(x), JVal::Arr(y)) => {
                budget::elements(y.len()).map_err(over)?;
                let mut x = unwrap_rc(x);
                x.extend(y.iter().cloned());
                Ok(JVal::arr(x))
            }
            (JVal::Obj(x), JVal::Obj(y)) => {
                budget::elements(y.len()).map_err(over)?;
                let mut x = unwrap_rc(x);
                x.extend(y.iter().map(|(k, v)| (k.clone(), v.clone())));
                Ok(JVal::obj(x))
            }
            (l, r) => Err(math(l, jaq_core::ops::Math::Add, r)),
        }
    }
}

impl Sub for JVal {
    type Output = R;
    fn sub(self, rhs: Self) -> R {
        step()?;
        match (self, rhs) {
            (JVal::Num(x), JVal::Num(y)) => num_op(x, Op::Sub, y),
            (JVal::Arr(x), JVal::Arr(y)) => {
                let work = x.len().saturating_mul(y.len());
                budget::steps(work as u64).map_err(over)?;
                let mut x = unwrap_rc(x);
                x.retain(|v| !y.contains(v));
                Ok(JVal::arr(x))
            }
            (l, r) => Err(math(l, jaq_core::ops::Math::Sub, r)),
        }
    }
}

/// Deep merge of objects (`*`).
fn deep_merge(mut x: Map, y: &Map) -> Result<Map, Error<JVal>> {
    for (k, v) in y {
        budget::elements(1).map_err(over)?;
        let merged = match (x.get(k), v) {
            (Some(JVal::Obj(a)), JVal::Obj(b)) => JVal::obj(deep_merge((**a).clone(), b)?),
            _ => v.clone(),
        };
        x.insert(k.clone(), merged);
    }
    Ok(x)
}

/// `"s" * n`: `null` for n ≤ 0, else the string ⌈n⌉ times.
fn repeat(s: &JStr, n: &Num) -> R {
    let n = n.as_f64();
    if n.is_nan() || n <= 0.0 {
        return Ok(JVal::Null);
    }
    let times = n.ceil().min(u32::MAX as f64) as usize;
    let len = s.0.len().saturating_mul(times);
    budget::string(len).map_err(over)?;
    Ok(JVal::Str(JStr(Bytes::from(s.0.repeat(times)))))
}

impl Mul for JVal {
    type Output = R;
    fn mul(self, rhs: Self) -> R {
        step()?;
        match (self, rhs) {
            (JVal::Num(x), JVal::Num(y)) => num_op(x, Op::Mul, y),
            (JVal::Str(s), JVal::Num(n)) | (JVal::Num(n), JVal::Str(s)) => repeat(&s, &n),
            (JVal::Obj(x), JVal::Obj(y)) => Ok(JVal::obj(deep_merge(unwrap_rc(x), &y)?)),
            (l, r) => Err(math(l, jaq_core::ops::Math::Mul, r)),
        }
    }
}

impl Div for JVal {
    type Output = R;
    fn div(self, rhs: Self) -> R {
        step()?;
        match (self, rhs) {
            (JVal::Num(x), JVal::Num(y)) => num_op(x, Op::Div, y),
            (JVal::Str(x), JVal::Str(sep)) => {
                let text = x.text();
                let sep = sep.text();
                let parts: Vec<JVal> = if text.is_empty() {
                    Vec::new()
                } else if sep.is_empty() {
                    text.chars()
                        .map(|c| JVal::str(c.encode_utf8(&mut [0; 4])))
                        .collect()
                } else {
                    text.split(sep.as_ref()).map(JVal::str).collect()
                };
                budget::elements(parts.len()).map_err(over)?;
                Ok(JVal::arr(parts))
            }
            (l, r) => Err(math(l, jaq_core::ops::Math::Div, r)),
        }
    }
}

impl Rem for JVal {
    type Output = R;
    fn rem(self, rhs: Self) -> R {
        step()?;
        match (self, rhs) {
            (JVal::Num(x), JVal::Num(y)) => x.rem(&y).map(JVal::Num).map_err(Error::str),
            (l, r) => Err(math(l, jaq_core::ops::Math::Rem, r)),
        }
    }
}

impl Neg for JVal {
    type Output = R;
    fn neg(self) -> R {
        step()?;
        match self {
            JVal::Num(n) => Ok(JVal::Num(n.neg())),
            v => Err(typ(v, "number")),
        }
    }
}
