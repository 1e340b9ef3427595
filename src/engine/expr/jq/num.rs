//! Numbers in the interpreter: exact decimals, as on the fast path.
//!
//! One rule for both evaluators: a number that fits a 96-bit decimal (28
//! significant digits) is a [`Decimal`], and `+ - * /` on two such numbers
//! are exact decimal operations (`0.1 + 0.2` is `0.3`, on either path).
//! Only a number that does not fit (`1e300`), a result that overflows, or a
//! math function's result (`sqrt`, `pow`, ...) is a binary float.

use std::cmp::Ordering;
use std::rc::Rc;

use rust_decimal::Decimal;
use rust_decimal::prelude::{FromPrimitive, ToPrimitive};

use crate::engine::expr::value::parse_decimal;

/// A number: its value, and the text it was written with when it came from
/// a frame or a literal (kept, so `[2e-8] | tojson` writes `[2e-8]` as the
/// fast path, which works on the frame's text, does).
#[derive(Clone, Debug)]
pub struct Num {
    v: Value,
    text: Option<Rc<str>>,
}

#[derive(Clone, Copy, Debug)]
enum Value {
    /// An exact decimal.
    Dec(Decimal),
    /// A binary float (does not fit a decimal, or comes from a float math
    /// function).
    Float(f64),
}

impl Num {
    /// Parse JSON number text (exact where it fits).
    pub fn parse(text: &str) -> Num {
        let v = match parse_decimal(text) {
            Some(d) => Value::Dec(d),
            None => Value::Float(text.parse().unwrap_or(f64::NAN)),
        };
        Num {
            v,
            text: Some(Rc::from(text)),
        }
    }

    /// An exact decimal.
    pub fn dec(d: Decimal) -> Num {
        Num {
            v: Value::Dec(d),
            text: None,
        }
    }

    fn float(f: f64) -> Num {
        Num {
            v: Value::Float(f),
            text: None,
        }
    }

    /// From a float, exact when it is a whole number that fits a decimal
    /// (so `length` or `floor` results index arrays as integers).
    pub fn from_f64(f: f64) -> Num {
        if f.is_finite()
            && f.fract() == 0.0
            && f.abs() < 1e28
            && let Some(d) = Decimal::from_f64(f)
        {
            return Num::dec(d);
        }
        Num::float(f)
    }

    /// As a float.
    pub fn as_f64(&self) -> f64 {
        match self.v {
            Value::Dec(d) => d.to_f64().unwrap_or(f64::NAN),
            Value::Float(f) => f,
        }
    }

    /// Whether it is a whole number.
    pub fn is_int(&self) -> bool {
        match self.v {
            Value::Dec(d) => d.fract().is_zero(),
            Value::Float(f) => f.is_finite() && f.fract() == 0.0,
        }
    }

    /// As a machine integer, when it is a whole number that fits.
    pub fn as_isize(&self) -> Option<isize> {
        match self.v {
            Value::Dec(d) if d.fract().is_zero() => d.to_isize(),
            Value::Float(f) if f.is_finite() && f.fract() == 0.0 => {
                (f.abs() < 9.0e15).then_some(f as isize)
            }
            _ => None,
        }
    }

    /// `+`, `-`, `*`, `/`: exact on decimals; a decimal overflow falls back
    /// to floats, as jq computes.
    pub fn arith(&self, op: Op, other: &Num) -> Result<Num, &'static str> {
        if let (Value::Dec(x), Value::Dec(y)) = (self.v, other.v) {
            if op == Op::Div && y.is_zero() {
                return Err("cannot divide a number by zero");
            }
            let exact = match op {
                Op::Add => x.checked_add(y),
                Op::Sub => x.checked_sub(y),
                Op::Mul => x.checked_mul(y),
                Op::Div => x.checked_div(y),
            };
            if let Some(r) = exact {
                return Ok(Num::dec(r));
            }
        }
        let (x, y) = (self.as_f64(), other.as_f64());
        if op == Op::Div && y == 0.0 {
            return Err("cannot divide a number by zero");
        }
        Ok(Num::float(match op {
            Op::Add => x + y,
            Op::Sub => x - y,
            Op::Mul => x * y,
            Op::Div => x / y,
        }))
    }

    /// `%`: both sides truncated to integers (as jq does), the sign of the
    /// dividend.
    pub fn rem(&self, other: &Num) -> Result<Num, &'static str> {
        let trunc = |n: &Num| match n.v {
            Value::Dec(d) => Some(d.trunc()),
            Value::Float(f) if f.is_finite() => Decimal::from_f64(f.trunc()),
            Value::Float(_) => None,
        };
        match (trunc(self), trunc(other)) {
            (_, Some(y)) if y.is_zero() => Err("cannot divide a number by zero"),
            (Some(x), Some(y)) => Ok(Num::dec(x.checked_rem(y).unwrap_or(Decimal::ZERO))),
            _ => Err("cannot take the remainder of a number this large"),
        }
    }

    /// `-x`. A number that came as text keeps it, sign changed (so
    /// `-.x` of a number beyond a decimal writes its digits, not a float,
    /// as on the fast path).
    pub fn neg(&self) -> Num {
        let v = match self.v {
            Value::Dec(d) => Value::Dec(-d),
            Value::Float(f) => Value::Float(-f),
        };
        let text = self.text.as_deref().map(|t| match t.strip_prefix('-') {
            Some(pos) => Rc::from(pos),
            None => Rc::from(format!("-{t}")),
        });
        Num { v, text }
    }

    /// `length` of a number: its absolute value (text kept, sign dropped).
    pub fn abs(&self) -> Num {
        let v = match self.v {
            Value::Dec(d) => Value::Dec(d.abs()),
            Value::Float(f) => Value::Float(f.abs()),
        };
        let text = self
            .text
            .as_deref()
            .map(|t| Rc::from(t.strip_prefix('-').unwrap_or(t)));
        Num { v, text }
    }

    /// JSON text: as written when it came from text; computed decimals as
    /// they are (`0.30`, `5`); floats in their shortest form, not-a-number
    /// as `null` and infinities as the largest finite value, as jq writes
    /// them.
    pub fn write(&self, out: &mut String) {
        use std::fmt::Write;
        if let Some(t) = &self.text {
            out.push_str(t);
            return;
        }
        match self.v {
            Value::Dec(d) => {
                let _ = write!(out, "{d}");
            }
            Value::Float(f) if f.is_nan() => out.push_str("null"),
            Value::Float(f) if f.is_infinite() => {
                let _ = write!(out, "{:e}", if f > 0.0 { f64::MAX } else { f64::MIN });
            }
            Value::Float(f) if f.fract() == 0.0 && f.abs() < 1e17 => {
                let _ = write!(out, "{f}");
            }
            Value::Float(f) => {
                let _ = write!(out, "{f:?}");
            }
        }
    }
}

/// An arithmetic operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
}

impl PartialEq for Num {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Num {}

impl PartialOrd for Num {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Num {
    /// Exact between decimals, else as floats (not-a-number first).
    fn cmp(&self, other: &Self) -> Ordering {
        match (self.v, other.v) {
            (Value::Dec(x), Value::Dec(y)) => x.cmp(&y),
            _ => self.as_f64().total_cmp(&other.as_f64()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(n: Num) -> String {
        let mut s = String::new();
        n.write(&mut s);
        s
    }

    #[test]
    fn decimal_arithmetic_is_exact() {
        let a = Num::parse("0.1");
        let b = Num::parse("0.2");
        assert_eq!(text(a.arith(Op::Add, &b).unwrap()), "0.3");
        assert_eq!(
            text(Num::parse("1").arith(Op::Div, &Num::parse("3")).unwrap()),
            "0.3333333333333333333333333333"
        );
        assert_eq!(
            Num::parse("1").arith(Op::Div, &Num::parse("0")),
            Err("cannot divide a number by zero")
        );
        assert_eq!(text(Num::parse("7").rem(&Num::parse("-3")).unwrap()), "1");
        assert_eq!(
            text(Num::parse("-7.9").rem(&Num::parse("3")).unwrap()),
            "-1"
        );
        assert_eq!(text(Num::parse("2e-8")), "2e-8", "written as it came");
    }

    #[test]
    fn what_does_not_fit_is_a_float() {
        let big = Num::parse("1e300");
        assert!(matches!(big.v, Value::Float(_)));
        assert_eq!(text(big.arith(Op::Mul, &Num::parse("2")).unwrap()), "2e300");
        let max = Num::dec(Decimal::MAX);
        assert!(matches!(
            max.arith(Op::Add, &max).unwrap().v,
            Value::Float(_)
        ));
        assert_eq!(text(Num::float(f64::NAN)), "null");
        assert_eq!(text(Num::from_f64(3.0)), "3");
        assert!(Num::parse("2.0").is_int());
        assert_eq!(Num::parse("2.0").as_isize(), Some(2));
        assert_eq!(Num::parse("1.0"), Num::parse("1"));
        assert!(Num::parse("1e300") > Num::parse("5"));
    }
}
